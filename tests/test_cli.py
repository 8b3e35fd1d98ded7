"""The command-line client against the running stack: upload with progress, status, search, delete."""
from __future__ import annotations

import pytest

from api import cli


def run(stack, capsys, *argv) -> str:
    cli.console.width = 200
    cli.main(["--api", stack.api_url, "--token", "dev:cli-user", *argv])
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
