"""pgvector's neighbours: how the HNSW index is scanned (the policy the search and related files share,
measured in bench/bench_search.py), and a file's related files, from the stored vectors alone."""
from __future__ import annotations

import uuid

# A library or a filter that leaves fewer files than this is searched exactly: cheaper than the index scan, and
# right where the index is not (a filter far from the query, such as another topic's cluster: the
# iterative scan's recall fell to 0.70 there). Measured in bench/bench_search.py.
EXACT_BELOW = 1_000
# A tag's or a cluster's files come from an index of their own, so their exact scan is cheaper, and a
# cluster is a region of the space, which the index reaches badly from a query about something else: at
# 1,250 files of a cluster far from the query, the iterative scan took 88 ms and found half the true top
# ten, the exact scan 8 ms and all of them (bench_search.py). Such filters are searched exactly below
# twice the threshold.
INDEXED_FILTERS, INDEXED_FACTOR = ("tag", "cluster"), 2
ITERATIVE_SCAN = "strict_order"  # the rows come in distance order, as the fusion needs them
SCAN_TUPLES = 20_000  # pgvector's hnsw.max_scan_tuples: how far an iterative scan goes before giving up
_ITERATIVE: dict[str, bool] = {}  # server (dsn) -> whether its pgvector scans iteratively
QUERY_CHUNKS = 16  # passages of a long file that look for neighbours, spread over it
FEW = "SELECT count(*) AS n FROM (SELECT 1 FROM files f WHERE f.user_id = %(u)s LIMIT %(k)s) AS m"


def iterative_scans(c) -> bool:
    """Whether the server's pgvector has iterative index scans (0.8 and later): asked once per server."""
    key = c.info.dsn
    if key not in _ITERATIVE:
        row = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        version = tuple(int(x) for x in row["extversion"].split(".")[:2]) if row else (0, 0)
        _ITERATIVE[key] = version >= (0, 8)
    return _ITERATIVE[key]


def related(c, user: str, file_id: uuid.UUID, limit: int) -> list[dict]:
    """The user's files nearest to this one by their best passage pair, from the stored vectors: each of up
    to QUERY_CHUNKS passages of the file asks the HNSW index (or an exact scan, for a small library) for its
    neighbours among the user's other files."""
    n = c.execute("SELECT count(*) AS n FROM chunks WHERE file_id = %s AND user_id = %s",
                  (file_id, user)).fetchone()["n"]
    few = c.execute(FEW, {"u": user, "k": EXACT_BELOW}).fetchone()["n"]
    args = {"f": file_id, "u": user, "step": max(1, n // QUERY_CHUNKS), "k": limit * 4}
    # Set for this query only: inside a caller's transaction (the digest's) a SET LOCAL would outlive it.
    settings = {"enable_indexscan": "off"} if few < EXACT_BELOW else \
        {"hnsw.iterative_scan": ITERATIVE_SCAN, "hnsw.ef_search": str(max(40, limit * 8))} if iterative_scans(c) else {}
    with c.transaction():
        for name, value in settings.items():
            c.execute("SELECT set_config(%s, %s, true)", (name, value))
        pairs = c.execute(
            """SELECT DISTINCT ON (n.file_id) n.file_id, 1 - n.d AS similarity, q.text AS passage,
                      q.locator, n.text AS related_passage, n.locator AS related_locator
               FROM (SELECT text, locator, embedding FROM chunks
                     WHERE file_id = %(f)s AND user_id = %(u)s AND ord %% %(step)s = 0 ORDER BY ord LIMIT 16) q
               CROSS JOIN LATERAL (
                   SELECT c.file_id, c.text, c.locator, c.embedding <=> q.embedding AS d FROM chunks c
                   WHERE c.user_id = %(u)s AND c.file_id <> %(f)s
                   ORDER BY c.embedding <=> q.embedding LIMIT %(k)s) n
               ORDER BY n.file_id, n.d""", args, prepare=False).fetchall()
        for name in settings:
            c.execute(f"RESET {name}")
    best = sorted(pairs, key=lambda p: -p["similarity"])[:limit]
    files = {r["id"]: r for r in c.execute(
        """SELECT f.id, f.filename AS name, f.category, f.captured_at,
                  coalesce(f.duplicate_of, f.id) = coalesce(me.duplicate_of, me.id) AS duplicate,
                  ARRAY(SELECT DISTINCT t.label FROM tags t JOIN tags mine ON mine.name = t.name
                        AND mine.file_id = me.id WHERE t.file_id = f.id ORDER BY t.label) AS shared_tags
           FROM files f, files me WHERE me.id = %s AND f.user_id = %s AND f.id = ANY(%s)""",
        (file_id, user, [p["file_id"] for p in best])).fetchall()}
    return [{**files[p["file_id"]], "file_id": p["file_id"],
             "why": {**p, "similarity": round(p["similarity"], 4), "shared_tags": files[p["file_id"]]["shared_tags"]}}
            for p in best if p["file_id"] in files]


