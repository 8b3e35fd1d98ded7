"""Hybrid search over a user's passages: pgvector's HNSW ranking and PostgreSQL's full-text ranking,
fused by reciprocal rank. Plain functions over a connection, with no import-time side effects, so the
router, the tests and the benchmarks call the same code."""
from __future__ import annotations

import uuid
from typing import Any

from shared import flags

RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009): 1 / (60 + rank) per list
WIDEN = 4  # candidates per wanted hit: several passages of one file collapse into one hit
EXACT_BELOW = 10_000  # filtered chunks under this are searched exactly (~10 ms here, see bench/)
FILTERS = ("kind", "cluster", "since", "until", "tag")

# Only the filters asked for go into the SQL: "($x IS NULL OR …)" clauses leave the planner a generic
# plan that is slow for every case (a prepared text query took seconds instead of milliseconds).
CONDITIONS = {
    "kind": "f.category = %(kind)s",
    "cluster": "f.cluster_id = %(cluster)s",
    "since": "f.created_at >= %(since)s",
    "until": "f.created_at < %(until)s",
    "tag": "EXISTS (SELECT 1 FROM tags t WHERE t.file_id = c.file_id AND t.user_id = %(u)s"
           " AND t.name = lower(%(tag)s))",
}


def queries(args: dict) -> dict[str, str]:
    where = " AND ".join(["c.user_id = %(u)s"] + [sql for k, sql in CONDITIONS.items() if args.get(k) is not None])
    # Only the fixed fragments above are joined; every value is a bound parameter.
    chunks = f"FROM chunks c JOIN files f ON f.id = c.file_id WHERE {where}"
    return {
        "vector": f"SELECT c.file_id, c.ord {chunks} ORDER BY c.embedding <=> %(v)s LIMIT %(k)s",
        "text": f"""SELECT c.file_id, c.ord {chunks} AND c.tsv @@ websearch_to_tsquery('english', %(q)s)
                    ORDER BY ts_rank_cd(c.tsv, websearch_to_tsquery('english', %(q)s)) DESC LIMIT %(k)s""",
        "matching": f"SELECT count(*) AS n FROM (SELECT 1 {chunks} LIMIT %(k)s) AS m",  # nosec B608  # fixed fragments, bound values
    }


def vector_ranking(c, args: dict, ef: int = 400) -> list[tuple]:
    """pgvector 0.6 filters HNSW results after the scan (no iterative scans), so a selective filter can
    leave fewer than k rows although more exist. A filter that leaves few chunks is searched exactly
    at once (cheaper than the index scan it would otherwise follow); otherwise the index is tried
    first, and a short result falls back to the exact scan."""
    sql = queries(args)
    filtered = any(args.get(k) is not None for k in CONDITIONS)
    with c.transaction():
        exact = filtered and c.execute(sql["matching"], args | {"k": EXACT_BELOW}).fetchone()["n"] < EXACT_BELOW
        if not exact:
            c.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
            rows = c.execute(sql["vector"], args).fetchall()
            exact = len(rows) < args["k"] and c.execute(sql["matching"], args).fetchone()["n"] > len(rows)
        if exact:
            # Planned afresh: psycopg prepares a query run often on one connection, and a cached plan keeps
            # the index scan that enable_indexscan = off is there to forbid (found by tests/test_load.py).
            c.execute("SET LOCAL enable_indexscan = off")
            rows = c.execute(sql["vector"], args, prepare=False).fetchall()
    return [(r["file_id"], r["ord"]) for r in rows]


def text_ranking(c, args: dict) -> list[tuple]:
    return [(r["file_id"], r["ord"]) for r in c.execute(queries(args)["text"], args).fetchall()]


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


def search(c, user: str, q: str, vector: Any, mode: str, filters: dict, limit: int, offset: int,
           ef: int = 400) -> list[dict]:
    """The page of hits: each file's best passage with its locator, score and matching rankings."""
    if mode == "hybrid" and not flags.enabled("hybrid_search", user):  # a gradual rollout; off: vector alone
        mode = "vector"
    args = {"u": user, "q": q, "v": vector, "k": (offset + limit) * WIDEN} | {k: filters.get(k) for k in FILTERS}
    page = fuse(rankings_for(c, args, mode, ef))[offset:offset + limit]
    rows = {(r["file_id"], r["ord"]): r for r in c.execute(
        """SELECT c.file_id, c.ord, f.filename, f.media_type, c.text AS passage, c.locator
           FROM chunks c JOIN files f ON f.id = c.file_id
           WHERE c.user_id = %s AND (c.file_id, c.ord) IN (SELECT * FROM unnest(%s::uuid[], %s::int[]))""",
        (user, [k[0] for k, *_ in page], [k[1] for k, *_ in page])).fetchall()}
    return [rows[k] | {"score": round(s, 5), "matched_by": by} for k, s, by in page if k in rows]
