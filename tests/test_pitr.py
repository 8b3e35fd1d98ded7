"""Point-in-time recovery of the embedded PostgreSQL (issue 23): with its WAL archived, a base backup taken, files
written, the moment noted, more written and one of the first deleted, a restore to the noted moment finds exactly
the first set. A server of its own, in a folder of its own: the session's stack is never touched."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from local import pitr
from local.stack import PG_MAJOR, embedded_postgres
from shared import db


def add(conn, user: str, names: list[str]) -> None:
    for name in names:
        conn.execute("""INSERT INTO files (id, user_id, filename, media_type, category, size, sha256, blob_uri)
                        VALUES (%s, %s, %s, 'text/plain', 'text', 1, %s, 'file:///nowhere')""",
                     (uuid.uuid4(), user, name, uuid.uuid4().hex * 2))


@pytest.mark.timeout(300)
def test_a_restore_to_a_noted_moment_finds_exactly_the_files_of_that_moment():
    data = Path(tempfile.mkdtemp(prefix="mindspace-pitr-", dir="/tmp"))
    os.chmod(data, 0o755)  # the server's own user must reach it
    archive = data / "wal-archive"
    try:
        server = embedded_postgres(data, pitr.archiving(archive))
        url = server.get_uri()
        db.migrate(url)
        pitr.base_backup(url, archive, PG_MAJOR)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO users (id) VALUES ('drill')")
            add(conn, "drill", ["a1.txt", "a2.txt", "a3.txt"])
            time.sleep(1.1)
            noted = datetime.now(UTC)
            time.sleep(1.1)
            add(conn, "drill", ["b1.txt", "b2.txt"])
            conn.execute("DELETE FROM files WHERE filename = 'a2.txt'")
            pitr.archive_now(conn)
        server.stop()
        done = pitr.restore(data, archive, noted, PG_MAJOR)
        with psycopg.connect(done["server"].get_uri()) as conn:
            names = {r[0] for r in conn.execute("SELECT filename FROM files WHERE user_id = 'drill'").fetchall()}
            assert names == {"a1.txt", "a2.txt", "a3.txt"}
            assert not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            conn.execute("INSERT INTO users (id) VALUES ('after')")  # promoted: writable again
            conn.commit()
        assert done["set_aside"] and Path(done["set_aside"]).is_dir()  # the way back
        done["server"].stop()
        with pytest.raises(pitr.RestoreError, match="no base backup ended before"):
            pitr.restore(data, archive, datetime(2020, 1, 1, tzinfo=UTC), PG_MAJOR)
    finally:
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.timeout(300)
def test_the_cli_takes_a_base_backup_and_recovers_to_a_moment_in_words(monkeypatch, capsys):
    from local import cli
    from shared.config import settings

    data = Path(tempfile.mkdtemp(prefix="mindspace-pitr-cli-", dir="/tmp"))
    os.chmod(data, 0o755)
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("WAL_ARCHIVE", str(data / "wal"))
    settings.cache_clear()
    try:
        server = embedded_postgres(data, pitr.archiving(data / "wal"))
        db.migrate(server.get_uri())
        cli.main(["backup-db", "--base"])
        assert "base backup" in capsys.readouterr().out
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("INSERT INTO users (id) VALUES ('drill')")
            add(conn, "drill", ["kept.txt"])
            time.sleep(5)  # "3 seconds ago" falls between the two, whatever the archiving and stopping take (<3 s)
            add(conn, "drill", ["later.txt"])
            pitr.archive_now(conn)
        server.stop()
        cli.main(["restore-db", "--to", "3 seconds ago"])
        out = capsys.readouterr().out
        assert "recovered to" in out and "1 files" in out, out
    finally:
        settings.cache_clear()
        shutil.rmtree(data, ignore_errors=True)
