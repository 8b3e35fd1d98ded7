"""The operators' jobs view: per stage, deliveries waiting, running, retrying and dead-lettered, read from
the local broker's queue and the dead letters; dead letters listed and replayed per stage; operators
only (ADMIN_USERS, or a Firebase custom claim admin: true)."""
from __future__ import annotations

import os
import signal
import time
import uuid
from types import SimpleNamespace

import httpx
from starlette.requests import Request
from test_auth import firebase  # noqa: F401  (the fixture: tokens signed by a test key)

from api.admin import is_operator
from events import wire
from events.catalogue import TextExtracted

from conftest import User


def operator(stack) -> User:
    """The local stack's operator: ADMIN_USERS, which it sets to the CLI's own user."""
    return User(stack, stack.env("api")["ADMIN_USERS"].split(",")[0])


def stage(view: dict, name: str) -> dict:
    return next((s for s in view["stages"] if s["stage"] == name), {"waiting": 0, "running": 0, "dead_lettered": 0})


def test_only_operators_see_the_jobs_and_dead_letters(stack, user):
    for method, path in (("GET", "/v1/admin/jobs"), ("GET", "/v1/admin/dead-letters"),
                         ("POST", "/v1/admin/dead-letters/replay")):
        r = user.http.request(method, path, json={"all": True} if method == "POST" else None)
        assert r.status_code == 403 and "operators only" in r.text, (path, r.text)
    assert user.http.get("/v1/admin/jobs", headers={"Authorization": ""}).status_code == 401
    view = operator(stack).http.get("/v1/admin/jobs").json()
    assert view["queue"] is True
    assert {"extract", "embed", "tag", "deadletter"} <= {s["stage"] for s in view["stages"]}


def test_a_firebase_custom_claim_makes_an_operator(firebase):  # noqa: F811
    auth, token = firebase
    api = SimpleNamespace(cfg=auth.cfg, auth=auth)

    def asks(tok: str) -> Request:
        return Request({"type": "http", "headers": [(b"authorization", f"Bearer {tok}".encode())]})

    assert is_operator(api, asks(token("alice", admin=True)), "alice")
    assert not is_operator(api, asks(token("bob")), "bob")
    assert not is_operator(api, asks(token("mallory", admin="true")), "mallory")  # a claim of true, not a string
    listed = SimpleNamespace(cfg=auth.cfg.model_copy(update={"admin_users": "carol, dave"}), auth=auth)
    assert is_operator(listed, asks(token("dave")), "dave")


def test_a_stopped_stage_leaves_deliveries_waiting_that_drain_once_it_runs(stack, user):
    """extract is stopped (SIGSTOP, process group and all): deliveries to it hang, then queue up behind the
    broker's busy workers; the view counts them waiting with their age. Once it runs again they drain."""
    admin = operator(stack).http
    extract = stack.procs["extract"].pid
    ids = []
    os.killpg(extract, signal.SIGSTOP)
    try:
        for i in range(40):
            r = user.upload(f"stopped-{i}.txt", f"note {i}: the ferry timetable changes in spring".encode())
            ids.append(r.json()["id"])
            if (waiting := stage(admin.get("/v1/admin/jobs").json(), "extract"))["waiting"] >= 1:
                break
        assert waiting["waiting"] >= 1, waiting
        assert waiting["oldest_waiting_s"] is not None and waiting["oldest_waiting_s"] >= 0
        assert waiting["running"] >= 1  # the deliveries the stopped process holds
    finally:
        os.killpg(extract, signal.SIGCONT)
    assert [user.wait(i)["status"] for i in ids] == ["ready"] * len(ids)
    deadline = time.monotonic() + 60
    while (now := stage(admin.get("/v1/admin/jobs").json(), "extract"))["waiting"] or now["running"]:
        assert time.monotonic() < deadline, now
        time.sleep(0.3)


def test_dead_letters_are_listed_and_replayed_per_stage(stack, sql):
    """A text.extracted with malformed data is refused by embed, tag and suggest alike: a dead letter
    for each. Replayed from the view while still broken, it fails again and is recorded again."""
    admin = operator(stack).http
    event_id = f"malformed-{uuid.uuid4()}"
    headers, body = wire.binary(wire.from_json({
        "specversion": "1.0", "type": TextExtracted.type, "source": "/test", "id": event_id,
        "datacontenttype": "application/json", "data": {"not": "a text.extracted"}}))
    assert httpx.post(f"http://127.0.0.1:{stack.broker_port}/default", headers=headers, content=body).status_code == 202
    deadline = time.monotonic() + 60
    while len(sql("SELECT id FROM dead_letters WHERE event_id = %s", event_id)) < 3:
        assert time.monotonic() < deadline, "the malformed event was not dead-lettered by embed, tag and suggest"
        time.sleep(0.2)

    view = admin.get("/v1/admin/jobs").json()
    assert all(stage(view, s)["dead_lettered"] >= 1 for s in ("embed", "tag", "suggest")), view
    listed = admin.get("/v1/admin/dead-letters", params={"stage": "embed"}).json()
    ours = [d for d in listed if d["event_id"] == event_id]
    assert len(ours) == 1 and {d["stage"] for d in listed} == {"embed"} and ours[0]["error_code"] == "400"

    assert admin.post("/v1/admin/dead-letters/replay", json={}).status_code == 422  # which ones, then?
    replayed = admin.post("/v1/admin/dead-letters/replay", json={"ids": [ours[0]["id"]]})
    assert replayed.status_code == 200 and [d["id"] for d in replayed.json()] == [ours[0]["id"]]
    deadline = time.monotonic() + 60
    while not sql("SELECT received_at > %s::timestamptz AS again FROM dead_letters WHERE id = %s",
                  ours[0]["received_at"], ours[0]["id"])[0]["again"]:
        assert time.monotonic() < deadline, "the replayed event was not dead-lettered again"
        time.sleep(0.2)
    again = sql("SELECT replayed_at FROM dead_letters WHERE id = %s", ours[0]["id"])[0]
    assert again["replayed_at"] is None  # failed again after the replay: a dead letter to look at again
    assert event_id in {d["event_id"] for d in admin.get("/v1/admin/dead-letters", params={"stage": "embed"}).json()}


def test_mindspace_jobs_prints_the_view_and_watches_it_until_ctrl_c(stack, capsys, monkeypatch):
    from local import cli
    from local.cli import operators

    cli.console.width = 200
    argv = ["--api", stack.api_url, "--token", f"dev:{operator(stack).name}", "jobs"]
    cli.main(argv)
    out = capsys.readouterr().out
    assert "waiting" in out and "dead letters" in out and "extract" in out and "embed" in out
    naps = []

    def nap(seconds):  # the second refresh is interrupted, as by Ctrl-C
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(operators.time, "sleep", nap)
    cli.main([*argv, "--watch"])
    assert naps == [2.0, 2.0] and "extract" in capsys.readouterr().out
