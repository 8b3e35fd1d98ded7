"""Many users in one database: 1M chunks over 2,000 users whose libraries follow a Zipf spread (the largest
holds 100k chunks, the median user a few hundred), in the embedded PostgreSQL with pgvector, searched
through `GET /v1/search` of the real API (its own process, its own query embedding), as bench_search.py
does for one user. Each user writes about 6 of 40 topics (the MiniLM embeddings of topic phrases), so
other people's passages crowd around every query, and rows arrive interleaved, as uploads do.

1. Growth, in the layout the migrations make (16 partitions by hash of the user, an HNSW index each): the
   database is filled in steps (10k, 30k, 100k, 300k, 1M chunks); at each step the indexes are built
   afresh (build time and size reported) and a set of small users (the same libraries of a few hundred
   chunks throughout) and the largest user (a tenth of the rows) are searched: p50/p95 and recall@10 of
   the files returned against an exact scan in numpy.
2. Layouts at 1M: users of library sizes from ~50 to 100k chunks, in the partitioned table, then with the
   same rows in one plain table under one global HNSW index (the layout before migration 0015).
3. A note uploaded through the stack (every function running) while the database holds the 1M chunks,
   timed until `GET /v1/search` returns it.

    make bench            # or: .venv/bin/python bench/bench_users.py [--quick]
"""
from __future__ import annotations

import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bench_search
import httpx
import numpy as np
from bench_search import TOPICS, percentiles, unit
from pgvector.psycopg import register_vector

from local.stack import free_port_block

from common import emit, note, options

PER_FILE, DIM, TOPICS_EACH, NOISE = 4, 384, 6, 0.06
SIZES = (50, 300, 1_000, 3_000, 10_000, 30_000, 100_000)  # library sizes (chunks) searched at 1M
NOW = datetime.now(UTC)
SHIPPED = "by_user"  # the layout migration 0015 makes, chosen by these figures; the note's test runs on it


def start_api(stack):
    port = free_port_block(1)
    proc = bench_search.start_api(stack, port)
    proc.port = port
    return proc


def library_sizes(users: int, total: int, largest: int, smallest: int = 40) -> np.ndarray:
    """Chunks per user, whole files: the i-th largest library holds largest / i**s chunks (at least
    `smallest`), with s chosen so that the libraries add up to `total`."""
    rank, lo, hi = np.arange(1, users + 1), 0.01, 4.0
    for _ in range(60):
        s = (lo + hi) / 2
        if np.maximum(smallest, largest / rank ** s).sum() > total:
            lo = s
        else:
            hi = s
    return (np.round(np.maximum(smallest, largest / rank ** s) / PER_FILE) * PER_FILE).astype(int)


class Corpus:
    """Every file of every user (owner, topic, vectors), in the order they reach the database: the small
    users' libraries first (searched at every step), then every other file shuffled."""

    def __init__(self, sizes: np.ndarray, centres: np.ndarray, rng):
        self.users = [f"user{i:04d}" for i in range(len(sizes))]
        self.sizes = sizes
        small = [i for i in np.flatnonzero((sizes >= 200) & (sizes <= 500))][:20]
        self.small = [self.users[i] for i in small]
        topics = np.array([rng.choice(len(TOPICS), TOPICS_EACH, replace=False) for _ in sizes])
        owner = np.repeat(np.arange(len(sizes)), sizes // PER_FILE)
        first = np.isin(owner, small)
        order = np.concatenate([np.flatnonzero(first), rng.permutation(np.flatnonzero(~first))])
        self.owner = owner[order]
        self.topic = topics[self.owner, rng.integers(TOPICS_EACH, size=len(self.owner))]
        self.ids = [uuid.uuid4() for _ in self.owner]
        self.vectors = np.empty((len(self.owner) * PER_FILE, DIM), np.float32)
        for s in range(0, len(self.vectors), 100_000):  # in slices: a million at once would need 3 GB of float64
            n = min(100_000, len(self.vectors) - s)
            files = self.topic[s // PER_FILE:(s + n) // PER_FILE].repeat(PER_FILE)
            self.vectors[s:s + n] = unit(centres[files] + rng.normal(scale=NOISE, size=(n, DIM)))
        self.topics = topics

    def user(self, name: str) -> int:
        return self.users.index(name)

    def exact(self, user: str, q: np.ndarray, loaded: int) -> list:
        """The user's 10 files nearest to q by their nearest chunk, among the first `loaded` files."""
        files = np.flatnonzero(self.owner[:loaded] == self.user(user))
        rows = (files[:, None] * PER_FILE + np.arange(PER_FILE)).ravel()
        best = (self.vectors[rows] @ q).reshape(-1, PER_FILE).max(axis=1)
        return [self.ids[files[i]] for i in np.argsort(-best)[:10]]


def load(conn, corpus: Corpus, start: int, stop: int) -> None:
    """Files start..stop and their chunks by COPY (foreign keys unchecked: the rows are made consistent)."""
    conn.execute("SET session_replication_role = replica")
    with conn.cursor().copy("COPY files (id, user_id, filename, media_type, category, size, sha256, blob_uri,"
                            " status, created_at, captured_at) FROM STDIN") as copy:
        for f in range(start, stop):
            when = NOW - timedelta(minutes=stop - f)
            copy.write_row((corpus.ids[f], corpus.users[corpus.owner[f]], f"n{f}.txt", "text/plain", "text", 1,
                            uuid.uuid4().hex * 2, "file:///x", "ready", when, when))
    with conn.cursor().copy("COPY chunks (file_id, ord, user_id, text, embedding)"
                            " FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["uuid", "int4", "text", "text", "vector"])
        for f in range(start, stop):
            user, topic = corpus.users[corpus.owner[f]], TOPICS[corpus.topic[f]]
            for o in range(PER_FILE):
                copy.write_row((corpus.ids[f], o, user, f"{topic} note {f} part {o}", corpus.vectors[f * PER_FILE + o]))
    conn.execute("SET session_replication_role = DEFAULT")


def build_index(conn, table: str = "chunks") -> dict:
    """The HNSW index built afresh over `table` (a partitioned table: one per partition), and its size."""
    conn.execute("SET maintenance_work_mem = '4GB'")
    started = time.perf_counter()
    conn.execute(f"CREATE INDEX {table}_embedding ON {table} USING hnsw (embedding vector_cosine_ops)")
    seconds = time.perf_counter() - started
    size = conn.execute("SELECT coalesce(sum(pg_relation_size(i.indexrelid)), 0) AS b FROM pg_index i "
                        "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE %s AND c.relam = "
                        "(SELECT oid FROM pg_am WHERE amname = 'hnsw')", (f"{table}%",)).fetchone()["b"]
    # As autovacuum leaves a live database: statistics and hint bits. The indexes were just built, with no
    # dead rows to clean: walking them (a 2 GB HNSW index at 1M chunks) would only take time.
    conn.execute(f"VACUUM (ANALYZE, INDEX_CLEANUP OFF) {table}")
    conn.execute("VACUUM ANALYZE files")
    return {"build_s": seconds, "index_mib": float(size) / 2**20}


def searches(client, corpus: Corpus, model, users: list[str], per_user: int, loaded: int, rng) -> dict:
    """p50/p95 of GET /v1/search (vector) over users × per_user queries about their own topics, and recall@10."""
    asked = [(u, f"{TOPICS[t]} {w}") for u in users for t, w in
             zip(rng.choice(corpus.topics[corpus.user(u)], per_user),
                 rng.choice("notes plan ideas list costs summary".split(), per_user), strict=True)]
    vectors = unit(np.asarray(model.run([q for _, q in asked])))
    for u, q in asked[:20]:  # warm: the model, the pool, the plans
        client.get("/v1/search", params={"q": q, "mode": "vector", "limit": 10},
                   headers={"Authorization": f"Bearer dev:{u}"})
    times, pages = [], []
    for u, q in asked:
        t = time.perf_counter()
        r = client.get("/v1/search", params={"q": q, "mode": "vector", "limit": 10},
                       headers={"Authorization": f"Bearer dev:{u}"})
        times.append(time.perf_counter() - t)
        r.raise_for_status()
        pages.append([uuid.UUID(h["file_id"]) for h in r.json()["hits"]])
    recall = [len(set(got) & set(exact)) / max(1, len(exact)) for got, exact in
              zip(pages, (corpus.exact(u, v, loaded) for (u, _), v in zip(asked, vectors, strict=True)), strict=True)]
    return percentiles(times) | {"recall": statistics.mean(recall), "queries": len(asked),
                                 "full": float(np.mean([len(p) == 10 for p in pages]))}


def one_global_index(conn) -> dict:
    """The same rows in one plain table with one HNSW index over everyone (the layout before migration
    0015), put in the partitioned table's place (the API's queries name `chunks`)."""
    started = time.perf_counter()
    conn.execute("CREATE TABLE chunks_global (LIKE chunks INCLUDING DEFAULTS INCLUDING GENERATED)")
    conn.execute("INSERT INTO chunks_global (file_id, ord, user_id, text, locator, embedding, language, tsconfig)"
                 " SELECT file_id, ord, user_id, text, locator, embedding, language, tsconfig FROM chunks")
    conn.execute("CREATE INDEX chunks_global_user ON chunks_global (user_id)")
    copied = time.perf_counter() - started
    out = build_index(conn, "chunks_global") | {"copy_s": copied}
    conn.execute("ALTER TABLE chunks RENAME TO chunks_by_user")
    conn.execute("ALTER TABLE chunks_global RENAME TO chunks")
    return out


def searchable(stack, corpus: Corpus, n: int) -> dict:
    """Upload to the moment GET /v1/search finds it, for notes of a small user while the database is full."""
    user, times = corpus.small[0], []
    headers = {"Authorization": f"Bearer dev:{user}"}
    with httpx.Client(base_url=stack.api_url, timeout=60, headers=headers) as client:
        for i in range(n + 2):  # the first two load every model: untimed
            text = f"{note(7000 + i)} searchable-{time.time_ns()}"
            started = time.perf_counter()
            r = client.post("/v1/files", files={"file": (f"s{i}.txt", text.encode())})
            r.raise_for_status()
            file_id, deadline = r.json()["id"], time.monotonic() + 60
            while not any(h["file_id"] == file_id for h in client.get(
                    "/v1/search", params={"q": text, "mode": "vector", "limit": 10}).json()["hits"]):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"note {file_id} not found by search within 60 s")
                time.sleep(0.01)
            if i >= 2:
                times.append(time.perf_counter() - started)
    return percentiles(times) | {"notes": n}


def main() -> None:
    p = options(__doc__)
    args = p.parse_args()
    users, total, largest = (200, 100_000, 10_000) if args.quick else (2_000, 1_000_000, 100_000)
    steps = [s for s in (10_000, 30_000, 100_000, 300_000, 1_000_000) if s <= total]
    per_query_user = 3 if args.quick else 5
    from local.stack import Stack
    from shared import db
    from shared.config import Settings
    from shared.models import embedder

    data_dir = Path(tempfile.mkdtemp(prefix="mindspace-bench-", dir="/tmp"))
    data_dir.chmod(0o755)
    cfg = Settings(data_dir=data_dir)
    model = embedder(cfg.embed_model, cfg.embed_device)
    rng = np.random.default_rng(0)
    sizes = library_sizes(users, total, largest)
    started = time.perf_counter()
    corpus = Corpus(sizes, unit(np.asarray(model.run(list(TOPICS)))), rng)
    print(f"== {sizes.sum():,} chunks over {users:,} users (Zipf: largest {sizes[0]:,}, median "
          f"{int(np.median(sizes))}, smallest {sizes[-1]}), made in {time.perf_counter() - started:.0f} s", flush=True)
    port = free_port_block(8)
    stack = Stack(cfg, port=port, env={"LOG_LEVEL": "WARNING", "CLUSTER_MIN_SIZE": "1000"})
    stack.start_database()
    db.migrate(stack.database_url)
    pool = db.pool(stack.database_url, 2)
    results = {"shipped": SHIPPED, "users": users, "chunks": int(sizes.sum()), "largest": int(sizes[0]),
               "median": int(np.median(sizes)), "growth": [], "layouts": {}}
    api = None
    try:
        with pool.connection() as conn:
            conn.autocommit = True
            register_vector(conn)
            conn.execute("INSERT INTO users (id) SELECT unnest(%s::text[])", (corpus.users,))
            # Text search is not measured here (bench_search.py does): its GIN index would only slow the load.
            conn.execute("DROP INDEX chunks_tsv")
            loaded = 0
            for step in steps:
                files = min(len(corpus.owner), step // PER_FILE)
                conn.execute("DROP INDEX IF EXISTS chunks_embedding")  # building it once beats growing it
                t = time.perf_counter()
                load(conn, corpus, loaded, files)
                loaded, copied = files, time.perf_counter() - t
                built = build_index(conn)
                if api is None:
                    api = start_api(stack)
                largest_now = int((corpus.owner[:loaded] == 0).sum() * PER_FILE)
                with httpx.Client(base_url=f"http://127.0.0.1:{api.port}", timeout=60) as client:
                    row = {"chunks": loaded * PER_FILE, "load_s": copied, **built, "largest_user": largest_now,
                           "small": searches(client, corpus, model, corpus.small, per_query_user, loaded, rng),
                           "largest": searches(client, corpus, model, [corpus.users[0]], 20 * per_query_user,
                                               loaded, rng)}
                results["growth"].append(row)
                print(f"  {row['chunks']:>9,} chunks: index built in {built['build_s']:5.1f} s "
                      f"({built['index_mib']:6.0f} MiB); small users p50/p95 {row['small']['p50']:5.1f}/"
                      f"{row['small']['p95']:5.1f} ms recall {row['small']['recall']:.3f}; largest "
                      f"({largest_now:,} chunks) {row['largest']['p50']:5.1f}/{row['largest']['p95']:5.1f} ms "
                      f"recall {row['largest']['recall']:.3f}", flush=True)
            sweep = sorted({int(np.argmin(abs(sizes - s))) for s in SIZES if s <= largest})
            last = results["growth"][-1]
            partitions = conn.execute("SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'chunks'::regclass"
                                      ).fetchone()["n"]
            results["layouts"]["by_user"] = {"index": {k: last[k] for k in ("build_s", "index_mib")}
                                             | {"partitions": partitions}, "users": {}}
            for layout in ("by_user", "global"):
                if layout == "global":
                    api.terminate()
                    api.wait(10)
                    results["layouts"]["global"] = {"index": one_global_index(conn), "users": {}}
                    api = start_api(stack)
                    print(f"  one global index: rows copied in {results['layouts']['global']['index']['copy_s']:.0f}"
                          f" s, index built in {results['layouts']['global']['index']['build_s']:.0f} s", flush=True)
                with httpx.Client(base_url=f"http://127.0.0.1:{api.port}", timeout=60) as client:
                    for i in sweep:
                        row = searches(client, corpus, model, [corpus.users[i]], 8 * per_query_user, loaded, rng)
                        results["layouts"][layout]["users"][int(sizes[i])] = row
                        print(f"  {layout:8s} user of {sizes[i]:>7,} chunks: p50 {row['p50']:5.1f} ms p95 "
                              f"{row['p95']:5.1f} ms recall@10 {row['recall']:.3f} full {row['full']:.2f}", flush=True)
            conn.execute("DROP TABLE chunks")  # the shipped layout back in its place for the note's test
            conn.execute("ALTER TABLE chunks_by_user RENAME TO chunks")
        api.terminate()
        api.wait(10)
        api = None
        stack.start()  # every function, on the database as it is
        results["searchable"] = searchable(stack, corpus, 3 if args.quick else 10)
        print(f"  a note searchable after p50 {results['searchable']['p50']:.0f} ms, p95 "
              f"{results['searchable']['p95']:.0f} ms (upload to found by GET /v1/search, {sizes.sum():,} chunks)")
    finally:
        if api is not None:
            api.terminate()
            api.wait(10)
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)  # some 5 GB
    print("  goals: p95 <= 25 ms for a small user, <= 50 ms for the largest, recall@10 >= 0.95, "
          "a note searchable within 500 ms at 1M chunks")
    emit(args, results)


if __name__ == "__main__":
    main()
