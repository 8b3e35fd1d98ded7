"""The spine end to end, against the real stack: real PostgreSQL + pgvector, the real MiniLM model,
real HTTP between the API, the local broker and each function process."""
from __future__ import annotations

import io
import time
import uuid
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from events import catalogue, wire
from events.catalogue import FileUploaded, TextExtracted

GARDEN = (b"Saturday plan: buy tomato seedlings and basil at the market, then plant them in the raised "
          b"bed by the fence, where the sun is strongest. Water every morning during the heat wave.")
BUDGET = (b"Call with Anna about the quarterly budget. We agreed to cut travel expenses by ten percent "
          b"and to review the marketing spend again in March.")


def post_event(url: str, data, *, id: str | None = None, producer: str = "test") -> httpx.Response:
    headers, body = wire.binary(wire.make(data, producer, id=id))
    return httpx.post(url, headers=headers, content=body, timeout=60)


def function_url(stack, name: str) -> str:
    return f"http://127.0.0.1:{stack.function_ports[name]}/"


@pytest.mark.on_containers
def test_a_note_is_found_by_a_paraphrase(user):
    garden = user.upload("garden.md", GARDEN)
    assert garden.status_code == 201, garden.text
    budget = user.upload("budget.txt", BUDGET)
    assert user.wait(garden.json()["id"])["status"] == "ready"
    f = user.wait(budget.json()["id"])
    assert f["status"] == "ready" and f["ready_at"]
    assert f["stages"]["extract"]["status"] == "done" and f["stages"]["embed"]["detail"]["chunks"] >= 1
    assert garden.json()["media_type"] == "text/markdown" and f["media_type"] == "text/plain"
    # No word of the query appears in the note: it is found by meaning.
    hits = user.search("growing vegetables in my backyard")
    assert hits[0]["file_id"] == garden.json()["id"]
    assert user.search("money spending cuts")[0]["file_id"] == budget.json()["id"]


def test_the_same_bytes_twice_are_one_file(user):
    first = user.upload("a.txt", b"one note, uploaded twice by the same person")
    second = user.upload("b.txt", b"one note, uploaded twice by the same person")
    assert first.status_code == 201 and second.status_code == 200
    assert second.json()["id"] == first.json()["id"] and second.json()["duplicate"] is True
    assert len(user.http.get("/v1/files").json()) == 1


@pytest.mark.on_containers
def test_a_redelivered_event_changes_nothing(stack, user, sql):
    f = user.upload("n.txt", GARDEN + b" Also the cucumbers.").json()
    user.wait(f["id"])
    # file.ready's own consumers (notify, backup) run after the file is ready: let them finish first.
    deadline = time.monotonic() + 60
    while sql("SELECT count(*) AS n FROM file_stages WHERE file_id = %s AND stage IN ('notify', 'backup')"
              " AND status = 'done'", f["id"])[0]["n"] < 2:
        assert time.monotonic() < deadline, "file.ready was not consumed by notify and backup"
        time.sleep(0.2)
    before = sql("SELECT stage, attempts, status FROM file_stages WHERE file_id = %s ORDER BY stage", f["id"])
    chunks = sql("SELECT ord, text FROM chunks WHERE file_id = %s ORDER BY ord", f["id"])
    # Only this file's events: PingSource ticks and other users' work go on in the background.
    mine = "SELECT count(*) AS n FROM consumed_events WHERE reply::text LIKE '%%' || %s || '%%'"
    consumed = sql(mine, f["id"])[0]["n"]
    # The very event the API emitted, delivered again through the broker (same source and id).
    row = sql("SELECT * FROM files WHERE id = %s", f["id"])[0]
    again = FileUploaded(file_id=row["id"], user_id=user.name, blob_uri=row["blob_uri"], filename=row["filename"],
                         media_type=row["media_type"], category=row["category"], size=row["size"],
                         sha256=row["sha256"])
    ingress = f"http://127.0.0.1:{stack.broker_port}/default"
    assert post_event(ingress, again, producer="api",
                      id=catalogue.reply_id("api", "upload", f["id"])).status_code == 202
    # And the extraction result delivered straight to embed, twice, the way a retry would.
    text_uri = row["blob_uri"].rsplit("/", 1)[0] + "/text.json"
    extracted = TextExtracted(file_id=row["id"], user_id=user.name, text_uri=text_uri, method="text", chars=1)
    replies = [post_event(function_url(stack, "embed"), extracted, id="retry-1") for _ in range(2)]
    assert [r.status_code for r in replies] == [200, 200]
    assert replies[0].headers["ce-id"] == replies[1].headers["ce-id"]  # the same reply, replayed
    assert replies[0].headers["ce-type"] == "com.mindspace.text.embedded"
    time.sleep(3)  # let the broker deliver whatever the redelivery could have caused
    assert sql("SELECT ord, text FROM chunks WHERE file_id = %s ORDER BY ord", f["id"]) == chunks
    after = sql("SELECT stage, attempts, status FROM file_stages WHERE file_id = %s ORDER BY stage", f["id"])
    embed_before = next(s for s in before if s["stage"] == "embed")
    embed_after = next(s for s in after if s["stage"] == "embed")
    assert [s for s in after if s["stage"] != "embed"] == [s for s in before if s["stage"] != "embed"]
    assert embed_after["attempts"] == embed_before["attempts"] + 1  # one new event, consumed once
    assert sql(mine, f["id"])[0]["n"] == consumed + 1


def test_a_malformed_event_gets_400_and_is_recorded(stack, sql):
    url = function_url(stack, "extract")
    r = httpx.post(url, content=b"{not json", headers={"content-type": "application/cloudevents+json"})
    assert r.status_code == 400 and "not a CloudEvent" in r.json()["detail"]
    bad = {"specversion": "1.0", "type": "com.mindspace.file.uploaded", "source": "/test", "id": "bad-1",
           "subject": str(uuid.uuid4()), "data": {"file_id": "nope", "user_id": ""}}
    r = httpx.post(url, json=bad, headers={"content-type": "application/cloudevents+json"})
    assert r.status_code == 400 and "file_id" in r.json()["detail"]
    rows = sql("SELECT http_status, reason FROM event_failures WHERE consumer = 'extract' AND event_id = 'bad-1'")
    assert rows and rows[0]["http_status"] == 400


@pytest.mark.on_containers
def test_a_poison_event_ends_in_the_dead_letter_sink_and_the_files_status(stack, user, sql):
    f = user.upload("p.txt", b"a note whose extracted text will go missing").json()
    user.wait(f["id"])
    sql("UPDATE files SET status = 'processing' WHERE id = %s", f["id"])  # as if still on its way
    lost = TextExtracted(file_id=f["id"], user_id=user.name, text_uri="file:///nowhere/text.json",
                         method="text", chars=3)
    r = post_event(f"http://127.0.0.1:{stack.broker_port}/default", lost, id="poison-1")
    assert r.status_code == 202
    done = user.wait(f["id"], timeout=60)
    # embed and tag both take text.extracted; whichever fails first names itself in the reason.
    assert done["status"] == "failed" and done["status_reason"].startswith(("embed:", "tag:")), done
    deadline = time.monotonic() + 30
    while len(dead := sql("SELECT * FROM dead_letters WHERE event_id = 'poison-1'")) < 2:
        assert time.monotonic() < deadline, dead
        time.sleep(0.2)
    assert {d["error_code"] for d in dead} == {"422"} and {str(d["file_id"]) for d in dead} == {f["id"]}


def test_an_event_naming_another_users_file_is_refused(stack, user, other_user, sql):
    f = user.upload("mine.txt", b"my private note about the surprise party").json()
    user.wait(f["id"])
    row = sql("SELECT * FROM files WHERE id = %s", f["id"])[0]
    forged = TextExtracted(file_id=row["id"], user_id=other_user.name, text_uri="file:///x", method="text",
                           chars=1)
    r = post_event(function_url(stack, "embed"), forged)
    assert r.status_code == 422 and "no file" in r.json()["detail"]


def test_a_user_cannot_see_search_or_delete_another_users_file(user, other_user):
    f = user.upload("secret.txt", b"The combination of the blue safe is twelve, thirty, seven.").json()
    user.wait(f["id"])
    assert other_user.http.get(f"/v1/files/{f['id']}").status_code == 404
    assert other_user.http.delete(f"/v1/files/{f['id']}").status_code == 404
    assert all(h["file_id"] != f["id"] for h in other_user.search("safe combination"))
    assert other_user.http.get("/v1/files").json() == []
    assert user.search("safe combination")[0]["file_id"] == f["id"]


def test_delete_removes_blob_chunks_and_rows(user, sql):
    f = user.upload("gone.txt", b"a note to be deleted about migrating birds").json()
    user.wait(f["id"])
    blob = sql("SELECT blob_uri FROM files WHERE id = %s", f["id"])[0]["blob_uri"]
    assert user.http.delete(f"/v1/files/{f['id']}").status_code == 204
    assert user.http.get(f"/v1/files/{f['id']}").status_code == 404
    assert sql("SELECT 1 FROM chunks WHERE file_id = %s", f["id"]) == []
    assert not Path(urlparse(blob).path).exists()
    assert user.search("migrating birds") == []


def test_bad_uploads_get_clear_errors(stack, user):
    from conftest import UPLOAD_LIMIT

    big = user.upload("big.txt", b"x" * (UPLOAD_LIMIT + 1))
    assert big.status_code == 413 and "limit" in big.json()["detail"]
    empty = user.upload("empty.txt", b"")
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    assert user.http.get("/v1/files", headers={"Authorization": "Bearer nobody"}).status_code == 401
    assert httpx.get(f"{stack.api_url}/v1/files").status_code == 401


def test_a_file_no_stage_reads_is_marked_unsupported(user):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("notes.txt", "zipped notes")
    f = user.upload("holiday.txt", archive.getvalue()).json()  # the name lies; the bytes are a zip
    assert f["media_type"] == "application/zip" and f["category"] == "other"
    done = user.wait(f["id"])
    assert done["status"] == "unsupported" and "application/zip" in done["status_reason"]


def test_stopping_and_restarting_the_stack_loses_no_event(stack, user):
    ids = [user.upload(f"r{i}.txt", f"restart note {i}: the lighthouse keeper counts ships at dusk {i}".encode())
           .json()["id"] for i in range(6)]
    stack.stop(database=False)  # mid-run: deliveries are queued or in flight
    stack.start_processes()
    stack.wait_ready()
    assert [user.wait(i)["status"] for i in ids] == ["ready"] * 6


def test_a_long_note_is_chunked_and_its_middle_is_found(user, sql):
    filler = " ".join(f"Entry {i}: the weather was mild and the train ran on time." for i in range(150))
    middle = "The spare key to the cellar is hidden under the blue flowerpot on the balcony."
    f = user.upload("journal.txt", f"{filler} {middle} {filler.replace('Entry', 'Later entry')}".encode()).json()
    done = user.wait(f["id"])
    assert done["stages"]["embed"]["detail"]["chunks"] >= 5
    hit = user.search("where did I put the key to the basement")[0]
    assert hit["file_id"] == f["id"] and "flowerpot" in hit["passage"]
