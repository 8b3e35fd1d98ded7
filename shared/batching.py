"""Dynamic batching, as model servers (Triton, Ray Serve) do it: requests that wait for the same model
at the same moment become one model call.

A caller hands its inputs (a list) to a `Batcher` and blocks until its own outputs come back. A
background thread takes the oldest waiting call, gathers the calls that queued meanwhile (and any that
come within `max_wait_ms`) until `max_items` inputs are in hand, runs the model once over all of them,
and gives each caller its own slice, in order. With `max_wait_ms` 0 a lone call never waits, and under
load batches form by themselves: whatever arrives while the model is busy is the next batch.
An exception in that call reaches every caller of the batch. A caller with `max_items` inputs or more
(a long document) runs alone, in its own thread, as it would without a batcher.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from shared.metrics import BATCH_SIZE


class Batcher:
    def __init__(self, fn: Callable[[list], Sequence[Any]], max_items: int = 32, max_wait_ms: float = 10,
                 label: str = "model"):
        self.fn, self.max_items, self.max_wait, self.label = fn, max_items, max_wait_ms / 1000, label
        self._queue: queue.Queue[tuple[list, Future]] = queue.Queue()
        self._lock = threading.Lock()
        self._pid = 0  # the thread is started in the process that calls, never in gunicorn's parent

    def __call__(self, items) -> Sequence:
        items = list(items)
        if not items:
            return []
        if len(items) >= self.max_items:  # alone, in the caller's thread: a streaming model stays streamed
            BATCH_SIZE.labels(self.label).observe(1)
            return self.fn(items)
        self._ensure_thread()
        future: Future = Future()
        self._queue.put((items, future))
        return future.result()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._loop, name=f"batcher-{self.label}", daemon=True).start()

    def _loop(self) -> None:
        held = None  # a call that did not fit the last batch opens the next
        while True:
            calls = [held or self._queue.get()]
            held, count = None, len(calls[0][0])
            deadline = time.monotonic() + self.max_wait
            while count < self.max_items:
                try:
                    call = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if count + len(call[0]) > self.max_items:
                    held = call
                    break
                calls.append(call)
                count += len(call[0])
            try:
                outputs = self._run([items for items, _ in calls])
            except BaseException as e:  # noqa: BLE001  (every caller of the batch gets it, raised in its thread)
                for _, future in calls:
                    future.set_exception(e)
                continue
            for (_, future), out in zip(calls, outputs, strict=True):
                future.set_result(out)

    def _run(self, batch: list[list]) -> list[list]:
        """One model call over the concatenated inputs; the outputs cut back into one list per caller."""
        BATCH_SIZE.labels(self.label).observe(len(batch))
        outputs = list(self.fn([x for items in batch for x in items]))
        if len(outputs) != sum(map(len, batch)):
            raise RuntimeError(f"{self.label}: {len(outputs)} outputs for {sum(map(len, batch))} inputs")
        out, start = [], 0
        for items in batch:
            out.append(outputs[start:start + len(items)])
            start += len(items)
        return out
