"""Search at 100k chunks end to end: `GET /v1/search` of the real API, run as the stack runs it (uvicorn,
its own process), against the embedded PostgreSQL with pgvector. One user holds CHUNKS chunks (4 a
file) around 40 topics whose centres are MiniLM embeddings of topic phrases, so a text query that the
API embeds itself lands among them; a second user holds a fifth as many, so the user filter is real.
Per query kind (vector; vector filtered by a tag, a cluster, a kind and a capture date, each keeping
50%, 5% and 0.5% of the files; hybrid, plain and tag-filtered) it prints p50/p95 latency as the client
sees it, recall@10 of the files returned against an exact scan in numpy (the same model's query vector,
the same filters), and whether a filtered page holds every hit that exists (min(10, files matching)). Then the levers at
the query layer, in this process: iterative index scan alone, exact scan alone, and the policy
api/search.py follows, per filter. Then asking (POST /v1/ask, extractive) on the same database: a third
user holds 10k chunks, so the answer's latency is measured at 10k and at 100k chunks, through the API
and, in this process, per phase (retrieval: the question embedded and the passages ranked; answering:
the sentences ranked with the same model).

    make bench            # or: .venv/bin/python bench/bench_search.py [--chunks 100000] [--queries 100]
"""
from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
from psycopg.rows import dict_row

from common import emit, options, peak_mib

USER, OTHER, SMALL, DIM, PER_FILE = "bench", "bench-other", "bench-10k", 384, 4
TOPICS = ("garden tomatoes and basil", "household budget and savings", "piano practice", "travel to Norway",
          "invoice from the plumber", "river fishing trip", "lighthouse photography", "farmers market",
          "guitar chords", "mortgage interest rate", "violin lessons", "harbour ferry timetable",
          "sourdough bread recipe", "orchid care", "tax return deadline", "jazz concert tickets",
          "cycling route", "chain and saddle repair", "kids school meeting", "dentist appointment",
          "running a marathon", "birthday party ideas", "kitchen renovation", "car insurance claim",
          "book club novel", "python programming bug", "team offsite agenda", "quarterly sales report",
          "wedding guest list", "camping gear checklist", "vegetable soup", "moving house boxes",
          "yoga and stretching", "astronomy and telescopes", "bird watching", "winter tyres",
          "electricity bill", "podcast episode notes", "chess openings", "hiking in the alps")
NOW = datetime.now(UTC)
SHARES = (0.5, 0.05, 0.005)  # every filter at these selectivities (the share of the user's files it keeps)
FILTERED = tuple(f"{f} {s:.1%}".replace(".0%", "%") for f in ("tag", "cluster", "kind", "dates") for s in SHARES)
KINDS = ("vector", *FILTERED, "hybrid", "hybrid + tag 5%")
TAGS = dict(zip(("common", "oslo", "rare"), SHARES, strict=True))
KIND_OF = dict(zip(("pdf", "image", "audio"), SHARES, strict=True))  # the other files: text


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def load(conn, user: str, files: int, centres: np.ndarray, rng, meta: bool) -> dict | None:
    """`files` files of 4 chunks around the centres; with `meta`, the file attributes the filters use, each at
    the shares of SHARES: tags, kinds and capture dates drawn at random, clusters by topic as the cluster stage
    makes them (half the topics; two topics; a fifth of one topic; every other topic one of its own)."""
    conn.execute("INSERT INTO users (id) VALUES (%s)", (user,))
    topic = rng.integers(len(TOPICS), size=files)
    ids = [uuid.uuid4() for _ in range(files)]
    draw = rng.random(files)
    kinds = np.select([draw < a for a in np.cumsum(list(KIND_OF.values()))], list(KIND_OF), "text")
    created = [NOW - timedelta(days=float(d)) for d in rng.uniform(0, 365, size=files)]
    cluster_ids = [conn.execute("INSERT INTO clusters (user_id, label, size) VALUES (%s, %s, 0) RETURNING id",
                                (user, t)).fetchone()["id"] for t in TOPICS] if meta else []
    half, two, part = len(TOPICS) // 2, (len(TOPICS) // 2, len(TOPICS) // 2 + 1), len(TOPICS) // 2 + 2
    cluster = np.where(topic < half, 0, topic)
    cluster = np.where(np.isin(topic, two), two[0], cluster)
    cluster = np.where((topic == part) & (rng.random(files) < 0.2), part, np.where(topic == part, part + 1, cluster))
    with conn.cursor().copy("COPY files (id, user_id, filename, media_type, category, size, sha256, blob_uri,"
                            " status, created_at, captured_at, cluster_id) FROM STDIN") as copy:
        for i, fid in enumerate(ids):
            copy.write_row((fid, user, f"n{i}.txt", "text/plain", kinds[i], 1, uuid.uuid4().hex * 2,
                            "file:///x", "ready", created[i], created[i], cluster_ids[cluster[i]] if meta else None))
    vectors = unit(centres[topic].repeat(PER_FILE, axis=0) + rng.normal(scale=0.06, size=(files * PER_FILE, DIM)))
    with conn.cursor().copy("COPY chunks (file_id, ord, user_id, text, embedding) FROM STDIN") as copy:
        for n, v in enumerate(vectors):
            f = n // PER_FILE
            words = " ".join(rng.choice(" ".join(TOPICS).split(), size=10))
            copy.write_row((ids[f], n % PER_FILE, user, f"{TOPICS[topic[f]]} {words} note{f}",
                            "[" + ",".join(f"{x:.5f}" for x in v) + "]"))
    if not meta:
        return None
    tagged = {name: rng.random(files) < share for name, share in TAGS.items()}
    for name, mask in tagged.items():
        conn.execute("INSERT INTO tags (file_id, user_id, kind, name, label, score) "
                     "SELECT unnest(%s::uuid[]), %s, 'place', %s, %s, 1",
                     ([ids[i] for i in np.flatnonzero(mask)], user, name, name.title()))
    cid = np.array([cluster_ids[c] for c in cluster], dtype=object)
    return {"ids": ids, "vectors": vectors, "topic": topic, "tags": tagged, "kinds": kinds,
            "created": np.array([c.timestamp() for c in created]), "cluster": cid,
            "clusters": [cluster_ids[0], cluster_ids[two[0]], cluster_ids[part]]}


def exact_files(data: dict, q: np.ndarray, mask: np.ndarray) -> list:
    """The 10 files nearest to q among those the mask keeps, by their nearest chunk (brute force)."""
    best = (data["vectors"] @ q).reshape(-1, PER_FILE).max(axis=1)
    best[~mask] = -np.inf
    order = np.argsort(-best)[:10]
    return [data["ids"][i] for i in order if mask[i]]


def percentiles(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    return {"p50": statistics.median(ms), "p95": ms[max(0, int(len(ms) * 0.95) - 1)]}


def start_api(stack, port: int) -> subprocess.Popen:
    from local.stack import ROOT, serve_argv

    env = stack.env("api") | {"RATE_LIMIT_SEARCHES": "1000000/minute", "RATE_LIMIT_ASKS": "1000000/minute",
                              "LOG_FORMAT": "json"}
    proc = subprocess.Popen(serve_argv("api", "127.0.0.1", port), env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("the API did not become ready")


def main() -> None:
    p = options(__doc__)
    p.add_argument("--chunks", type=int)
    p.add_argument("--queries", type=int)
    args = p.parse_args()
    args.chunks = args.chunks or (10_000 if args.quick else 100_000)
    args.queries = args.queries or (20 if args.quick else 100)
    from api import search
    from local.stack import Stack, free_port_block
    from shared import db
    from shared.config import Settings
    from shared.models import embedder

    data_dir = Path(tempfile.mkdtemp(prefix="mindspace-bench-", dir="/tmp"))
    cfg = Settings(data_dir=data_dir)
    model = embedder(cfg.embed_model, cfg.embed_device)
    centres = unit(np.asarray(model.run(list(TOPICS))))
    texts = [f"{TOPICS[i % len(TOPICS)]} {w}" for i, w in
             enumerate(np.random.default_rng(1).choice("notes plan ideas list costs summary".split(), args.queries))]
    queries = unit(np.asarray(model.run(texts)))
    stack = Stack(cfg)
    stack.start_database()
    db.migrate(stack.database_url)
    pool = db.pool(stack.database_url, 2)
    rng = np.random.default_rng(0)
    api = None
    try:
        with pool.connection() as conn:
            conn.autocommit = True
            print(f"== {args.chunks} chunks ({args.chunks // PER_FILE} files) for one user, "
                  f"{args.chunks // 5} for another; pgvector {search.iterative_scans(conn) and '>= 0.8' or '< 0.8'}")
            started = time.perf_counter()
            conn.execute("DROP INDEX IF EXISTS chunks_embedding")  # building it once is faster than growing it
            data = load(conn, USER, args.chunks // PER_FILE, centres, rng, meta=True)
            load(conn, OTHER, args.chunks // PER_FILE // 5, centres, rng, meta=False)
            load(conn, SMALL, 10_000 // PER_FILE, centres, rng, meta=False)
            conn.execute("SET maintenance_work_mem = '2GB'")
            conn.execute("CREATE INDEX chunks_embedding ON chunks USING hnsw (embedding vector_cosine_ops)")
            # As autovacuum leaves a live database: hint bits set and the visibility map written, so index-only
            # scans skip the heap. Right after a bulk load they are not, and the first queries pay for it.
            conn.execute("VACUUM ANALYZE")
            version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = %s", ("vector",)).fetchone()
            version = version["extversion"]
            print(f"  loaded and indexed in {time.perf_counter() - started:.0f} s (pgvector {version})")
        port = free_port_block(1)
        api = start_api(stack, port)
        every = np.ones(len(data["ids"]), bool)

        def kind(name: str, i: int) -> tuple[dict, np.ndarray]:
            """The query parameters of a kind and the mask of the files it keeps."""
            if name in ("vector", "hybrid"):
                return {}, every
            if name == "hybrid + tag 5%":
                return kind("tag 5%", i)
            what = name.split()[0]
            n = FILTERED.index(name) % len(SHARES)
            if what == "tag":
                tag = list(TAGS)[n]
                return {"tag": tag.title()}, data["tags"][tag]
            if what == "cluster":  # the topics' clusters: mostly far from the query's topic, the hard case
                c = data["clusters"][n]
                return {"cluster": c}, data["cluster"] == c
            if what == "kind":
                k = list(KIND_OF)[n]
                return {"kind": k}, data["kinds"] == k
            since = NOW - timedelta(days=365 * SHARES[n])
            return {"since": since.isoformat()}, data["created"] >= since.timestamp()

        results = {"chunks": args.chunks, "queries": args.queries, "pgvector": version,
                   "policy": {"iterative_scan": search.ITERATIVE_SCAN, "max_scan_tuples": search.SCAN_TUPLES,
                              "exact_below": search.EXACT_BELOW, "ef_search": cfg.search_ef}, "kinds": {}}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer dev:{USER}"},
                          timeout=30) as client:
            # Warm, as a server that has been answering searches is: the model, the pool, the plans, and the
            # pages every kind of query reads in PostgreSQL's cache (an untimed pass of each).
            for name in KINDS:
                for i, text in enumerate(texts[:25]):  # 25 of them: within make bench's 25 minutes
                    mode = "hybrid" if name.startswith("hybrid") else "vector"
                    client.get("/v1/search", params={"q": text, "mode": mode, "limit": 10} | kind(name, i)[0])
            for name in KINDS:
                times, pages, recall, complete = [], [], [], []
                mode = "hybrid" if name.startswith("hybrid") else "vector"
                for i, text in enumerate(texts):
                    params = {"q": text, "mode": mode, "limit": 10} | kind(name, i)[0]  # masks too: not timed
                    t = time.perf_counter()
                    r = client.get("/v1/search", params=params)
                    times.append(time.perf_counter() - t)
                    r.raise_for_status()
                    pages.append([uuid.UUID(h["file_id"]) for h in r.json()["hits"]])
                # Checked after the timed requests: numpy's BLAS threads stay busy a while after a product,
                # and would take a core from the next request (its p50 rose by a half).
                for i, (got, q) in enumerate(zip(pages, queries, strict=True)):
                    mask = kind(name, i)[1]
                    complete.append(len(got) == min(10, int(mask.sum())))
                    if mode == "vector":
                        exact = exact_files(data, q, mask)
                        recall.append(len(set(got) & set(exact)) / max(1, len(exact)))
                row = percentiles(times) | {"complete": float(np.mean(complete)), "matching": float(mask.mean())}
                if recall:
                    row["recall"] = statistics.mean(recall)
                results["kinds"][name] = row
                print(f"  {name:16s} p50 {row['p50']:6.1f} ms  p95 {row['p95']:6.1f} ms  "
                      + (f"recall@10 {row['recall']:.3f}  " if recall else "")
                      + f"full pages {row['complete']:.2f}  (files matching {row['matching']:.1%})")
        results["levers"] = levers(pool, data, queries[:30], kind, cfg.search_ef, search)  # 30: within 25 min
        results["ask"] = asking(port, pool, cfg, texts[:50], {"10k": SMALL, f"{args.chunks // 1000}k": USER})
        results["recall"] = recall_lookups(port, pool, data, rng)
        results["peak_mib"] = peak_mib()[0]
    finally:
        if api is not None:
            api.terminate()
            api.wait(10)
        stack.stop()
    print("  goals: p95 <= 25 ms, recall@10 >= 0.95, every filtered page full")
    emit(args, results)


def recall_lookups(port: int, pool, data: dict, rng, n: int = 50) -> dict:
    """Issue 21's look-ups on the same library: GET /v1/files/{id}/related and GET /v1/duplicates through
    the API, and the cluster stage's near-duplicate check of a new note (its MinHash bands against every
    file's, then the candidates' signatures) in this process, rolled back. Every file gets its signature
    first, and 2% of them a root, as the cluster stage would have left them."""
    from functions.cluster import duplicates

    started = time.perf_counter()
    with pool.connection() as conn:
        rows = conn.execute("SELECT file_id, string_agg(text, ' ' ORDER BY ord) AS t FROM chunks WHERE user_id = %s"
                            " GROUP BY file_id", (USER,)).fetchall()
        with conn.cursor().copy("COPY text_signatures (file_id, user_id, minhash) FROM STDIN") as sigs:
            bands = []
            for r in rows:
                m = duplicates.signature(r["t"])
                sigs.write_row((r["file_id"], USER, m.hashvalues.astype(np.uint64).tobytes()))
                bands += [(USER, b, h, r["file_id"]) for b, h in enumerate(duplicates.bands(m))]
        with conn.cursor().copy("COPY text_bands (user_id, band, hash, file_id) FROM STDIN") as copy:
            for row in bands:
                copy.write_row(row)
        ids = data["ids"]
        copies = rng.choice(len(ids), size=len(ids) // 50, replace=False)
        conn.execute("UPDATE files f SET duplicate_of = v.root FROM unnest(%s::uuid[], %s::uuid[]) AS v(id, root)"
                     " WHERE f.id = v.id", ([ids[i] for i in copies], [ids[(i + 1) % len(ids)] for i in copies]))
        conn.execute("VACUUM ANALYZE text_bands")
        conn.execute("VACUUM ANALYZE text_signatures")
    prepared = time.perf_counter() - started
    sample = [ids[i] for i in rng.choice(len(ids), size=n, replace=False)]
    out = {"signatures_s": prepared}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer dev:{USER}"},
                      timeout=30) as client:
        for name, path in (("related", lambda f: f"/v1/files/{f}/related"), ("duplicates", lambda f: "/v1/duplicates")):
            for f in sample[:10]:  # warm
                client.get(path(f)).raise_for_status()
            times = []
            for f in sample:
                t = time.perf_counter()
                client.get(path(f)).raise_for_status()
                times.append(time.perf_counter() - t)
            out[name] = percentiles(times)
    checks = []
    with pool.connection() as conn:
        for i, f in enumerate(sample):
            text = conn.execute("SELECT string_agg(text, ' ') AS t FROM chunks WHERE file_id = %s",
                                (f,)).fetchone()["t"]
            fid = uuid.uuid4()
            with conn.transaction(force_rollback=True):
                conn.execute("INSERT INTO files (id, user_id, filename, media_type, category, size, sha256, blob_uri)"
                             " VALUES (%s, %s, 'new.md', 'text/markdown', 'text', 1, %s, 'file:///x')",
                             (fid, USER, uuid.uuid4().hex * 2))
                t = time.perf_counter()
                duplicates.find(conn, {"id": fid, "user_id": USER}, text + f" edited {i}", None)
                checks.append(time.perf_counter() - t)
    out["check"] = percentiles(checks)
    print(f"  at {len(ids) * PER_FILE // 1000}k chunks: related p50/p95 {out['related']['p50']:.1f}/"
          f"{out['related']['p95']:.1f} ms, duplicates list {out['duplicates']['p50']:.1f}/"
          f"{out['duplicates']['p95']:.1f} ms, a new note's near-duplicate check {out['check']['p50']:.1f}/"
          f"{out['check']['p95']:.1f} ms (signatures of {len(ids)} files made in {prepared:.0f} s)")
    return out


def asking(port: int, pool, cfg, texts: list[str], users: dict[str, str]) -> dict:
    """POST /v1/ask (extractive) per library size: p50/p95 through the API, and per phase in this process
    with the API's own code (api/answers.py) and its ONNX query embedder."""
    from api import answers
    from shared import languages
    from shared.models import embedder

    onnx = embedder(cfg.embed_model, "cpu", cfg.embed_batch_size, 0, "onnx", cfg.embed_onnx_path)
    out = {}
    for size, user in users.items():
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer dev:{user}"},
                          timeout=30) as client:
            for text in texts[:10]:  # warm: the model, the plans, the pages
                client.post("/v1/ask", json={"question": text}).raise_for_status()
            times = []
            for text in texts:
                t = time.perf_counter()
                client.post("/v1/ask", json={"question": text}).raise_for_status()
                times.append(time.perf_counter() - t)
        retrieval, answering = [], []
        for text in texts:
            t = time.perf_counter()
            vector = onnx.run([text])[0]
            with pool.connection() as c:
                found = answers.retrieve(c, user, text, vector, {}, cfg.ask_passages, flag_spec="",
                                         default_languages=languages.from_tesseract(cfg.ocr_languages))
            cited = [p | {"n": n} for n, p in enumerate(answers.pack(found, cfg.ask_context_tokens), 1)]
            retrieval.append(time.perf_counter() - t)
            t = time.perf_counter()
            answers.extract(text, vector, cited, onnx.run, cfg.ask_min_similarity)
            answering.append(time.perf_counter() - t)
        out[size] = {"api": percentiles(times), "retrieval": percentiles(retrieval),
                     "answering": percentiles(answering), "questions": len(texts)}
        print(f"  ask at {size:>4} chunks: POST /v1/ask p50 {out[size]['api']['p50']:.1f} ms p95 "
              f"{out[size]['api']['p95']:.1f} ms; retrieval p50/p95 {out[size]['retrieval']['p50']:.1f}/"
              f"{out[size]['retrieval']['p95']:.1f} ms, extractive answer {out[size]['answering']['p50']:.1f}/"
              f"{out[size]['answering']['p95']:.1f} ms")
    return out


def levers(pool, data, queries, kind, ef: int, search) -> dict:
    """The query layer alone, per filter: the iterative index scan (strict and relaxed order), the exact
    scan, and the policy api/search.py follows."""
    out: dict[str, dict] = {}
    saved = search.EXACT_BELOW, search.ITERATIVE_SCAN
    names = ("index", "index relaxed", "exact", "policy")
    print(f"  levers at the query layer (p95 ms, recall@10): {' | '.join(names)}")
    with pool.connection() as conn:
        conn.row_factory = dict_row
        for name in ("vector", *FILTERED):
            row = {}
            for lever in names:
                times, recall = [], []
                for i, q in enumerate(queries):
                    params, mask = kind(name, i)
                    a = {"u": USER, "q": "", "v": q, "k": 40} | {k: None for k in search.FILTERS} | params
                    if "since" in params:
                        a["since"] = datetime.fromisoformat(params["since"])
                    search.EXACT_BELOW = {"exact": 10**9, "policy": saved[0]}.get(lever, 0)
                    search.ITERATIVE_SCAN = "relaxed_order" if lever == "index relaxed" else saved[1]
                    t = time.perf_counter()
                    ranked = search.vector_ranking(conn, a, ef)
                    times.append(time.perf_counter() - t)
                    files = list(dict.fromkeys(f for f, _ in ranked))[:10]
                    exact = exact_files(data, q, mask)
                    recall.append(len(set(files) & set(exact)) / max(1, len(exact)))
                row[lever] = percentiles(times) | {"recall": statistics.mean(recall)}
            search.EXACT_BELOW, search.ITERATIVE_SCAN = saved
            out[name] = row
            print(f"    {name:12s} " + " | ".join(f"{row[k]['p95']:6.1f} ms {row[k]['recall']:.3f}"
                                                   for k in names))
    return out


if __name__ == "__main__":
    main()
