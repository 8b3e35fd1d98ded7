"""Fixtures that run the real parts: the local stack (embedded PostgreSQL with pgvector, the local
broker, every function as its own process, the API), and helpers to talk to it as a user."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from local.stack import Stack, free_port_block
from shared.config import Settings

from fakes import FakeFCM, OTLPReceiver, StorageEmulator

REFERENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "reference"
# `make test` runs the tests marked on_containers (and tests/test_containers.py) a second time with this set:
# every function then runs from its image (`mindspace run --containers`), as Knative runs it.
CONTAINERS = os.environ.get("MINDSPACE_TEST_CONTAINERS") == "1"
UPLOAD_LIMIT = 2 * 1024 * 1024  # small, so the over-limit test stays quick; above the external corpus's largest file


@pytest.fixture(scope="session")
def fcm(tmp_path_factory):
    server = FakeFCM(tmp_path_factory.mktemp("fcm"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def gcs():
    emulator = StorageEmulator("mindspace-backup")
    yield emulator
    emulator.close()


@pytest.fixture(scope="session")
def otlp():
    receiver = OTLPReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def stack(fcm, gcs, otlp):
    # pgserver drops to its own user, which must be able to reach the data folder.
    data = Path(tempfile.mkdtemp(prefix="mindspace-test-", dir="/tmp"))
    os.chmod(data, 0o755)
    cfg = Settings(data_dir=data, database_url=os.environ.get("TEST_DATABASE_URL"))
    # Notifications go to the loopback FCM, backups to the storage emulator (whose default bucket the
    # backup tests name), through the real SDKs.
    s = Stack(cfg, port=free_port_block(), env={
        "MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT), "FIREBASE_CREDENTIALS": str(fcm.credentials), "FCM_URL": fcm.url,
        "STORAGE_EMULATOR_HOST": gcs.url, "BACKUP_RESUMABLE_ABOVE": str(64 * 1024),
        # Batches gather for a few ms, so that tests/test_batching.py sees one form whatever the timing.
        "BATCH_WAIT_MS": "15",
        # Web capture reaches the tests' page server on 127.0.0.1 only: other loopback addresses stay refused
        # (tests/test_capture.py), and nothing else is ever a target, nor a name resolved (the contract test
        # captures whatever URLs it makes up). Small caps keep the refusals quick.
        "FETCH_ALLOW_NETWORKS": "127.0.0.1/32", "FETCH_PUBLIC": "false", "FETCH_MAX_BYTES": str(1024 * 1024),
        "FETCH_TIMEOUT_SECONDS": "4",
        "IMPORT_MAX_MEMBER_BYTES": str(8 * 1024 * 1024),
        # No test is throttled by accident; tests/test_api_abuse.py tries the limits on an app of its own.
        "RATE_LIMIT_UPLOADS": "100000/minute", "RATE_LIMIT_SEARCHES": "100000/minute",
        "RATE_LIMIT_ASKS": "100000/minute",
        # Every process exports its spans to the loopback collector, soon after they end (tests/test_tracing.py).
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}, containers=CONTAINERS)
    s.start()
    yield s
    s.stop()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def sql(stack):
    with psycopg.connect(stack.database_url, autocommit=True, row_factory=dict_row) as conn:
        def run(q, *args):
            cur = conn.execute(q, args)
            return cur.fetchall() if cur.description else cur.rowcount

        yield run


@contextmanager
def in_process(stack, **settings):
    """The API in this process, on the stack's database, blobs and broker, with settings of its own."""
    from fastapi.testclient import TestClient

    from api.app import app
    from api.deps import Api
    api = Api()
    api.runtime.start(Settings(**{"database_url": stack.database_url, "data_dir": stack.data_dir, "auth_mode": "dev",
                          "K_SINK": stack.broker_url, **settings}))
    app.state.api = api  # what the lifespan does; the app module is shared, so it is undone below
    try:
        yield TestClient(app)
    finally:
        del app.state.api
        api.runtime.stop()


class User:
    def __init__(self, stack: Stack, name: str):
        self.name = name
        self.http = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer dev:{name}"},
                                 timeout=120)

    def upload(self, name: str, data: bytes) -> httpx.Response:
        return self.http.post("/v1/files", files={"file": (name, data)})

    def file(self, file_id: str) -> dict:
        r = self.http.get(f"/v1/files/{file_id}")
        r.raise_for_status()
        return r.json()

    def wait(self, file_id: str, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            f = self.file(file_id)
            if f["status"] != "processing":
                return f
            time.sleep(0.3)
        raise AssertionError(f"{file_id} still processing after {timeout}s: {f}")

    def upload_all(self, inputs: dict[str, tuple[str, bytes]], timeout: float = 300) -> dict[str, dict]:
        """Every (name, bytes) uploaded first, then each waited for: the stages read them side by side."""
        uploads = {}
        for key, (name, data) in inputs.items():
            r = self.upload(name, data)
            assert r.status_code == 201, (key, r.text)
            uploads[key] = r.json()["id"]
        return {key: self.wait(file_id, timeout=timeout) for key, file_id in uploads.items()}

    def search(self, q: str, **params) -> list[dict]:
        r = self.http.get("/v1/search", params={"q": q, **params})
        r.raise_for_status()
        return r.json()["hits"]


def text_of(sql, file_id: str) -> str:
    """What was read from a file: its chunks' text in order."""
    return " ".join(r["text"] for r in sql("SELECT text FROM chunks WHERE file_id = %s ORDER BY ord", file_id))


@pytest.fixture
def user(stack, request):
    return User(stack, f"u-{request.node.name[:40]}".replace("[", "-").replace("]", ""))


@pytest.fixture
def other_user(stack, request):
    return User(stack, f"o-{request.node.name[:40]}".replace("[", "-").replace("]", ""))


def pytest_collection_modifyitems(items):
    """Every test that needs the running stack is marked `stack`, so `pytest -m "not stack"` is fast. On the
    container stack only the tests that say they hold there run (on_containers, and tests/test_containers.py)."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)
        marks = {m.name for m in item.iter_markers()}
        if CONTAINERS and not {"on_containers", "containers"} & marks:
            item.add_marker(pytest.mark.skip(reason="runs on the local stack's processes (MINDSPACE_TEST_CONTAINERS)"))
        elif not CONTAINERS and "containers" in marks:
            item.add_marker(pytest.mark.skip(reason="runs the images: make test runs it with "
                                                    "MINDSPACE_TEST_CONTAINERS=1, after make images"))


def pytest_terminal_summary(terminalreporter):
    """The adjusted Rand index per labelled corpus (tests/test_clusters.py), before and after issue 14."""
    rows = [value for reports in terminalreporter.stats.values() for r in reports
            if getattr(r, "when", "") == "call" for key, value in r.user_properties if key == "cluster_ari"]
    if rows:
        terminalreporter.section("clusters against known topics (adjusted Rand index)")
        terminalreporter.write_line(f"{'corpus':18} {'files':>5} {'before':>7} {'now':>6} {'clusters':>8} {'noise':>5}")
        for name, files, before, now, clusters, noise in rows:
            terminalreporter.write_line(f"{name:18} {files:5d} {before:7.2f} {now:6.2f} {clusters:8d} {noise:5d}")
    for r in (r for reports in terminalreporter.stats.values() for r in reports if getattr(r, "when", "") == "call"):
        for key, m in r.user_properties:
            if key == "related_precision":  # tests/test_recall.py
                terminalreporter.section("related files across kinds: precision@3 by the query's kind (test_recall.py)")
                terminalreporter.write_line("  ".join(f"{kind} {p:.2f}" for kind, p in m.items()))
            if key == "duplicates":  # tests/test_recall.py
                terminalreporter.section("near-duplicates on a generated corpus (tests/test_recall.py)")
                terminalreporter.write_line(f"pairs of copies {m['pairs']}: precision {m['precision']:.3f}, "
                                            f"recall {m['recall']:.3f}")
                for label, (tp, fp, fn) in m["by_kind"].items():
                    terminalreporter.write_line(f"  {label:24} found {tp}, wrongly {fp}, missed {fn}")
            if key == "ask_quality":  # tests/test_ask.py: the extractive answer on labelled questions
                terminalreporter.section("asking without a model: labelled questions (tests/test_ask.py)")
                for question, where, right_file, holds, answer in m:
                    terminalreporter.write_line(f"{'✓' if right_file else '✗'} file {'✓' if holds else '✗'} words  "
                                                f"{where:10} {question:45} {answer}")
                terminalreporter.write_line(f"right file first: {sum(r[2] for r in m)}/{len(m)}, answering "
                                            f"sentence: {sum(r[3] for r in m)}/{len(m)}")
            if key == "load":  # tests/test_load.py: measured, never asserted
                terminalreporter.section("load on loopback (tests/test_load.py)")
                ms = lambda d: "/".join(f"{v:.0f}" for v in d.values())  # noqa: E731
                terminalreporter.write_line(
                    f"{m['uploads']} uploads from {m['uploaders']} clients: {m['uploads_per_s']:.1f}/s, latency "
                    f"p50/p95/p99 {ms(m['upload_ms'])} ms; all ready after {m['all_ready_s']:.0f} s "
                    f"({m['ready_per_min']:.0f} files/min; upload to ready p50/p95/p99 "
                    f"{'/'.join(f'{v:.1f}' for v in m['to_ready_s'].values())} s)")
                terminalreporter.write_line(
                    f"{m['searches']} searches from {m['searchers']} clients: {m['searches_per_s']:.1f}/s, "
                    f"latency p50/p95/p99 {ms(m['search_ms'])} ms")
