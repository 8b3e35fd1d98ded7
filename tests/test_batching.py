"""Dynamic batching (shared/batching.py): the Batcher on its own, then embed and tag through the stack,
where notes uploaded at once share model calls and each still ends with its own chunks and tags."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from shared.batching import Batcher

CITIES = ["Lisbon", "Tokyo", "Nairobi", "Toronto", "Madrid", "Oslo", "Cairo", "Lima", "Dublin", "Vienna",
          "Mumbai", "Sydney", "Prague", "Seoul", "Havana", "Athens"]


class Model:
    """A stand-in for a model's batch call: records each call, answers each input with its double."""

    def __init__(self, gate: threading.Event | None = None, fail: bool = False):
        self.calls: list[list] = []
        self.gate, self.fail, self.entered = gate, fail, threading.Event()

    def __call__(self, inputs: list) -> list:
        self.entered.set()
        if self.gate:
            self.gate.wait(30)
        self.calls.append(list(inputs))
        if self.fail:
            raise ValueError("the model broke")
        return [2 * x for x in inputs]


def callers(batcher: Batcher, inputs: list[list], model: Model) -> list:
    """Every input list handed over by its own thread, while the model holds its first call (so the others
    queue up behind it); the results in the callers' order, exceptions included."""
    def one(items):
        try:
            return batcher(items)
        except Exception as e:  # noqa: BLE001  (each caller's own outcome is what the tests look at)
            return e

    with ThreadPoolExecutor(len(inputs)) as pool:
        first = pool.submit(one, inputs[0])
        assert model.entered.wait(30)  # the first call holds the model
        rest = [pool.submit(one, items) for items in inputs[1:]]
        queued = sum(len(items) < batcher.max_items for items in inputs[1:])
        while batcher._queue.qsize() < queued:  # every other caller waits in the queue (bounded by the timeout)
            threading.Event().wait(0.01)
        model.gate.set()
        return [first.result(30)] + [f.result(30) for f in rest]


def test_concurrent_callers_share_one_model_call_and_get_their_own_results():
    model = Model(gate=threading.Event())
    batcher = Batcher(model, max_items=100, max_wait_ms=0, label="test")
    inputs = [[i, i + 100] for i in range(1, 9)]
    results = callers(batcher, inputs, model)
    assert results == [[2 * a, 2 * b] for a, b in inputs]
    # The first call ran alone (nothing else was waiting); the seven that queued behind it ran as one.
    assert len(model.calls) == 2 and sorted(model.calls[1]) == sorted(x for items in inputs[1:] for x in items)


def test_a_batch_holds_at_most_max_items_and_a_large_call_runs_alone():
    model = Model(gate=threading.Event())
    batcher = Batcher(model, max_items=4, max_wait_ms=0, label="test")
    inputs = [[1], [2, 3], [4, 5], [6], [7, 8, 9, 10, 11]]
    results = callers(batcher, inputs, model)
    assert results == [[2 * x for x in items] for items in inputs]
    assert all(len(call) <= 4 for call in model.calls if len(call) != 5)
    assert [7, 8, 9, 10, 11] in model.calls  # the large one: alone, in its caller's thread


def test_an_exception_reaches_every_caller_of_the_batch():
    model = Model(gate=threading.Event(), fail=True)
    batcher = Batcher(model, max_items=100, max_wait_ms=0, label="test")
    results = callers(batcher, [[1], [2], [3], [4]], model)
    assert all(isinstance(r, ValueError) and str(r) == "the model broke" for r in results)
    model.fail = False
    assert batcher([5]) == [10]  # the batcher goes on after a failed batch


def test_a_lone_caller_is_answered_after_the_wait_with_nobody_else_coming():
    model = Model()
    batcher = Batcher(model, max_items=32, max_wait_ms=50, label="test")
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(batcher, [21]).result(timeout=30) == [42]
    assert model.calls == [[21]] and batcher([]) == []


def batch_sizes(stack, function: str) -> tuple[float, float]:
    """(sum, count) of the function's batch_size histogram: a mean above 1 means some batch served several."""
    text = httpx.get(f"http://127.0.0.1:{stack.function_ports[function]}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "batch_size":
            values = {s.name: s.value for s in family.samples if s.labels.get("stage") == function}
            return values.get("batch_size_sum", 0.0), values.get("batch_size_count", 0.0)
    return 0.0, 0.0


def note(city: str, i: int) -> bytes:
    return (f"Travel note {i}: Anna flew to {city} on Tuesday for the supplier meeting about invoice "
            f"number {4000 + i}. The harbour office in {city} wants the signed contract before the "
            f"festival, and the budget review moves to next week.").encode()


def test_notes_uploaded_at_once_share_model_calls_and_keep_their_own_chunks_and_tags(stack, user, sql):
    from shared.models import embedder

    before = {name: batch_sizes(stack, name) for name in ("embed", "tag")}
    files: dict[str, str] = {}
    for burst in range(3):  # bursts until a batch served several (the first one nearly always does)
        with ThreadPoolExecutor(len(CITIES)) as pool:
            ids = list(pool.map(lambda c: user.upload(f"note-{c[1]}.txt", note(*c)).json()["id"],
                                [(city, 100 * burst + i) for i, city in enumerate(CITIES)]))
        files |= {file_id: city for file_id, city in zip(ids, CITIES, strict=True)}
        for file_id in ids:
            assert user.wait(file_id)["status"] == "ready"
        grown = {n: tuple(a - b for a, b in zip(batch_sizes(stack, n), before[n], strict=True)) for n in before}
        if all(total > count for total, count in grown.values()):
            break
    assert all(total > count for total, count in grown.values()), f"no batch served several requests: {grown}"

    model = embedder()
    for file_id, city in files.items():
        chunks = sql("SELECT text, embedding::text AS v FROM chunks WHERE file_id = %s ORDER BY ord", file_id)
        assert chunks and all(city in c["text"] for c in chunks)
        # Each chunk's vector is its own text's, not a neighbour's from the same batch.
        own = model.run([c["text"] for c in chunks])
        stored = np.array([[float(x) for x in c["v"].strip("[]").split(",")] for c in chunks])
        assert (np.sum(own * stored, axis=1) > 0.99).all()
        places = {r["name"] for r in sql("SELECT name FROM tags WHERE file_id = %s AND kind = 'place'", file_id)}
        assert city.lower() in places and not places & {c.lower() for c in CITIES if c != city}
