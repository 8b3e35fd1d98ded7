"""Fault drills on the local stack, as Knative would live through them: a crashed process comes back,
every event is delivered at least once and takes effect once. Each drill ends with every file in a
final state, and checks the rows (chunks, tags, consumed events), not only the status."""
from __future__ import annotations

import os
import signal
import time


def notes(user, prefix: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        text = f"{prefix} drill note {i}: the lighthouse keeper counts {i} ships at dusk and writes their names."
        deadline = time.monotonic() + 90
        while (r := user.upload(f"{prefix}-{i}.txt", text.encode())).status_code == 503:  # as the app would
            assert time.monotonic() < deadline, r.text
            time.sleep(float(r.headers.get("retry-after", 1)))
        ids.append(r.json()["id"])
    return ids


def assert_processed_once(sql, ids: list[str]) -> None:
    for file_id in ids:
        ords = [r["ord"] for r in sql("SELECT ord FROM chunks WHERE file_id = %s ORDER BY ord", file_id)]
        assert ords == list(range(len(ords))) and ords, (file_id, ords)  # replaced, never appended
        tags = sql("SELECT kind, name, count(*) AS n FROM tags WHERE file_id = %s GROUP BY 1, 2 HAVING count(*) > 1",
                   file_id)
        assert tags == [], tags
    twice = sql("SELECT consumer, source, id FROM consumed_events GROUP BY 1, 2, 3 HAVING count(*) > 1")
    assert twice == []


def wait_restarted(stack, name: str, before: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while stack.restarts.get(name, 0) <= before or stack.procs[name].poll() is not None:
        assert time.monotonic() < deadline, f"{name} was not restarted"
        time.sleep(0.2)
    stack.wait_ready()


def test_a_function_killed_mid_event_comes_back_and_its_events_finish(stack, user, sql):
    before = stack.restarts.get("embed", 0)
    ids = notes(user, "kill", 6)
    time.sleep(0.5)  # deliveries to embed are under way
    os.kill(stack.procs["embed"].pid, signal.SIGKILL)  # the leader only: its worker is left to the supervisor
    wait_restarted(stack, "embed", before)
    assert [user.wait(i)["status"] for i in ids] == ["ready"] * len(ids)
    assert_processed_once(sql, ids)


def test_the_broker_killed_with_deliveries_queued_loses_none(stack, user, sql):
    before = stack.restarts.get("broker", 0)
    ids = notes(user, "broker", 6)
    os.kill(stack.procs["broker"].pid, signal.SIGKILL)
    wait_restarted(stack, "broker", before)
    assert [user.wait(i)["status"] for i in ids] == ["ready"] * len(ids)
    assert_processed_once(sql, ids)


def test_the_api_killed_comes_back(stack, user):
    before = stack.restarts.get("api", 0)
    os.kill(stack.procs["api"].pid, signal.SIGKILL)
    wait_restarted(stack, "api", before)
    assert user.http.get("/v1/files").status_code == 200


def test_a_stack_killed_outright_leaves_nothing_that_stops_the_next_one(stack, user):
    """As after a kill -9 of `mindspace run`: its supervisor is gone, its functions still run and hold
    their ports. The next start finds them by the data folder and ends them, then comes up."""
    stack._stopping.set()  # the supervisor dies with the stack's own process ...
    stack._supervisor.join()
    orphans = {n: p.pid for n, p in stack.procs.items()}  # ... and these outlive it
    stack.procs.clear()
    stack.start_processes()
    stack.wait_ready()
    for pid in orphans.values():
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    f = user.upload("after.txt", b"written after the stack came back from a hard kill").json()
    assert user.wait(f["id"])["status"] == "ready"


def test_a_port_held_by_another_program_gets_a_clear_message(tmp_path):
    import socket

    import pytest

    from local.stack import Stack
    from shared.config import Settings

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        other = Stack(Settings(database_url="postgresql://localhost/x", data_dir=tmp_path), port=port)
        with pytest.raises(RuntimeError, match=f"port {port} .* in use by another program"):
            other._check_ports()


def test_postgresql_stopped_and_started_under_load_recovers_without_a_restart(stack, user):
    """While the database is down the API answers 503 with Retry-After, promptly; stages and the
    broker fail and retry; once it is back everything recovers by itself, and nothing ran twice."""
    import pytest

    if stack._pg is None:
        pytest.skip("the drill stops the embedded PostgreSQL; TEST_DATABASE_URL points elsewhere")
    from pgserver.postgres_server import pg_ctl

    ids = notes(user, "outage", 4)
    pg = stack._pg
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pg.pgdata, user=pg.system_user)
    try:
        started = time.monotonic()
        down = user.http.get("/v1/files")
        assert down.status_code == 503 and down.headers["retry-after"], down.text
        assert time.monotonic() - started < 15  # a prompt answer, not a hang
        refused = user.upload("during.txt", b"written while the database was down")
        assert refused.status_code == 503
    finally:
        pg.ensure_postgres_running()
    ids += notes(user, "after-outage", 2)
    assert [user.wait(i, timeout=240)["status"] for i in ids] == ["ready"] * len(ids)
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(stack.database_url, autocommit=True, row_factory=dict_row) as conn:  # a new session
        assert_processed_once(lambda q, *a: conn.execute(q, a).fetchall(), ids)
