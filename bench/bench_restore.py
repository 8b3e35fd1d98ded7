"""Recovery time (RTO) of the embedded PostgreSQL for a database of FILES files of 10 chunks each (10k files, 100k
chunks: MiniLM's 384 dimensions, the HNSW index the migrations make), by point-in-time recovery (local/pitr.py): the WAL
archived to a folder, a base backup, and a restore to a noted moment. Two cases: the base backup taken before the
whole load (every row replayed from the archive: the worst a day between nightly base backups can hold) and right
after it (the night's base backup, then a few hundred files' WAL: the usual case). Prints the restore's seconds,
the database's and the archive's sizes, and checks that the restored database holds exactly the noted moment's
files.

    .venv/bin/python bench/bench_restore.py [--files 10000] [--quick]
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg

from common import emit, options

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from local import pitr  # noqa: E402
from local.stack import PG_MAJOR, embedded_postgres  # noqa: E402
from shared import db  # noqa: E402

DIM, PER_FILE = 384, 10  # 10k files, 100k chunks: the size the issue asks the restore time of


def load(url: str, user: str, files: int, rng) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO users (id) VALUES (%s) ON CONFLICT DO NOTHING", (user,))
        ids = [uuid.uuid4() for _ in range(files)]
        with conn.cursor().copy("COPY files (id, user_id, filename, media_type, category, size, sha256, blob_uri,"
                                " status) FROM STDIN") as copy:
            for i, fid in enumerate(ids):
                copy.write_row((fid, user, f"n{i}.txt", "text/plain", "text", 1, uuid.uuid4().hex * 2, "file:///x",
                                "ready"))
        vectors = rng.normal(size=(files * PER_FILE, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        with conn.cursor().copy("COPY chunks (file_id, ord, user_id, text, embedding) FROM STDIN") as copy:
            for n, v in enumerate(vectors):
                copy.write_row((ids[n // PER_FILE], n % PER_FILE, user, f"passage {n} of a note about things",
                                "[" + ",".join(f"{x:.5f}" for x in v) + "]"))


def folder_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def restore(data: Path, archive: Path, noted: datetime, expected: int, oldest: bool) -> float:
    done = pitr.restore(data, archive, noted, PG_MAJOR, oldest=oldest)
    with psycopg.connect(done["server"].get_uri()) as conn:
        found = conn.execute("SELECT count(*) FROM files").fetchone()[0]
    done["server"].stop()
    assert found == expected, (found, expected)
    shutil.rmtree(data / "pg")  # the next restore starts from the archive again, as the first did
    if done["set_aside"]:
        Path(done["set_aside"]).rename(data / "pg")
    return done["seconds"]


def measure(files: int, rng) -> dict:
    """One database, two base backups: the first before the load (every row replayed from the WAL: the worst a
    day between nightly base backups can hold), the second after it (then a twentieth more files: the usual)."""
    data = Path(tempfile.mkdtemp(prefix="bench-restore-", dir="/tmp"))
    os.chmod(data, 0o755)
    archive = data / "wal-archive"
    try:
        server = embedded_postgres(data, pitr.archiving(archive))
        url = server.get_uri()
        db.migrate(url)
        pitr.base_backup(url, archive, PG_MAJOR)
        began = time.perf_counter()
        load(url, "bench", files, rng)
        load_s = time.perf_counter() - began
        pitr.base_backup(url, archive, PG_MAJOR)
        load(url, "bench", files // 20, rng)  # the day's new files since the night's base backup
        with psycopg.connect(url, autocommit=True) as conn:
            expected = conn.execute("SELECT count(*) FROM files").fetchone()[0]
            chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
            db_mib = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20
            time.sleep(1.1)
            noted = datetime.now(UTC)
            time.sleep(1.1)
            conn.execute("DELETE FROM files WHERE id IN (SELECT id FROM files LIMIT 10)")  # after the moment
            pitr.archive_now(conn)
        server.stop()
        sizes = {"database_mib": db_mib, "wal_mib": folder_mib(archive / "wal"),
                 "base_mib": folder_mib(archive / "base"), "load_s": load_s}
        # A restore promotes a new timeline into its archive, which a second restore would follow: each gets a
        # copy of the archive as it stood.
        second = data / "wal-archive-2"
        shutil.copytree(archive, second, symlinks=True)
        pitr._own(second, pitr.server_user())
        return {"files": expected, "chunks": chunks, **sizes, "cases": [
            {"base_backup": "before the load", "restore_s": restore(data, archive, noted, expected, oldest=True)},
            {"base_backup": "after the load", "restore_s": restore(data, second, noted, expected, oldest=False)}]}
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    p = options(__doc__)
    p.add_argument("--files", type=int, default=10_000)
    args = p.parse_args()
    files = 500 if args.quick else args.files
    r = measure(files, np.random.default_rng(0))
    print(f"{r['files']} files, {r['chunks']} chunks: database {r['database_mib']:.0f} MiB, WAL archived "
          f"{r['wal_mib']:.0f} MiB, base backups {r['base_mib']:.0f} MiB (the load took {r['load_s']:.0f} s)")
    for c in r["cases"]:
        print(f"  base backup {c['base_backup']:<16}: restored in {c['restore_s']:5.1f} s", flush=True)
    emit(args, r)


if __name__ == "__main__":
    main()
