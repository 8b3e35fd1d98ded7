"""Finding and browsing routes: search (ranked in api/search.py), tags, clusters. Every query is scoped
to the caller."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, BeforeValidator

from api import search
from api.deps import DB, Id, Offset, Runtime, Searcher, User
from api.errors import NO_NUL, link, problems
from events import wire
from events.catalogue import Category, ClustersRefresh
from shared import languages


def not_a_number(value):
    """A date or date-time in the query is an ISO 8601 string: pydantic would take "-375" as seconds since 1970."""
    try:
        float(value)
    except (TypeError, ValueError):
        return value
    raise ValueError("a date-time such as 2026-12-01T09:00:00Z, not a number")


# The search's since/until: RFC 3339 only, as the OpenAPI document declares (format date-time).
Moment = Annotated[datetime | None, BeforeValidator(not_a_number)]

router = APIRouter(responses=problems(401, 503))


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
    copies: int = 0  # near-duplicates of this file that the search shows as this one hit


class SearchResult(BaseModel):
    query: str
    mode: str
    offset: int
    hits: list[Hit]


@router.get("/v1/search", response_model=SearchResult, responses=problems(422, 429))
def search_files(user: Searcher, api: Runtime, q: str = Query(..., min_length=1, max_length=1000, pattern=NO_NUL),
           limit: int = Query(10, ge=1, le=1000, description="at most SEARCH_LIMIT_MAX are returned"),
           offset: int = Query(0, ge=0, le=1000),
           mode: Literal["hybrid", "vector", "text"] = "hybrid",
           tag: str | None = Query(None, pattern=NO_NUL),
           cluster: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None, kind: Category | None = None,
           since: Moment = None, until: Moment = None) -> SearchResult:
    limit = min(limit, api.cfg.search_limit_max)
    vector = api.embedder.run([q])[0] if mode in ("hybrid", "vector") else None
    filters = {"tag": tag, "cluster": cluster, "kind": kind.value if kind else None, "since": since, "until": until}
    with api.pool.connection() as c:  # taken after the embedding: a query waiting for the model holds none
        hits = search.search(c, user, q, vector, mode, filters, limit, offset, api.cfg.search_ef,
                             flag_spec=api.cfg.flags, default_languages=languages.from_tesseract(api.cfg.ocr_languages))
    return SearchResult(query=q, mode=mode, offset=offset, hits=[Hit(**h) for h in hits])


class Tag(BaseModel):
    kind: str
    name: str
    label: str
    files: int


@router.get("/v1/tags", response_model=list[Tag], responses=problems(422))
def tags(user: User, c: DB, kind: str | None = Query(None, pattern=NO_NUL), limit: int = Query(100, ge=1, le=1000),
         offset: Offset = 0) -> list[Tag]:
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


@router.get("/v1/clusters", response_model=list[Cluster], responses={
    200: {"links": {"GetCluster": link("GET", "/v1/clusters/{cluster_id}", "/0/id")}},
    **problems(422)})
def clusters(user: User, c: DB, sample: int = Query(3, ge=0, le=20)) -> list[Cluster]:
    rows = c.execute("SELECT * FROM clusters WHERE user_id = %s ORDER BY size DESC, id", (user,)).fetchall()
    return [Cluster(**r, files=c.execute(MEMBERS, (r["id"], user, sample)).fetchall()) for r in rows]


# Digits only, so that GET /v1/clusters/refresh is a 405, not a cluster id that fails to parse.
@router.get("/v1/clusters/{cluster_id:int}", response_model=Cluster, responses=problems(404, 422))
def cluster(cluster_id: Id, user: User, c: DB, limit: int = Query(200, ge=1, le=1000)) -> Cluster:
    row = c.execute("SELECT * FROM clusters WHERE id = %s AND user_id = %s", (cluster_id, user)).fetchone()
    if row is None:
        raise HTTPException(404, f"no cluster {cluster_id}")
    return Cluster(**row, files=c.execute(MEMBERS, (cluster_id, user, limit)).fetchall())


@router.post("/v1/clusters/refresh", status_code=202)
def refresh_clusters(user: User, api: Runtime) -> dict:
    """Re-cluster the caller's files in full now, instead of waiting for the nightly run."""
    api.emit(wire.make(ClustersRefresh(user_id=user), "api"), "try again later")
    return {"status": "accepted"}


def file_tags(c, file_id: uuid.UUID) -> list[FileTag]:
    rows = c.execute("SELECT kind, name, label, score FROM tags WHERE file_id = %s ORDER BY score DESC, name",
                     (file_id,)).fetchall()
    return [FileTag(**r) for r in rows]


def cluster_of(c, cluster_id: int | None) -> ClusterRef | None:
    row = c.execute("SELECT id, label FROM clusters WHERE id = %s", (cluster_id,)).fetchone() if cluster_id else None
    return ClusterRef(**row) if row else None
