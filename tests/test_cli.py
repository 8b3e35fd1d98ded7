"""The command-line client against the running stack: upload with progress, status, search, delete."""
from __future__ import annotations

import time

import pytest

from local import cli


def run(stack, capsys, *argv, user: str = "cli-user") -> str:
    cli.console.width = 200
    cli.main(["--api", stack.api_url, "--token", f"dev:{user}", *argv])
    return capsys.readouterr().out


def test_upload_follow_search_and_delete(stack, capsys, tmp_path):
    note = tmp_path / "harbour.md"
    note.write_text("The ferry to the island leaves at seven; bring the bicycle and a rain jacket.")
    out = run(stack, capsys, "upload", str(note))
    assert "harbour.md" in out and "embed" in out
    out = run(stack, capsys, "search", "boat", "trip", "timetable")
    assert "1. harbour.md" in out and "ferry" in out
    file_id = out.split("harbour.md", 1)[1].split()[0]
    assert "ready" in run(stack, capsys, "status", file_id)
    assert "harbour.md" in run(stack, capsys, "files")
    run(stack, capsys, "delete", file_id)
    with pytest.raises(SystemExit):
        run(stack, capsys, "status", file_id)
    assert "error 404" in capsys.readouterr().out


def test_tags_and_clusters(stack, capsys, tmp_path):
    note = tmp_path / "trip.txt"
    note.write_text("Maria Lopez booked the train from Madrid to Valencia for the conference.")
    run(stack, capsys, "upload", str(note))
    out = run(stack, capsys, "tags")
    assert "Maria Lopez" in out and "person" in out and "Madrid" in out
    assert "no clusters yet" in run(stack, capsys, "clusters")


def test_a_dead_letter_is_replayed_once_its_cause_is_fixed(stack, capsys, sql):
    """A text.extracted whose text blob is missing dead-letters at embed and tag; once the blob is
    there, `mindspace dead-letters --replay` sends it again (through the API, as an operator) and the
    file ends ready."""
    from test_jobs import operator
    from test_pipeline import post_event

    from events.catalogue import TextExtracted
    from shared.blobs import LocalBlobStore, file_key
    from shared.metrics import stage_of

    from conftest import User

    user, admin = User(stack, "cli-replay"), operator(stack).name
    with pytest.raises(SystemExit):
        run(stack, capsys, "dead-letters", user=user.name)
    assert "error 403" in capsys.readouterr().out  # operators only
    f = user.upload("later.txt", b"a note whose text arrives late").json()
    user.wait(f["id"])
    blobs = LocalBlobStore(stack.data_dir / "blobs")
    late_key = file_key(user.name, f["id"], "late.json")  # under the file's own prefix, as a stage writes it
    uri = (stack.data_dir / "blobs" / late_key).as_uri()
    late = TextExtracted(file_id=f["id"], user_id=user.name, text_uri=uri, method="text", chars=30)
    sql("UPDATE files SET status = 'processing' WHERE id = %s", f["id"])
    assert post_event(f"http://127.0.0.1:{stack.broker_port}/default", late, id="late-1").status_code == 202
    assert user.wait(f["id"], timeout=60)["status"] == "failed"
    # Embed's and tag's refusals reach the sink after the file ends failed, the later of them seconds later
    # on a busy machine (the CI once read the list before embed's had arrived).
    deadline = time.monotonic() + 90
    while not {"embed", "tag"} <= {stage_of(r["error_dest"]) for r in sql(
            "SELECT error_dest FROM dead_letters WHERE event_id = 'late-1'")}:
        assert time.monotonic() < deadline, "embed's and tag's refusals did not both reach the dead-letter sink"
        time.sleep(0.2)
    out = run(stack, capsys, "dead-letters", "--stage", "embed", user=admin)
    assert "text.extracted" in out and "422" in out
    blobs.put(late_key, b'{"text": "the kayak rental opens at dawn", '
              b'"segments": [{"start": 0, "end": 30, "locator": {}}]}')
    ids = [str(r["id"]) for r in sql("SELECT id FROM dead_letters WHERE event_id = 'late-1'")]
    assert run(stack, capsys, "dead-letters", "--replay", *ids, user=admin).count("replayed") == len(ids)
    assert user.wait(f["id"], timeout=60)["status"] == "ready"
    assert user.search("canoe hire at sunrise")[0]["file_id"] == f["id"]
    assert not sql("SELECT id FROM dead_letters WHERE id = ANY(%s) AND replayed_at IS NULL", list(map(int, ids)))


def test_import_a_keep_export_then_export_everything(stack, capsys, tmp_path):
    import zipfile

    import archives

    takeout = tmp_path / "takeout.zip"
    takeout.write_bytes(archives.keep_export())
    out = run(stack, capsys, "import", str(takeout), user="cli-mover")
    assert "done: 3 notes and attachments read, 3 new files" in out, out
    assert "Errands" in run(stack, capsys, "tags", "--kind", "label", user="cli-mover")
    target = tmp_path / "out.zip"
    assert f"wrote {target}" in run(stack, capsys, "export", "-o", str(target), user="cli-mover")
    with zipfile.ZipFile(target) as z:
        assert "index.json" in z.namelist() and len([n for n in z.namelist() if n.startswith("originals/")]) == 3
    bad = tmp_path / "bad.zip"
    bad.write_bytes(archives.bomb())
    with pytest.raises(SystemExit):
        run(stack, capsys, "import", str(bad), user="cli-mover")
    assert "a zip bomb" in capsys.readouterr().out
