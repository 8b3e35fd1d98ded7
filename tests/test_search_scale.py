"""Search with pgvector 0.8's iterative index scans, and the embedded server that brings it: a data folder
opens again with its vectors, the extension is brought up to date at every start, and a selective filter
finds every hit through the index itself."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest

from local.stack import PG_MAJOR, embedded_postgres
from shared import db
from shared.models import EMBED_DIM

from conftest import User


@pytest.fixture
def data_dir():
    # Not pytest's tmp_path: the server runs as its own user, who cannot pass /tmp/pytest-of-root (0700).
    path = Path(tempfile.mkdtemp(prefix="mindspace-pg-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def extension_version(url: str) -> tuple[int, ...]:
    import psycopg

    with psycopg.connect(url) as c:
        return tuple(map(int, c.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
                         .fetchone()[0].split(".")))


def test_a_folder_opens_again_with_its_vectors_and_pgvector_0_8(data_dir):
    import psycopg

    server = embedded_postgres(data_dir)
    try:
        url = server.get_uri()
        db.migrate(url)
        assert extension_version(url) >= (0, 8)
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("INSERT INTO users (id) VALUES ('keeps')")
            assert c.execute("SHOW server_version").fetchone()[0].startswith(f"{PG_MAJOR}.")
    finally:
        server.cleanup()
    assert (data_dir / "pg" / "PG_VERSION").read_text().strip() == str(PG_MAJOR)
    server = embedded_postgres(data_dir)  # the update at start runs again, and changes nothing
    try:
        url = server.get_uri()
        assert db.migrate(url) == []
        assert extension_version(url) >= (0, 8)
        with psycopg.connect(url) as c:
            assert c.execute("SELECT id FROM users").fetchall() == [("keeps",)]
    finally:
        server.cleanup()


OLD_WHEEL = """
import sys, pgserver, psycopg
server = pgserver.get_server(sys.argv[1], cleanup_mode="stop")
with psycopg.connect(server.get_uri(), autocommit=True) as c:
    c.execute("CREATE EXTENSION vector")
    c.execute("CREATE TABLE kept (id int PRIMARY KEY, e vector(3))")
    c.execute("INSERT INTO kept SELECT i, ARRAY[cos(i * 0.03), sin(i * 0.03), 0]::vector"
              " FROM generate_series(1, 100) i")
    c.execute("CREATE INDEX ON kept USING hnsw (e vector_cosine_ops)")
    print(c.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0])
"""


def test_a_folder_of_the_old_pgserver_wheel_opens_with_its_vectors(data_dir):
    """The wheel the local stack used before (pgserver 0.1.4: PostgreSQL 16.2, pgvector 0.6) made this
    folder; the new server opens it as it is and updates its pgvector. Needs that wheel installed."""
    import psycopg

    try:
        import pgserver  # noqa: F401
    except ImportError:
        pytest.skip("the old pgserver wheel is not installed (pip install pgserver==0.1.4 to run this)")
    made = subprocess.run([sys.executable, "-c", OLD_WHEEL, str(data_dir / "pg")], capture_output=True, text=True,
                          check=True, timeout=120)
    assert made.stdout.split()[-1].startswith("0.6")
    server = embedded_postgres(data_dir)
    try:
        url = server.get_uri()
        assert extension_version(url) >= (0, 8)
        with psycopg.connect(url) as c:
            assert c.execute("SELECT count(*) FROM kept").fetchone()[0] == 100
            c.execute("SET enable_seqscan = off")  # through the HNSW index the old server built
            assert c.execute("SELECT id FROM kept ORDER BY e <=> '[-0.99, 0.14, 0]' LIMIT 1").fetchone()[0] == 100
    finally:
        server.cleanup()


@pytest.mark.stack
def test_a_one_percent_tag_is_found_in_full_by_the_index_scan(stack):
    """4,000 files and a tag on 1% of them: the iterative index scan alone returns k tagged passages
    (pgvector 0.6 returned about 1% of ef_search), the same as an exact scan; so does the API's page."""
    from psycopg.rows import dict_row

    from api import search

    user = User(stack, "one-percent")
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(4000, EMBED_DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [uuid.uuid4() for _ in vectors]
    tagged = {ids[i] for i in range(0, 4000, 100)}
    pool = db.pool(stack.database_url)
    with pool.connection() as c:
        c.execute("INSERT INTO users (id) VALUES (%s) ON CONFLICT DO NOTHING", (user.name,))
        with c.cursor().copy("COPY files (id, user_id, filename, media_type, category, size, sha256, blob_uri, status)"
                             " FROM STDIN") as copy:
            for i, fid in enumerate(ids):
                copy.write_row((fid, user.name, f"n{i}.txt", "text/plain", "text", 1, fid.hex * 2, "file:///x",
                                "ready"))
        with c.cursor().copy("COPY chunks (file_id, ord, user_id, text, embedding) FROM STDIN") as copy:
            for i, fid in enumerate(ids):
                copy.write_row((fid, 0, user.name, f"synthetic note {i}", str(vectors[i].tolist())))
        c.execute("INSERT INTO tags (file_id, user_id, kind, name, label, score) "
                  "SELECT unnest(%s::uuid[]), %s, 'place', 'rare', 'Rare', 1", (list(tagged), user.name))
    q = vectors[5] + vectors[100]  # near an untagged and a tagged file
    q /= np.linalg.norm(q)
    args = {"u": user.name, "q": "", "v": q, "k": 40} | {k: None for k in search.FILTERS} | {"tag": "rare"}
    with pool.connection() as c:
        c.row_factory = dict_row
        assert search.iterative_scans(c)
        with c.transaction():
            found = search.index_scan(c, args)
    assert len(found) == 40 and {r["file_id"] for r in found} <= tagged
    exact = [ids[i] for i in np.argsort(-(vectors @ q)) if ids[i] in tagged][:40]
    assert found[0]["file_id"] == ids[100]
    assert len({r["file_id"] for r in found} & set(exact)) >= 36  # approximate, but nearly all of them
    hits = user.search("anything at all", tag="Rare", limit=10, mode="vector")
    assert len(hits) == 10 and all(uuid.UUID(h["file_id"]) in tagged for h in hits)


def test_passages_move_into_partitions_by_user_with_nothing_lost(data_dir):
    """A database as migration 0014 left it, with passages of three users (vectors, text, locators,
    languages), migrated: every row is there unchanged, its tsvector made again, the table is partitioned by
    user, and a user's search reads one partition through its own HNSW index."""
    from importlib import resources

    import psycopg

    server = embedded_postgres(data_dir)
    try:
        url = server.get_uri()
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz"
                      " NOT NULL DEFAULT now())")
            for f in sorted(resources.files("shared.migrations").iterdir(), key=lambda f: f.name):
                if f.name.endswith(".sql") and f.name < "0015":
                    c.execute(f.read_text())
                    c.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (f.name.removesuffix(".sql"),))
            rng = np.random.default_rng(3)
            for user in ("ann", "bob", "cy"):
                c.execute("INSERT INTO users (id) VALUES (%s)", (user,))
                for n in range(20):
                    fid = uuid.uuid4()
                    c.execute("INSERT INTO files (id, user_id, filename, media_type, category, size, sha256,"
                              " blob_uri) VALUES (%s, %s, 'n.txt', 'text/plain', 'text', 1, %s, 'file:///x')",
                              (fid, user, fid.hex))
                    for o in range(3):
                        v = rng.normal(size=EMBED_DIM)
                        c.execute("INSERT INTO chunks (file_id, ord, user_id, text, locator, embedding, language,"
                                  " tsconfig) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                                  (fid, o, user, f"Les notes de {user} numéro {n}.{o}", f'{{"page": {o}}}',
                                   str((v / np.linalg.norm(v)).tolist()), "fr", "french"))
            columns = "file_id, ord, user_id, text, locator, embedding::text, language, tsconfig::text, tsv::text"
            before = c.execute(f"SELECT {columns} FROM chunks ORDER BY 1, 2").fetchall()
        assert db.migrate(url) == ["0015_chunks_by_user"]
        with psycopg.connect(url, autocommit=True) as c:
            assert c.execute(f"SELECT {columns} FROM chunks ORDER BY 1, 2").fetchall() == before
            assert c.execute("SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'chunks'::regclass"
                             ).fetchone() == ("h",)
            c.execute("SET enable_sort = off")  # as api/search.py asks above a thousand files
            plan = "\n".join(r[0] for r in c.execute(
                "EXPLAIN SELECT file_id FROM chunks WHERE user_id = 'bob' ORDER BY embedding <=> %s LIMIT 5",
                (str([1.0] + [0.0] * (EMBED_DIM - 1)),)))
            assert len(set(re.findall(r"chunks_p\d+", plan))) == 1 and "embedding_idx" in plan, plan
            c.execute("DELETE FROM files WHERE user_id = 'cy'")  # the cascade reaches the partitions
            assert c.execute("SELECT count(*) FROM chunks").fetchone()[0] == 120
    finally:
        server.cleanup()
