"""Imports (issue 22): a Google Keep export, a Markdown/Obsidian vault and an Evernote .enex become files with their
creation times and labels, attachments linked to their notes; the same archive twice adds nothing; a hostile
archive is refused whole, with the reason, and leaves nothing behind; and an export of one account imports into an
empty one with every file, tag and reminder."""
from __future__ import annotations

import io
import time
import uuid
import zipfile

import archives
import pytest


def send(user, name: str, data: bytes, timeout: float = 120) -> dict:
    r = user.http.post("/v1/imports", files={"file": (name, data)})
    assert r.status_code == 202, r.text
    job = r.json()
    deadline = time.monotonic() + timeout
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.3)
        job = user.http.get(f"/v1/imports/{job['id']}").json()
    assert job["status"] in ("done", "failed"), job
    return job


def settle(user) -> dict[str, dict]:
    """Every file of the user, by name, once none is processing."""
    files = user.http.get("/v1/files", params={"limit": 500}).json()
    return {f["filename"]: user.wait(f["id"]) for f in files}


def labels(f: dict) -> set[str]:
    return {t["label"] for t in f["tags"] if t["kind"] == "label"}


@pytest.mark.on_containers
def test_a_keep_export_imports_with_labels_times_and_attachments_once(user, other_user):
    job = send(user, "takeout-keep.zip", archives.keep_export())
    assert job["status"] == "done" and job["format"] == "keep", job
    assert job["total"] == 3 and job["added"] == 3 and job["done"] == 3  # two notes, one photo; the bin skipped
    files = settle(user)
    assert set(files) == {"Garden plan.md", "Hardware store.md", "seeds.png"}, set(files)
    plan, store, photo = files["Garden plan.md"], files["Hardware store.md"], files["seeds.png"]
    assert all(f["status"] == "ready" for f in files.values()), files
    assert plan["captured_at"].startswith("2024-03-01") and store["captured_at"].startswith("2024-04-01")
    assert labels(plan) == {"Garden", "Spring"} and labels(store) == {"Errands"}  # kept through the tag stage
    assert photo["parent_id"] == plan["id"] and plan["attachments"] == [photo["id"]]
    assert user.search("when do the tomatoes go outside")[0]["file_id"] == plan["id"]
    assert user.search("basil seed packets", mode="text")[0]["file_id"] == photo["id"]  # the photo, OCRed
    assert [h["file_id"] for h in user.search("wall plugs", tag="errands")] == [store["id"]]
    again = send(user, "takeout-keep.zip", archives.keep_export())
    assert again["status"] == "done" and again["added"] == 0 and again["total"] == 3
    assert len(user.http.get("/v1/files").json()) == 3
    assert other_user.http.get(f"/v1/imports/{job['id']}").status_code == 404
    assert other_user.http.get("/v1/files").json() == []


def test_a_markdown_vault_keeps_front_matter_as_labels_and_links_as_text(user):
    job = send(user, "vault.zip", archives.vault())
    assert job["status"] == "done" and job["format"] == "markdown" and job["added"] == 3, job
    files = settle(user)
    assert set(files) == {"Pesto.md", "2024-06-03.md", "pesto.png"}, set(files)
    pesto = files["Pesto.md"]
    assert labels(pesto) == {"cooking", "basil"} and pesto["captured_at"].startswith("2024-06-02T18:30")
    assert files["pesto.png"]["parent_id"] == pesto["id"]
    hit = user.search("Garden plan", mode="text")[0]
    assert hit["file_id"] == pesto["id"] and "Garden plan" in hit["passage"]  # the wiki-link, kept as text


def test_an_evernote_enex_imports_notes_tags_and_resources(user):
    job = send(user, "notes.enex", archives.enex())
    assert job["status"] == "done" and job["format"] == "enex" and job["added"] == 3, job
    files = settle(user)
    bike, library = files["Bike repair.html"], files["Library.html"]
    assert labels(bike) == {"bike", "errands"} and bike["captured_at"].startswith("2023-11-05T10:15")
    assert files["brake.png"]["parent_id"] == bike["id"]
    assert user.search("brake pads for the bicycle")[0]["file_id"] == bike["id"]
    assert user.search("atlas of mountain lakes", mode="text")[0]["file_id"] == library["id"]


@pytest.mark.parametrize("name, data, why", [
    ("bomb.zip", archives.bomb(), "a zip bomb"),
    ("huge.zip", archives.claiming(4_000_000_000), "over IMPORT_MAX_MEMBER_BYTES"),
    ("climb.zip", archives.zipped({"notes/a.md": "fine", "../../etc/cron.d/evil.md": "x"}), "outside its folder"),
    ("absolute.zip", archives.zipped({"notes/a.md": "fine", "/etc/evil.md": "x"}), "outside its folder"),
    ("broken-keep.zip", archives.zipped({"Takeout/Keep/a.json": archives.keep_note("A", "fine", created_usec=1),
                                         "Takeout/Keep/b.json": "{not json"}), "is not JSON"),
    ("nothing.zip", archives.zipped({"photo.jpg": "not a note"}), "holds no notes"),
    ("truncated.zip", archives.keep_export()[:2000], "not a zip archive"),
    ("laughs.enex", archives.BILLION_LAUGHS, "not a readable Evernote"),
    ("random.bin", bytes(range(256)) * 8, "not an archive this reads"),
])
def test_a_hostile_archive_is_refused_whole_and_leaves_nothing(user, stack, sql, name, data, why):
    job = send(user, name, data)
    assert job["status"] == "failed" and why in job["reason"], job
    assert user.http.get("/v1/files").json() == []  # nothing half-imported
    assert sql("SELECT count(*) AS n FROM tags WHERE user_id = %s", user.name)[0]["n"] == 0
    stored = stack.data_dir / "blobs" / "users" / user.name
    assert not [p for p in stored.rglob("*") if p.is_file() and "/imports/" not in str(p)]


def test_imports_are_refused_empty_too_big_or_over_quota(user, stack):
    r = user.http.post("/v1/imports", files={"file": ("empty.zip", b"")})
    assert r.status_code == 422 and "empty" in r.text
    from conftest import in_process
    who = {"Authorization": f"Bearer dev:import-quota-{uuid.uuid4().hex[:6]}"}
    with in_process(stack, max_import_bytes=1000) as client:
        r = client.post("/v1/imports", headers=who, files={"file": ("a.zip", archives.keep_export())})
        assert r.status_code == 413 and "MAX_IMPORT_BYTES" in r.text


def test_an_import_that_would_pass_the_quota_adds_nothing(stack):
    """The stage counts every new file of the archive against QUOTA_FILES before it stores one."""
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    from events.catalogue import ImportRequested
    from functions.imports.main import Imports
    from shared.blobs import LocalBlobStore
    from shared.config import Settings
    from shared.errors import Rejected
    from shared.stage import Context

    user, import_id = f"import-quota-{uuid.uuid4().hex[:6]}", uuid.uuid4()
    cfg = Settings(database_url=stack.database_url, data_dir=stack.data_dir, quota_files=2)
    blobs = LocalBlobStore(cfg.blob_dir)
    uri = blobs.put(f"users/{user}/imports/{import_id}/archive", archives.keep_export())
    with ConnectionPool(stack.database_url, kwargs={"row_factory": dict_row, "autocommit": True}, open=True) as pool:
        with pool.connection() as c:
            c.execute("INSERT INTO users (id) VALUES (%s)", (user,))
            c.execute("INSERT INTO imports (id, user_id, filename, size) VALUES (%s, %s, 'k.zip', 1)",
                      (import_id, user))
        ctx = Context(cfg, blobs, pool, None)
        with pytest.raises(Rejected, match="3 files do not fit"), ctx.transaction():
            Imports().handle(ImportRequested(import_id=import_id, user_id=user, blob_uri=uri), ctx)
        with pool.connection() as c:
            assert c.execute("SELECT count(*) AS n FROM files WHERE user_id = %s", (user,)).fetchone()["n"] == 0
            job = c.execute("SELECT * FROM imports WHERE id = %s", (import_id,)).fetchone()
            assert job["status"] == "failed" and "QUOTA_FILES" in job["reason"]
            c.execute("DELETE FROM users WHERE id = %s", (user,))


def test_an_export_imports_into_an_empty_account_with_nothing_lost(stack, user, other_user):
    mail = (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: Boiler\r\nDate: Tue, 01 Dec 2026 08:00:00 +0000\r\n"
            b"Content-Type: text/plain\r\n\r\nThe boiler service is booked; the engineer needs the cellar key.\r\n")
    assert send(user, "takeout-keep.zip", archives.keep_export())["status"] == "done"
    made = user.upload_all({"note": ("dentist.md", b"Dentist next Friday at 3pm, bring the insurance card."),
                            "mail": ("boiler.eml", mail)})
    note = made["note"]
    set_by_hand = user.http.post("/v1/reminders", json={"title": "insurance card", "due_at": "2099-03-01T08:00:00Z",
                                                        "rrule": "FREQ=YEARLY", "file_id": note["id"]})
    assert set_by_hand.status_code == 201, set_by_hand.text
    suggested = [r for r in user.http.get("/v1/reminders", params={"status": "suggested"}).json()
                 if r["file_id"] == note["id"]]
    assert suggested and user.http.patch(f"/v1/reminders/{suggested[0]['id']}",
                                         json={"status": "dismissed"}).status_code == 200
    before = snapshot(user)
    assert len(before["files"]) == 5
    assert {("Garden plan.md", "label", "Garden"), ("Hardware store.md", "label", "Errands")} <= before["tags"]
    assert {r[3] for r in before["reminders"]} >= {"scheduled", "dismissed"} and len(before["tags"]) > 10
    export = user.http.get(user.http.post("/v1/exports").json()["download"])
    assert export.status_code == 200
    with zipfile.ZipFile(io.BytesIO(export.content)) as z:
        assert z.testzip() is None
    job = send(other_user, "mindspace-export.zip", export.content, timeout=180)
    assert job["status"] == "done" and job["format"] == "mindspace" and job["added"] == len(before["files"]), job
    after = snapshot(other_user)
    assert after == before
    assert send(other_user, "mindspace-export.zip", export.content)["added"] == 0  # the same export twice: nothing


def snapshot(user) -> dict:
    """What a person would miss if it were lost: files (name, bytes, kind, capture time, parent), tags, reminders."""
    files = settle(user)
    names = {f["id"]: name for name, f in files.items()}
    reminders = user.http.get("/v1/reminders").json()
    return {
        "files": {(n, f["sha256"], f["category"], f["captured_at"], names.get(f["parent_id"]), f["status"])
                  for n, f in files.items()},
        "tags": {(n, t["kind"], t["label"] if t["kind"] == "label" else t["name"]) for n, f in files.items()
                 for t in f["tags"]},
        "reminders": {(r["title"], r["due_at"], r["rrule"], r["status"], names.get(r["file_id"])) for r in reminders},
    }


def test_a_forged_import_event_reads_no_one_elses_archive(stack, user, other_user, sql):
    """An event naming another user's archive (or an import that is not theirs) imports nothing."""
    import httpx

    from events import wire
    from events.catalogue import ImportRequested
    from shared.blobs import LocalBlobStore

    blobs = LocalBlobStore(stack.data_dir / "blobs")
    import_id = uuid.uuid4()
    uri = blobs.put(f"users/{user.name}/imports/{import_id}/archive", archives.keep_export())
    sql("INSERT INTO users (id) VALUES (%s) ON CONFLICT DO NOTHING", user.name)
    sql("INSERT INTO imports (id, user_id, filename, size) VALUES (%s, %s, 'k.zip', 1)", import_id, user.name)
    url = f"http://127.0.0.1:{stack.function_ports['imports']}/"
    for forged in (ImportRequested(import_id=import_id, user_id=other_user.name, blob_uri=uri),
                   ImportRequested(import_id=uuid.uuid4(), user_id=user.name, blob_uri=uri)):
        headers, body = wire.binary(wire.make(forged, "intruder"))
        r = httpx.post(url, headers=headers, content=body, timeout=30)
        assert r.status_code == 422 and "not this import's" in r.json()["detail"], r.text
    assert sql("SELECT status FROM imports WHERE id = %s", import_id) == [{"status": "queued"}]
    assert user.http.get("/v1/files").json() == [] and other_user.http.get("/v1/files").json() == []
