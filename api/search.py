"""Hybrid search over a user's passages: pgvector's HNSW ranking and PostgreSQL's full-text ranking,
fused by reciprocal rank. Plain functions over a connection, with no import-time side effects, so the
router, the tests and the benchmarks call the same code."""
from __future__ import annotations

import uuid
from typing import Any

from shared import flags, languages

# The index's scan policy lives with the related files' look-up, which follows it too.
from shared.neighbours import EXACT_BELOW, INDEXED_FACTOR, INDEXED_FILTERS, ITERATIVE_SCAN, SCAN_TUPLES, iterative_scans

RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009): 1 / (60 + rank) per list
WIDEN = 4  # candidates per wanted hit: several passages of one file collapse into one hit
FILTERS = ("kind", "cluster", "since", "until", "tag")

# Only the filters asked for go into the SQL: "($x IS NULL OR …)" clauses leave the planner a generic
# plan that is slow for every case (a prepared text query took seconds instead of milliseconds).
CONDITIONS = {
    "kind": "f.category = %(kind)s",
    "cluster": "f.cluster_id = %(cluster)s",
    # When it was captured (its EXIF, its PDF's creation date …, else its upload): what a person means by it.
    "since": "f.captured_at >= %(since)s",
    "until": "f.captured_at < %(until)s",
    "tag": "EXISTS (SELECT 1 FROM tags t WHERE t.file_id = f.id AND t.user_id = %(u)s"
           " AND t.name = lower(%(tag)s))",
}


def queries(args: dict) -> dict[str, str]:
    filters = "".join(f" AND {sql}" for k, sql in CONDITIONS.items() if args.get(k) is not None)
    # Only the fixed fragments above are joined; every value is a bound parameter.
    chunks = f"FROM chunks c JOIN files f ON f.id = c.file_id WHERE c.user_id = %(u)s{filters}"
    tsquery = "(" + " || ".join(f"websearch_to_tsquery(%(cfg{i})s::regconfig, %(q)s)"
                                for i in range(len(args.get("configs") or ["english"]))) + ")"
    return {
        "vector": f"SELECT c.file_id, c.ord {chunks} ORDER BY c.embedding <=> %(v)s LIMIT %(k)s",
        # Each passage is stemmed by its language's configuration (chunks.tsconfig): the query is parsed by
        # every configuration of the user's languages and 'simple', and a passage matches any of them.
        "text": f"""SELECT c.file_id, c.ord {chunks} AND c.tsv @@ {tsquery}
                    ORDER BY ts_rank_cd(c.tsv, {tsquery}) DESC LIMIT %(k)s""",
        # Files, not chunks: 4 times fewer rows, and the indexes on files serve every filter.
        "few": f"SELECT count(*) AS n FROM (SELECT 1 FROM files f WHERE f.user_id = %(u)s{filters} LIMIT %(k)s) AS m",  # nosec B608  # fixed fragments, bound values
    }


def index_scan(c, args: dict, ef: int = 400) -> list[dict]:
    """The HNSW scan alone, inside the caller's transaction: iterative where pgvector has it."""
    # The only ordered path left is the index's: a user holding most of a partition would otherwise be
    # read whole and sorted (44 ms for 100k chunks where the index takes 14: bench/bench_users.py).
    c.execute("SET LOCAL enable_sort = off")
    c.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
    if iterative_scans(c):  # read by the index scan as it runs, so a prepared plan follows it too
        c.execute(f"SET LOCAL hnsw.iterative_scan = {ITERATIVE_SCAN}")
        c.execute(f"SET LOCAL hnsw.max_scan_tuples = {int(SCAN_TUPLES)}")
    # Never prepared: PostgreSQL would soon plan a prepared query once for every user (a generic plan), and
    # that plan, fit for the median user's few hundred rows, scans the largest user's 100k rows exactly
    # (148 ms where the index takes 15 ms: bench/bench_users.py). Planning afresh costs a fraction of a ms.
    return c.execute(queries(args)["vector"], args, prepare=False).fetchall()


def vector_ranking(c, args: dict, ef: int = 400) -> list[tuple]:
    """The HNSW index of the user's partition, scanned on (pgvector 0.8's iterative scan) until k rows pass
    the filters, the user's own included, or SCAN_TUPLES were visited. A library or a filter that leaves
    few files is searched exactly at once; a short result (the scan's budget spent, or pgvector before 0.8,
    which filters only the ef_search rows it found) runs again as an exact scan, which finds every row."""
    sql = queries(args)
    with c.transaction():
        below = EXACT_BELOW * (INDEXED_FACTOR if any(args.get(k) is not None for k in INDEXED_FILTERS) else 1)
        exact = c.execute(sql["few"], args | {"k": below}).fetchone()["n"] < below
        if not exact:
            rows = index_scan(c, args, ef)
            exact = len(rows) < args["k"]
        if exact:
            # Planned afresh: psycopg prepares a query run often on one connection, and a cached plan keeps
            # the index scan that enable_indexscan = off is there to forbid (found by tests/test_load.py).
            c.execute("SET LOCAL enable_indexscan = off")
            c.execute("SET LOCAL enable_sort = on")  # the index scan's setting, if it ran first
            rows = c.execute(sql["vector"], args, prepare=False).fetchall()
    return [(r["file_id"], r["ord"]) for r in rows]


def text_ranking(c, args: dict) -> list[tuple]:
    args = {"configs": ["english"]} | args  # a caller that names no configurations: the stemmer of before
    args |= {f"cfg{i}": name for i, name in enumerate(args["configs"])}
    return [(r["file_id"], r["ord"]) for r in c.execute(queries(args)["text"], args, prepare=False).fetchall()]


def rankings_for(c, args: dict, mode: str, ef: int = 400) -> dict[str, list[tuple]]:
    """The rankings a mode asks for: vector, text, or both (hybrid)."""
    out = {}
    if mode in ("hybrid", "vector"):
        out["vector"] = vector_ranking(c, args, ef)
    if mode in ("hybrid", "text"):
        out["text"] = text_ranking(c, args)
    return out


def fuse(rankings: dict[str, list[tuple]]) -> list[tuple[tuple, float, list[str]]]:
    """(passage key, score, the rankings that matched it) of the best passage of each file, best first."""
    fused: dict[tuple, float] = {}
    by: dict[tuple, list[str]] = {}
    for name, ranking in rankings.items():
        for rank, key in enumerate(ranking, 1):
            fused[key] = fused.get(key, 0.0) + 1 / (RRF_K + rank)
            by.setdefault(key, []).append(name)
    best: dict[uuid.UUID, tuple] = {}
    for key, score in sorted(fused.items(), key=lambda kv: -kv[1]):
        best.setdefault(key[0], (key, score, by[key]))
    return list(best.values())


def config_args(c, user: str, default_languages: list[str]) -> dict:
    """The text search configurations a user's query is parsed with (text_ranking binds them as cfg0, cfg1 …):
    those of their languages (the deployment's when they chose none), then 'simple'."""
    row = c.execute("SELECT languages FROM user_settings WHERE user_id = %s", (user,)).fetchone()
    chosen = (row and row["languages"]) or default_languages or ["en"]
    return {"configs": languages.configs(chosen)}


def search(c, user: str, q: str, vector: Any, mode: str, filters: dict, limit: int, offset: int,
           ef: int = 400, *, flag_spec: str, default_languages: list[str] = ()) -> list[dict]:
    """The page of hits: each file's best passage with its locator, score and matching rankings.
    `flag_spec`: the FLAGS setting, whose hybrid_search flag may take this user back to vector ranking.
    `default_languages`: the languages of a user who chose none (OCR_LANGUAGES')."""
    if mode == "hybrid" and not flags.enabled("hybrid_search", user, flag_spec):  # a gradual rollout
        mode = "vector"
    args = {"u": user, "q": q, "v": vector, "k": (offset + limit) * WIDEN} | {k: filters.get(k) for k in FILTERS}
    if mode in ("hybrid", "text"):
        args |= config_args(c, user, default_languages)
    page, copies = one_per_group(c, fuse(rankings_for(c, args, mode, ef)), offset, limit)
    rows = {(r["file_id"], r["ord"]): r for r in c.execute(
        """SELECT c.file_id, c.ord, f.filename, f.media_type, c.text AS passage, c.locator
           FROM chunks c JOIN files f ON f.id = c.file_id
           WHERE c.user_id = %s AND (c.file_id, c.ord) IN (SELECT * FROM unnest(%s::uuid[], %s::int[]))""",
        (user, [k[0] for k, *_ in page], [k[1] for k, *_ in page])).fetchall()}
    return [rows[k] | {"score": round(s, 5), "matched_by": by, "copies": copies.get(k[0], 0)}
            for k, s, by in page if k in rows]


def one_per_group(c, fused: list, offset: int, limit: int) -> tuple[list, dict]:
    """The page with one hit per group of near-duplicates (its best-ranked member), and how many other
    copies each hit's group holds."""
    roots = {r["id"]: r["root"] for r in c.execute(
        "SELECT id, coalesce(duplicate_of, id) AS root FROM files WHERE id = ANY(%s)", ([k[0] for k, *_ in fused],))}
    seen, kept = set(), []
    for hit in fused:
        if (root := roots.get(hit[0][0], hit[0][0])) not in seen:
            seen.add(root)
            kept.append(hit)
    page = kept[offset:offset + limit]
    groups = [roots.get(k[0], k[0]) for k, *_ in page]
    sizes = {r["root"]: r["n"] for r in c.execute(
        """SELECT coalesce(duplicate_of, id) AS root, count(*) AS n FROM files
           WHERE duplicate_of = ANY(%s) OR id = ANY(%s) GROUP BY 1""", (groups, groups))}
    return page, {k[0]: sizes.get(roots.get(k[0], k[0]), 1) - 1 for k, *_ in page}
