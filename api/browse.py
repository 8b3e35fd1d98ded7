"""Finding and browsing: hybrid search, tags, clusters. Every query is scoped to the caller."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from api.deps import DB, User, cfg, emit
from events import wire
from events.catalogue import Category, ClustersRefresh
from shared.models import embedder

router = APIRouter()
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009): 1 / (60 + rank) per list
WIDEN = 4  # candidates per wanted hit: several passages of one file collapse into one hit
EXACT_BELOW = 10_000  # filtered chunks under this are searched exactly (~10 ms here, see bench/)


class FileTag(BaseModel):
    kind: str
    name: str
    label: str
    score: float


class ClusterRef(BaseModel):
    id: int
    label: str


class Hit(BaseModel):
    file_id: uuid.UUID
    filename: str
    media_type: str
    passage: str
    locator: dict  # {"page": 3} in a PDF, {"start_s": …, "end_s": …} in a recording
    score: float  # the fused reciprocal-rank score (higher is better)
    matched_by: list[str]  # "vector", "text" or both


class SearchResult(BaseModel):
    query: str
    mode: str
    offset: int
    hits: list[Hit]


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
    chunks = f"FROM chunks c JOIN files f ON f.id = c.file_id WHERE {where}"
    return {
        "vector": f"SELECT c.file_id, c.ord {chunks} ORDER BY c.embedding <=> %(v)s LIMIT %(k)s",
        "text": f"""SELECT c.file_id, c.ord {chunks} AND c.tsv @@ websearch_to_tsquery('english', %(q)s)
                    ORDER BY ts_rank_cd(c.tsv, websearch_to_tsquery('english', %(q)s)) DESC LIMIT %(k)s""",
        "matching": f"SELECT count(*) AS n FROM (SELECT 1 {chunks} LIMIT %(k)s) AS m",
    }


def vector_ranking(c, args: dict) -> list[tuple]:
    """pgvector 0.6 filters HNSW results after the scan (no iterative scans), so a selective filter can
    leave fewer than k rows although more exist. A filter that leaves few chunks is searched exactly
    at once (cheaper than the index scan it would otherwise follow); otherwise the index is tried
    first, and a short result falls back to the exact scan."""
    sql = queries(args)
    filtered = any(args.get(k) is not None for k in CONDITIONS)
    with c.transaction():
        exact = filtered and c.execute(sql["matching"], args | {"k": EXACT_BELOW}).fetchone()["n"] < EXACT_BELOW
        if not exact:
            c.execute(f"SET LOCAL hnsw.ef_search = {int(cfg.search_ef)}")
            rows = c.execute(sql["vector"], args).fetchall()
            exact = len(rows) < args["k"] and c.execute(sql["matching"], args).fetchone()["n"] > len(rows)
        if exact:
            c.execute("SET LOCAL enable_indexscan = off")
            rows = c.execute(sql["vector"], args).fetchall()
    return [(r["file_id"], r["ord"]) for r in rows]


def text_ranking(c, args: dict) -> list[tuple]:
    return [(r["file_id"], r["ord"]) for r in c.execute(queries(args)["text"], args).fetchall()]


def rankings_for(c, args: dict, mode: str) -> dict[str, list[tuple]]:
    """The rankings a mode asks for: vector, text, or both (hybrid)."""
    out = {}
    if mode in ("hybrid", "vector"):
        out["vector"] = vector_ranking(c, args)
    if mode in ("hybrid", "text"):
        out["text"] = text_ranking(c, args)
    return out


@router.get("/v1/search", response_model=SearchResult)
def search(user: User, c: DB, q: str = Query(..., min_length=1, max_length=1000),
           limit: int = Query(10, ge=1), offset: int = Query(0, ge=0, le=1000),
           mode: Literal["hybrid", "vector", "text"] = "hybrid",
           tag: str | None = None, cluster: int | None = None, kind: Category | None = None,
           since: datetime | None = None, until: datetime | None = None) -> SearchResult:
    limit = min(limit, cfg.search_limit_max)
    args = {"u": user, "q": q, "k": (offset + limit) * WIDEN, "tag": tag, "cluster": cluster,
            "kind": kind.value if kind else None, "since": since, "until": until, "v": None}
    if mode in ("hybrid", "vector"):
        args["v"] = embedder(cfg.embed_model, cfg.embed_device, cfg.embed_batch_size).embed([q])[0]
    rankings = rankings_for(c, args, mode)
    fused: dict[tuple, float] = {}
    by: dict[tuple, list[str]] = {}
    for name, ranking in rankings.items():
        for rank, key in enumerate(ranking, 1):
            fused[key] = fused.get(key, 0.0) + 1 / (RRF_K + rank)
            by.setdefault(key, []).append(name)
    best: dict[uuid.UUID, tuple] = {}  # the best passage of each file
    for key, score in sorted(fused.items(), key=lambda kv: -kv[1]):
        best.setdefault(key[0], (key, score))
    page = list(best.values())[offset:offset + limit]
    rows = {(r["file_id"], r["ord"]): r for r in c.execute(
        """SELECT c.file_id, c.ord, f.filename, f.media_type, c.text AS passage, c.locator
           FROM chunks c JOIN files f ON f.id = c.file_id
           WHERE c.user_id = %s AND (c.file_id, c.ord) IN (SELECT * FROM unnest(%s::uuid[], %s::int[]))""",
        (user, [k[0] for k, _ in page], [k[1] for k, _ in page])).fetchall()}
    hits = [Hit(**rows[k], score=round(s, 5), matched_by=by[k]) for k, s in page if k in rows]
    return SearchResult(query=q, mode=mode, offset=offset, hits=hits)


class Tag(BaseModel):
    kind: str
    name: str
    label: str
    files: int


@router.get("/v1/tags", response_model=list[Tag])
def tags(user: User, c: DB, kind: str | None = None, limit: int = Query(100, ge=1, le=1000),
         offset: int = Query(0, ge=0)) -> list[Tag]:
    return [Tag(**r) for r in c.execute(
        """SELECT kind, name, mode() WITHIN GROUP (ORDER BY label) AS label, count(*) AS files
           FROM tags WHERE user_id = %s AND (%s::text IS NULL OR kind = %s)
           GROUP BY kind, name ORDER BY files DESC, name LIMIT %s OFFSET %s""",
        (user, kind, kind, limit, offset)).fetchall()]


class Member(BaseModel):
    id: uuid.UUID
    filename: str
    media_type: str
    created_at: datetime


class Cluster(BaseModel):
    id: int
    label: str
    size: int
    updated_at: datetime
    files: list[Member]


MEMBERS = """SELECT id, filename, media_type, created_at FROM files
             WHERE cluster_id = %s AND user_id = %s ORDER BY created_at DESC LIMIT %s"""


@router.get("/v1/clusters", response_model=list[Cluster])
def clusters(user: User, c: DB, sample: int = Query(3, ge=0, le=20)) -> list[Cluster]:
    rows = c.execute("SELECT * FROM clusters WHERE user_id = %s ORDER BY size DESC, id", (user,)).fetchall()
    return [Cluster(**r, files=c.execute(MEMBERS, (r["id"], user, sample)).fetchall()) for r in rows]


@router.get("/v1/clusters/{cluster_id}", response_model=Cluster)
def cluster(cluster_id: int, user: User, c: DB, limit: int = Query(200, ge=1, le=1000)) -> Cluster:
    row = c.execute("SELECT * FROM clusters WHERE id = %s AND user_id = %s", (cluster_id, user)).fetchone()
    if row is None:
        raise HTTPException(404, f"no cluster {cluster_id}")
    return Cluster(**row, files=c.execute(MEMBERS, (cluster_id, user, limit)).fetchall())


@router.post("/v1/clusters/refresh", status_code=202)
def refresh_clusters(user: User) -> dict:
    """Re-cluster the caller's files in full now, instead of waiting for the nightly run."""
    emit(wire.make(ClustersRefresh(user_id=user), "api"), "try again later")
    return {"status": "accepted"}


def file_tags(c, file_id: uuid.UUID) -> list[FileTag]:
    rows = c.execute("SELECT kind, name, label, score FROM tags WHERE file_id = %s ORDER BY score DESC, name",
                     (file_id,)).fetchall()
    return [FileTag(**r) for r in rows]


def cluster_of(c, cluster_id: int | None) -> ClusterRef | None:
    row = c.execute("SELECT id, label FROM clusters WHERE id = %s", (cluster_id,)).fetchone() if cluster_id else None
    return ClusterRef(**row) if row else None
