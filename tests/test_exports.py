"""Everything out (issue 22, part): an export streams a zip of the caller's originals, extracted texts and
an index of files, tags, clusters, reminders and capture times; it is theirs alone."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile


def test_an_export_holds_every_original_text_and_what_is_known_of_them(user, other_user):
    files = user.upload_all({"note": ("ferry.md", b"The ferry to the island leaves at seven; bring the bicycle."),
                             "odd": ("noise.bin", bytes(range(256)) * 4)})
    assert user.http.post("/v1/reminders", json={"title": "ferry", "due_at": "2099-01-01T07:00:00Z",
                                                 "file_id": files["note"]["id"]}).status_code == 201
    job = user.http.post("/v1/exports")
    assert job.status_code == 201 and job.json()["files"] == 2 and job.json()["status"] == "ready"
    url = job.json()["download"]
    assert other_user.http.get(url).status_code == 404  # someone else's export does not exist for them
    r = user.http.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"].startswith('attachment; filename="mindspace-export-')
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        index = json.loads(z.read("index.json"))
        assert index["format"] == "mindspace-export" and index["version"] == 1 and index["user"] == user.name
        by_name = {f["filename"]: f for f in index["files"]}
        assert set(by_name) == {"ferry.md", "noise.bin"}
        for f in index["files"]:
            assert hashlib.sha256(z.read(f["original"])).hexdigest() == f["sha256"]
        note = by_name["ferry.md"]
        assert note["status"] == "ready" and note["captured_at"] and note["tags"]
        text = json.loads(z.read(note["text"]))
        assert "ferry to the island" in text["text"] and text["segments"]
        assert by_name["noise.bin"]["status"] in ("failed", "unsupported")  # no text read: none exported
        assert by_name["noise.bin"]["text"] not in z.namelist()
        assert [r["title"] for r in index["reminders"]] == ["ferry"]
        assert index["settings"]["timezone"] == "UTC"
    # A file made after the export is not in it.
    user.upload_all({"later": ("later.md", b"A note written after the export was asked for.")})
    with zipfile.ZipFile(io.BytesIO(user.http.get(url).content)) as z:
        assert len(json.loads(z.read("index.json"))["files"]) == 2
