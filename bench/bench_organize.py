"""Search and clustering at scale, on the embedded PostgreSQL with pgvector: synthetic embeddings for
one user at 10k chunks, or the sizes given (4 chunks a file). Prints, per size, search latency p50/p95 without
and with a tag filter and for the full hybrid query, recall@10 of the HNSW path against an exact
scan (brute force in numpy), the time to place one new file into the clusters and of a full re-clustering (the cluster
stage's own code against the database), and the ratios between them, all measured in one run.

    make bench            # or: .venv/bin/python bench/bench_organize.py [--sizes 10000 100000]

10k by default (100k took 85 s more): search at 100k chunks and beyond is measured end to end by
bench_search.py and bench_users.py, which `make bench` runs too.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from psycopg.rows import dict_row
from rich.progress import track

from common import StageHarness, emit, options, peak_mib

USER, DIM, PER_FILE, TOPICS = "bench", 384, 4, 40
WORDS = np.array("garden budget music travel invoice river lighthouse market basil guitar savings piano "
                 "tomato mortgage violin harbour ferry recipe dough orchid ledger tax concert".split())


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def load(conn, chunks: int, rng) -> np.ndarray:
    """`chunks` synthetic chunks around TOPICS centres, 5% of files tagged; returns the centres."""
    conn.execute("DELETE FROM users WHERE id = %s", (USER,))
    conn.execute("INSERT INTO users (id) VALUES (%s)", (USER,))
    conn.execute("DROP INDEX IF EXISTS chunks_embedding")  # building it once is faster than growing it
    centres = unit(rng.normal(size=(TOPICS, DIM)))
    files, rows = [], []
    for f in track(range(chunks // PER_FILE), description=f"making {chunks} chunks"):
        fid, topic = uuid.uuid4(), rng.integers(TOPICS)
        files.append((fid, USER, f"n{f}.txt", "text/plain", "text", 1, uuid.uuid4().hex * 2, "file:///x", "ready"))
        vectors = unit(centres[topic] + rng.normal(scale=0.06, size=(PER_FILE, DIM)))
        for o in range(PER_FILE):
            text = " ".join(WORDS[rng.integers(len(WORDS), size=12)]) + f" topic{topic} note{f}"
            rows.append((fid, o, USER, text, "[" + ",".join(f"{v:.5f}" for v in vectors[o]) + "]"))
    # One COPY at a time: a connection cannot interleave two.
    with conn.cursor().copy("COPY files (id, user_id, filename, media_type, category, size, sha256, blob_uri,"
                            " status) FROM STDIN") as copy:
        for row in files:
            copy.write_row(row)
    with conn.cursor().copy("COPY chunks (file_id, ord, user_id, text, embedding) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    conn.execute("""INSERT INTO tags (file_id, user_id, kind, name, label, score)
                    SELECT id, user_id, 'place', 'oslo', 'Oslo', 1 FROM files WHERE user_id = %s AND random() < 0.05""",
                 (USER,))
    started = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '2GB'")
    conn.execute("CREATE INDEX chunks_embedding ON chunks USING hnsw (embedding vector_cosine_ops)")
    conn.execute("ANALYZE chunks")
    print(f"  HNSW index built in {time.perf_counter() - started:.1f} s")
    return centres


def percentiles(times: list[float]) -> tuple[float, float]:
    ms = sorted(t * 1000 for t in times)
    return statistics.median(ms), ms[int(len(ms) * 0.95) - 1]


def main() -> None:
    p = options(__doc__)
    p.add_argument("--sizes", type=int, nargs="+")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--ef", type=int, help="hnsw.ef_search (default: the SEARCH_EF setting)")
    args = p.parse_args()
    # 10k by default: search at 100k and beyond is bench_search.py's and bench_users.py's, through the API.
    args.sizes = args.sizes or ([2_000] if args.quick else [10_000])
    if args.quick:
        args.queries = 30
    if args.ef:
        os.environ["SEARCH_EF"] = str(args.ef)
    from api import search
    from local.stack import Stack
    from shared import db

    data = Path(tempfile.mkdtemp(prefix="mindspace-bench-", dir="/tmp"))
    harness = StageHarness("cluster", data_dir=data)
    stack = Stack(harness.cfg)
    stack.start_database()
    db.migrate(stack.database_url)
    pool = db.pool(stack.database_url, 2)
    rng = np.random.default_rng(0)
    results = {"ef_search": harness.cfg.search_ef, "queries": args.queries, "sizes": {}}
    try:
        for size in args.sizes:
            print(f"== {size} chunks ({size // PER_FILE} files) for one user, hnsw.ef_search {harness.cfg.search_ef}")
            with pool.connection() as conn:
                conn.autocommit = True
                centres = load(conn, size, rng)
                conn.row_factory = dict_row
                queries = unit(centres[rng.integers(TOPICS, size=args.queries)]
                               + rng.normal(scale=0.08, size=(args.queries, DIM)))
                base = {"u": USER, "tag": None, "cluster": None, "kind": None, "since": None,
                        "until": None}
                rows = conn.execute("SELECT file_id, ord, embedding FROM chunks WHERE user_id = %s", (USER,)).fetchall()
                keys = [(r["file_id"], r["ord"]) for r in rows]
                index = {k: i for i, k in enumerate(keys)}
                matrix = unit(np.array([np.asarray(r["embedding"]) for r in rows]))
                del rows
                timings: dict[str, list[float]] = {"vector": [], "vector + tag filter": [], "hybrid": []}
                recall, file_recall, distance = [], [], []
                for i, q in enumerate(queries):
                    # A word that about 1 in TOPICS chunks holds, beside a common one.
                    a = base | {"v": q, "k": 40, "q": f"garden topic{i % TOPICS}"}
                    t = time.perf_counter()
                    approx = search.vector_ranking(conn, a, harness.cfg.search_ef)
                    timings["vector"].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    search.vector_ranking(conn, a | {"tag": "oslo"}, harness.cfg.search_ef)
                    timings["vector + tag filter"].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    search.rankings_for(conn, a, "hybrid", harness.cfg.search_ef)
                    timings["hybrid"].append(time.perf_counter() - t)
                    exact = [keys[i] for i in np.argsort(1 - matrix @ q)[:10]]  # brute force in numpy
                    recall.append(len(set(approx[:10]) & set(exact)) / 10)
                    exact_files = {f for f, _ in exact}
                    file_recall.append(len({f for f, _ in approx[:10]} & exact_files) / len(exact_files))
                    distance.append(float(1 - matrix[index[approx[9]]] @ q) / float(1 - matrix[index[exact[9]]] @ q))
                p95 = {}
                r = results["sizes"][size] = {"search_ms": {}}
                for name, times in timings.items():
                    p50, p95[name] = percentiles(times)
                    r["search_ms"][name] = {"p50": p50, "p95": p95[name]}
                    print(f"  search {name:20s} p50 {p50:6.1f} ms  p95 {p95[name]:6.1f} ms")
                print(f"  recall@10 of HNSW against exact (numpy): {statistics.mean(recall):.3f} of chunks, "
                      f"{statistics.mean(file_recall):.3f} of files (hits are files)  (goal >= 0.95)")
                print(f"  ratio 10th HNSW distance / 10th exact distance: {statistics.mean(distance):.4f}")
                r |= {"recall": statistics.mean(recall), "file_recall": statistics.mean(file_recall)}
                print(f"  ratio p95 filtered/unfiltered: {p95['vector + tag filter'] / p95['vector']:.2f}")

                stage = harness.stage
                started = time.perf_counter()
                with conn.transaction():
                    detail = stage.recluster(conn, USER)
                full = time.perf_counter() - started
                print(f"  full re-clustering: {full:6.1f} s  {detail}  (goal <= 60 s)")
                fitted = conn.execute("SELECT fitted_at FROM cluster_models WHERE user_id = %s", (USER,)).fetchone()
                files = [r["id"] for r in conn.execute("SELECT id FROM files WHERE user_id = %s LIMIT 51", (USER,))]
                times = []
                for fid in files:
                    event = type("E", (), {"user_id": USER, "file_id": fid})
                    t = time.perf_counter()
                    with conn.transaction():
                        stage.place(conn, event, fitted["fitted_at"])
                    times.append(time.perf_counter() - t)
                p50, p95p = percentiles(times[1:])  # the first one unpickles the model
                print(f"  placing one file: p50 {p50:.1f} ms  p95 {p95p:.1f} ms (first, loading the model: "
                      f"{times[0] * 1000:.0f} ms)  (goal < 50 ms)")
                print(f"  ratio full re-clustering / placing one file: {full / (p50 / 1000):.0f}")
                r |= {"recluster_s": full, "place_ms": {"p50": p50, "p95": p95p, "first": times[0] * 1000},
                      "peak_mib": peak_mib()[0]}
                print(f"  peak memory of this process (the cluster stage's code, the ground truth matrix): "
                      f"{peak_mib()[0]:.0f} MiB")
    finally:
        stack.stop()
    emit(args, results)


if __name__ == "__main__":
    main()
