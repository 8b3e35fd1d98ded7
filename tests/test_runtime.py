"""The runtime every function has (shared/runtime.py), on a function of its own: started once, stopped
once and only after the work in hand, probes whose body says why (never "ready" on a 503), and no
event posted without a broker. The stages and the API answer the same way on the stack
(tests/test_pipeline.py)."""
from __future__ import annotations

import json
import logging
import threading
import time

import httpx
import pytest
import structlog

from events import wire
from events.catalogue import ClustersRefresh
from shared.config import Settings
from shared.runtime import NoSink, Runtime, Stopping, verdict

UNREACHABLE = "postgresql://mindspace@127.0.0.1:9/nothing"  # the discard port: nothing answers PostgreSQL there


class Probe:
    """A function as Knative hosts one: its own start, stop and readiness."""

    name = "probe"

    def __init__(self):
        self.started, self.stopped, self.answer = [], 0, True

    def start(self, cfg: Settings) -> None:
        self.started.append(cfg)

    def stop(self) -> None:
        self.stopped += 1

    def ready(self):
        return self.answer


@pytest.fixture
def runtime(tmp_path):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    runtime = Runtime(Probe())
    runtime.start(Settings(database_url=UNREACHABLE, data_dir=tmp_path, log_format="console"))
    yield runtime
    runtime.stop(grace=0)
    root.handlers[:], root.level = saved
    structlog.reset_defaults()


def body(answer) -> tuple[int, dict]:
    status, content, content_type = answer
    assert content_type == "application/json"
    return status, json.loads(content)


def test_it_starts_once_with_the_settings_handed_in(runtime, tmp_path):
    first = runtime.function.started[0]
    assert runtime.start(Settings(data_dir=tmp_path / "other")) is first and runtime.function.started == [first]
    assert runtime.blobs.root == (tmp_path / "blobs").resolve()


def test_logs_never_show_the_secrets_of_the_settings_handed_in(tmp_path, capsys):
    url = "postgresql://mindspace:pw-4711-secret@127.0.0.1:9/nothing"
    assert Settings(database_url=url).secrets == (url, "pw-4711-secret")
    runtime = Runtime(Probe())
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        runtime.start(Settings(database_url=url, data_dir=tmp_path))
        logging.getLogger("mindspace.probe").warning("the password alone: %s", "pw-4711-secret")
    finally:
        runtime.stop(grace=0)
        root.handlers[:], root.level = saved
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert "pw-4711-secret" not in err  # nor in what the pool logs meanwhile (it fails to connect to port 9)
    lines = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    line = next(x for x in lines if x["message"].startswith("the password alone"))
    assert line["message"] == "the password alone: ***" and line["function"] == "probe"


def test_the_probes_say_why_and_a_503_never_says_ready(runtime):
    assert body(runtime.answer("/healthz")) == (200, {"ok": True, "reason": "alive"})
    status, answer = body(runtime.answer("/readyz"))
    assert status == 503 and answer["ok"] is False
    assert answer["reason"].startswith("database unreachable") and "ready" not in answer["reason"]
    status, metrics, content_type = runtime.answer("/metrics")
    assert status == 200 and content_type.startswith("text/plain") and b"cold_starts_total" in metrics
    assert runtime.answer("/anything-else") is None


def test_a_function_answers_a_bool_or_a_bool_and_its_reason():
    assert verdict(True, "ready", "cannot take work now") == (True, "ready")
    assert verdict(False, "ready", "cannot take work now") == (False, "cannot take work now")
    assert verdict((False, "model not loaded yet"), "ready", "no") == (False, "model not loaded yet")
    assert verdict((True, "ready; the model loads on first use"), "ready", "no")[1].endswith("first use")


def test_stop_waits_for_the_work_in_hand_turns_new_work_away_and_happens_once(runtime):
    holding, release = threading.Event(), threading.Event()

    def event():
        with runtime.work():
            holding.set()
            release.wait(10)

    worker = threading.Thread(target=event)
    worker.start()
    assert holding.wait(10)
    stopper = threading.Thread(target=runtime.stop)
    stopper.start()
    deadline = time.monotonic() + 10
    while runtime.ready()[1].split(":")[0] != "stopping" and time.monotonic() < deadline:
        time.sleep(0.01)
    ok, reason = runtime.ready()
    assert not ok and reason.startswith("stopping") and "ready" not in reason
    with pytest.raises(Stopping):
        with runtime.work():
            pass
    assert runtime.function.stopped == 0  # the event in hand is still running
    release.set()
    worker.join(10)
    stopper.join(10)
    assert runtime.function.stopped == 1
    runtime.stop()  # the server's shutdown, then atexit: once is all
    assert runtime.function.stopped == 1


def test_no_event_is_posted_without_a_broker(runtime):
    assert runtime.cfg.k_sink is None
    with pytest.raises(NoSink, match="K_SINK"):
        runtime.emit(wire.make(ClustersRefresh(user_id="u"), "probe"))


@pytest.mark.on_containers
def test_every_function_and_the_api_answer_their_probes_with_the_reason(stack):
    urls = {"api": stack.api_url, **{n: f"http://127.0.0.1:{p}" for n, p in stack.function_ports.items()}}
    for name, url in urls.items():
        for path, reason in (("/healthz", "alive"), ("/readyz", "ready")):
            r = httpx.get(url + path, timeout=10)
            assert (r.status_code, r.json()) == (200, {"ok": True, "reason": reason}), (name, path)
        metrics = httpx.get(url + "/metrics", timeout=10)
        assert metrics.status_code == 200 and f'cold_starts_total{{function="{name}"}}' in metrics.text, name
