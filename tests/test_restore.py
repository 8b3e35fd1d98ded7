"""Disaster recovery on the local stack: `mindspace backup-db` dumps a stack with files, `mindspace
restore-db` brings the dump back into an empty database on the same embedded server (the session's own
database is only read), and an API serving the restored database finds the same files by search."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlparse

import httpx
import psycopg
import pytest
from notes import TOPICS
from psycopg.conninfo import make_conninfo
from test_organize import refresh

from local.stack import ROOT, serve_argv

from conftest import User, free_port_block

MINDSPACE = str(Path(sys.executable).parent / "mindspace")
DATED = "Dentist appointment next Friday at 3pm; bring the insurance card."
QUERIES = ["vegetables and plants to grow", "saving money and paying bills", "visit to the doctor"]


def mindspace(*argv: str, **env: str) -> subprocess.CompletedProcess:
    """The CLI as a user runs it: its own process, its settings from the environment."""
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run([MINDSPACE, *argv], env={**base, "COLUMNS": "200", **env}, capture_output=True,
                          text=True, timeout=300)


def rows(url: str, user: str) -> dict[str, list]:
    """The user's rows in every table a restore must bring back, the vectors included."""
    with psycopg.connect(url) as conn:
        def q(sql: str) -> list:
            return conn.execute(sql, (user,)).fetchall()

        return {"files": q("SELECT id, filename, status, blob_uri FROM files WHERE user_id = %s ORDER BY id"),
                "chunks": q("SELECT file_id, ord, text, embedding::text FROM chunks WHERE user_id = %s "
                            "ORDER BY file_id, ord"),
                "tags": q("SELECT file_id, kind, name FROM tags WHERE user_id = %s ORDER BY 1, 2, 3"),
                "clusters": q("SELECT id, label, size FROM clusters WHERE user_id = %s ORDER BY id"),
                "reminders": q("SELECT id, title, status, file_id FROM reminders WHERE user_id = %s ORDER BY id")}


@pytest.fixture
def restored(stack, sql):
    """An empty database beside the session's, dropped afterwards."""
    name = f"restored_{uuid.uuid4().hex[:8]}"
    sql(f"CREATE DATABASE {name}")
    yield make_conninfo(stack.database_url, dbname=name)
    sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def api_on(stack):
    """Starts an API process on a given database, as the stack starts its own; stopped afterwards."""
    procs = []

    def start(url: str) -> User:
        port = free_port_block(1)
        env = {k: v for k, v in stack.env("api").items() if k != "K_SINK"} | {"DATABASE_URL": url}
        procs.append(subprocess.Popen(serve_argv("api", "127.0.0.1", port), env=env, cwd=ROOT))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        return User(SimpleNamespace(api_url=f"http://127.0.0.1:{port}"), "restorer")

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=30)


def test_a_dump_restored_into_an_empty_database_finds_the_same_files(stack, sql, restored, api_on, tmp_path):
    user = User(stack, "restorer")
    notes = {f"{topic}-{i}.txt": text for topic in ("garden", "money") for i, text in enumerate(TOPICS[topic][:5])}
    notes["dentist.txt"] = DATED
    ids = {name: user.upload(name, text.encode()).json()["id"] for name, text in notes.items()}
    assert all(user.wait(i)["status"] == "ready" for i in ids.values())
    refresh(user, sql)
    assert user.http.post("/v1/reminders", json={"title": "water the seedlings", "due_at": "2030-05-01T08:00:00Z",
                                                 "timezone": "UTC"}).status_code == 201
    before = rows(stack.database_url, user.name)
    assert before["clusters"] and before["tags"] and len(before["reminders"]) >= 2  # nothing compared is empty

    dump = tmp_path / "mindspace.dump"
    done = mindspace("backup-db", "--out", str(dump), "--with-blobs", DATA_DIR=str(stack.data_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wrote" in done.stdout and dump.stat().st_size > 0

    restore_dir = tmp_path / "restored-data"
    done = mindspace("restore-db", str(dump), "--with-blobs", DATABASE_URL=restored, DATA_DIR=str(restore_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows(restored, user.name) == before  # rows and vectors, exactly
    for uri in (f[3] for f in before["files"]):  # and the blobs, under the restored data folder
        original = Path(unquote(urlparse(uri).path))
        assert (restore_dir / original.relative_to(stack.data_dir)).read_bytes() == original.read_bytes()

    again = mindspace("restore-db", str(dump), DATABASE_URL=restored, DATA_DIR=str(restore_dir))
    assert again.returncode == 1 and "not empty" in again.stdout  # never over live data by default

    there = api_on(restored)
    for q in QUERIES:
        for mode in ("vector", "hybrid"):
            found = [h["file_id"] for h in there.search(q, mode=mode, limit=5)]
            assert found and found == [h["file_id"] for h in user.search(q, mode=mode, limit=5)], (q, mode)
    assert there.search("dentist appointment")[0]["file_id"] == ids["dentist.txt"]


def nightly_job() -> dict:
    from test_manifests import render

    return next(o for o in render("cpu") if o["kind"] == "CronJob" and o["metadata"]["name"] == "mindspace-db-backup")


def test_the_nightly_dump_never_overlaps_and_runs_locked_down():
    job = nightly_job()
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/part-of"] == "mindspace"  # under the default deny
    assert pod["spec"]["securityContext"]["runAsNonRoot"]
    dump, = pod["spec"]["initContainers"]
    assert "pg_dump --format=custom" in dump["command"][-1]
    for c in (dump, *pod["spec"]["containers"]):
        assert c["securityContext"]["readOnlyRootFilesystem"] and {"requests", "limits"} <= set(c["resources"])


def test_the_nightly_upload_keeps_the_newest_dumps_and_nothing_else_goes(gcs, tmp_path, monkeypatch):
    """The manifest's own upload step, against the storage emulator: the new dump goes up whole, and
    only dumps older than the newest DB_BACKUP_KEEP are deleted."""
    from shared.blobs import gcs_client

    upload = next(c for c in nightly_job()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
                  if c["name"] == "upload")
    prefix = f"dr-{uuid.uuid4().hex[:8]}/"
    env = {**os.environ, **{e["name"]: e["value"] for e in upload["env"]}, "STORAGE_EMULATOR_HOST": gcs.url,
           "DB_BACKUP_BUCKET": "mindspace-backup", "DB_BACKUP_PREFIX": prefix, "DB_BACKUP_KEEP": "2",
           "DUMP_FILE": str(tmp_path / "mindspace.dump")}
    (tmp_path / "mindspace.dump").write_bytes(os.urandom(100_000))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    bucket = gcs_client().bucket("mindspace-backup")
    older = [f"{prefix}mindspace-2024010{d}T023000Z.dump" for d in (1, 2, 3)]
    for name in [*older, f"{prefix}mindspace-notes.txt"]:
        bucket.blob(name).upload_from_string(b"an older night")
    done = subprocess.run([sys.executable, *upload["command"][1:]], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    kept = sorted(b.name for b in bucket.list_blobs(prefix=prefix))
    new = [n for n in kept if n not in older and n.endswith(".dump")]
    assert kept == sorted([older[2], *new, f"{prefix}mindspace-notes.txt"]) and len(new) == 1
    assert bucket.blob(new[0]).download_as_bytes() == (tmp_path / "mindspace.dump").read_bytes()
