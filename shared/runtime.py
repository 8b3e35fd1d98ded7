"""A function's runtime: the one every function has, each stage (through the adapter, shared/stage.py)
and the API (api/deps.py) alike. It hosts an object with Knative's function lifecycle, as func-python,
Knative's own Python host, does, and answers for it:

- `start(cfg)`, once per process, before the first event or request: the settings are read once
  (here, and nowhere else in a function) and handed in; logs, traces, the database pool and the blob
  store are set up, then the function's own `start(cfg)` builds what is its own.
- `stop()`, once, on scale-down: readiness turns to 503 and new work to 503 (the broker retries it
  elsewhere), the work in hand finishes (up to `grace` seconds), then the function's own `stop()` lets
  go of its models and the pools close. Both servers call it after draining their requests on SIGTERM
  (uvicorn's lifespan, gunicorn's worker at exit); any further call does nothing.
- `alive()` and `ready()` behind `/healthz` and `/readyz`: the function answers a bool or
  `(bool, reason)`, as func-python takes it; the runtime adds what every function needs (started, the
  database reachable) and answers `(ok, reason)`, the reason in the body either way:
  `503 {"ok": false, "reason": "database unreachable (PoolTimeout)"}`.
- `/metrics`, the process's Prometheus metrics.
- `emit(event)`: post an event to the broker, `K_SINK`, which Knative's SinkBinding gives a function.
"""
from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from events import wire
from shared import db, tracing
from shared.blobs import BlobStore, blob_store
from shared.config import Settings, settings
from shared.metrics import process_started
from shared.observability import setup_logging

log = logging.getLogger("mindspace.runtime")
Answer = bool | tuple[bool, str]
PROBE_TIMEOUT = 2.0  # seconds a readiness probe waits for a database connection (Kubernetes waits 1-5)


class Function(Protocol):
    """What the runtime hosts: a name and Knative's hooks; `alive` and `ready` are optional (default: yes)."""

    name: str

    def start(self, cfg: Settings) -> None: ...

    def stop(self) -> None: ...


class NoSink(RuntimeError):
    """No broker to post to: the function has no K_SINK (on a cluster, no SinkBinding)."""


class Stopping(RuntimeError):
    """The function is stopping: new work belongs to another instance."""


def verdict(answer: Answer, yes: str, no: str) -> tuple[bool, str]:
    """A function's answer, a bool or (bool, reason), as (ok, reason), with `yes` or `no` for a bare bool."""
    ok, reason = answer if isinstance(answer, tuple) else (answer, "")
    return bool(ok), reason or (yes if ok else no)


class Runtime:
    def __init__(self, function: Function):
        self.function, self.name = function, function.name
        self.cfg: Settings | None = None
        self.pool: Any = None
        self.blobs: BlobStore | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._working = 0
        self._stopping = False

    def start(self, cfg: Settings | None = None) -> Settings:
        """Start once (with `cfg`, else the settings of the process's environment); later calls return the
        settings it started with. A start that fails is tried again by the next caller."""
        if self.cfg is None:
            with self._lock:
                if self.cfg is None:
                    began = time.perf_counter()
                    cfg = cfg or settings()
                    setup_logging(self.name, cfg.log_level, cfg.log_format, cfg.secrets)
                    tracing.setup_tracing(self.name, cfg)
                    self.pool = db.pool(cfg.database_url, cfg.db_pool_size)
                    self.blobs = blob_store(cfg)
                    self.function.start(cfg)
                    atexit.register(self.stop)  # gunicorn's worker exits normally on SIGTERM, after its requests
                    process_started(self.name, began)
                    self.cfg = cfg
        return self.cfg

    def stop(self, grace: float = 30) -> None:
        """Scale-down: turn new work away, let the work in hand finish (up to `grace` s), then let go of the
        function's models and the pools. Once; thread-safe; a call before any start does nothing."""
        with self._lock:
            if self.cfg is None or self._stopping:
                return
            self._stopping = True
        with self._idle:
            if not self._idle.wait_for(lambda: self._working == 0, timeout=grace):
                log.warning("%s stops with %d event(s) still in hand after %.0f s", self.name, self._working, grace)
        self.function.stop()
        db.close_pools()

    @contextmanager
    def work(self) -> Iterator[None]:
        """Around each piece of work (an event): `stop` waits for it; once stopping, Stopping is raised."""
        with self._idle:
            if self._stopping:
                raise Stopping(f"{self.name} is stopping; another instance takes this")
            self._working += 1
        try:
            yield
        finally:
            with self._idle:
                self._working -= 1
                self._idle.notify_all()

    def alive(self) -> tuple[bool, str]:
        hook = getattr(self.function, "alive", None)
        return verdict(hook() if hook else True, "alive", f"{self.name} reports itself broken")

    def ready(self) -> tuple[bool, str]:
        """Whether to send it work: started (now, if not yet), not stopping, the database reachable, and the
        function's own answer. Every 503 says why, and never that it is ready."""
        if self._stopping:
            return False, "stopping: the work in hand finishes, new work goes elsewhere"
        try:
            self.start()
        except Exception as e:
            log.exception("%s did not start", self.name)
            return False, f"start failed: {type(e).__name__}: {e}"
        try:
            with self.pool.connection(timeout=PROBE_TIMEOUT) as conn:
                conn.execute("SELECT 1")
        except Exception as e:  # PoolTimeout, OperationalError: down, restarting, refusing connections
            return False, f"database unreachable ({type(e).__name__})"
        hook = getattr(self.function, "ready", None)
        return verdict(hook() if hook else True, "ready", f"{self.name} cannot take work now")

    def answer(self, path: str) -> tuple[int, bytes, str] | None:
        """(status, body, content type) for GET /healthz, /readyz and /metrics; None for any other path."""
        if path == "/metrics":
            return 200, generate_latest(), CONTENT_TYPE_LATEST
        probe = {"/healthz": self.alive, "/readyz": self.ready}.get(path)
        if probe is None:
            return None
        ok, reason = probe()
        return 200 if ok else 503, json.dumps({"ok": ok, "reason": reason}).encode(), "application/json"

    def emit(self, event: wire.CloudEvent, timeout: float = 30) -> None:
        """Post one event to the broker (K_SINK); NoSink without one, and an HTTP error raises."""
        if self.cfg is None or not self.cfg.k_sink:
            raise NoSink(f"{self.name} has no broker to post to (K_SINK; on a cluster, a SinkBinding gives it)")
        wire.send(self.cfg.k_sink, event, timeout=timeout)
