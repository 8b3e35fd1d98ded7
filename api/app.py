"""The API function: the app's one door. It stores uploads, emits `file.uploaded`, and answers for
files, their progress and search. Every route is per user; another user's file is a 404."""
from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.auth import Authenticator
from api.media import sniff
from events import catalogue, wire
from events.catalogue import FileUploaded
from shared import db
from shared.blobs import blob_store, file_key
from shared.config import settings
from shared.models import embedder
from shared.observability import setup_logging

log = logging.getLogger("mindspace.api")
cfg = settings()
setup_logging("api", cfg.log_level)
auth = Authenticator(cfg)
blobs = blob_store(cfg)
UPLOADS = Counter("mindspace_uploads_total", "Uploads by result", ["result"])

app = FastAPI(
    title="Mindspace API",
    version="0.1.0",
    description="Upload what you capture; search it by meaning. Authenticate with a Firebase ID token "
    "(`Authorization: Bearer <token>`); the local stack also takes `Bearer dev:<user>`.",
)
User = Annotated[str, Depends(auth.user)]


def conn():
    with db.pool(cfg.database_url, cfg.db_pool_size).connection() as c:
        yield c


DB = Annotated[Any, Depends(conn)]


class Stage(BaseModel):
    status: str
    attempts: int
    detail: dict
    error: str | None
    started_at: Any
    finished_at: Any


class File(BaseModel):
    id: uuid.UUID
    filename: str
    media_type: str
    category: str
    size: int
    sha256: str
    status: str
    status_reason: str | None
    created_at: Any
    ready_at: Any
    stages: dict[str, Stage] = {}
    # How the text was obtained: the extracting stage's record (method, pages, confidence, language …).
    extraction: dict | None = None
    duplicate: bool = False


class Hit(BaseModel):
    file_id: uuid.UUID
    filename: str
    media_type: str
    passage: str
    locator: dict
    score: float


class SearchResult(BaseModel):
    query: str
    hits: list[Hit]


def _file(conn, user: str, file_id: uuid.UUID) -> File:
    row = conn.execute("SELECT * FROM files WHERE id = %s AND user_id = %s", (file_id, user)).fetchone()
    if row is None:
        raise HTTPException(404, f"no file {file_id}")
    stages = conn.execute(
        "SELECT * FROM file_stages WHERE file_id = %s ORDER BY started_at", (file_id,)).fetchall()
    extraction = next((s["detail"] for s in stages if "method" in (s["detail"] or {})), None)
    return File(**row, stages={s["stage"]: Stage(**s) for s in stages}, extraction=extraction)


def _emit(event: wire.CloudEvent) -> None:
    if not cfg.k_sink:
        raise HTTPException(503, "no broker configured (K_SINK); the file is stored, upload it again later")
    headers, body = wire.binary(event)
    try:
        httpx.post(cfg.k_sink, headers=headers, content=body, timeout=10).raise_for_status()
    except httpx.HTTPError as e:
        log.error("could not emit %s: %s", event["type"], e)
        raise HTTPException(503, "the pipeline is not reachable; the file is stored, upload it again "
                                 "to resume it") from e


@app.post("/v1/files", status_code=201, response_model=File)
async def upload(file: UploadFile, user: User, response: Response, request: Request) -> File:
    declared = int(request.headers.get("content-length") or 0)
    if declared > cfg.max_upload_bytes + 64 * 1024:
        UPLOADS.labels("too_large").inc()
        raise HTTPException(413, f"the upload is over the limit of {cfg.max_upload_bytes} bytes")
    data = await file.read(cfg.max_upload_bytes + 1)
    if len(data) > cfg.max_upload_bytes:
        UPLOADS.labels("too_large").inc()
        raise HTTPException(413, f"the upload is over the limit of {cfg.max_upload_bytes} bytes")
    if not data:
        UPLOADS.labels("empty").inc()
        raise HTTPException(422, "the file is empty")
    return await run_in_threadpool(_store, user, file.filename or "upload", data, response)


def _store(user: str, filename: str, data: bytes, response: Response) -> File:
    sha = hashlib.sha256(data).hexdigest()
    media_type, category = sniff(data, filename)
    file_id = uuid.uuid4()
    with db.pool(cfg.database_url, cfg.db_pool_size).connection() as c:
        existing = c.execute("SELECT id FROM files WHERE user_id = %s AND sha256 = %s", (user, sha)).fetchone()
        if existing is None:
            uri = blobs.put(file_key(user, file_id, "original"), data, media_type)
            c.execute("INSERT INTO users (id) VALUES (%s) ON CONFLICT DO NOTHING", (user,))
            inserted = c.execute(
                """INSERT INTO files (id, user_id, filename, media_type, category, size, sha256, blob_uri)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (user_id, sha256) DO NOTHING RETURNING id""",
                (file_id, user, filename, media_type, category, len(data), sha, uri),
            ).fetchone()
            c.commit()
            if inserted is None:  # a concurrent upload of the same bytes won the race
                blobs.delete(uri)
                existing = c.execute(
                    "SELECT id FROM files WHERE user_id = %s AND sha256 = %s", (user, sha)).fetchone()
        if existing is not None:
            response.status_code = 200
            record = _file(c, user, existing["id"])
            record.duplicate = True
            UPLOADS.labels("duplicate").inc()
            if record.status != "processing" or record.stages:
                return record  # already on its way, or done: nothing to resend
            file_id = record.id  # never reached a stage (the broker was down): send it again
        row = c.execute("SELECT * FROM files WHERE id = %s", (file_id,)).fetchone()
    event = FileUploaded(file_id=row["id"], user_id=user, blob_uri=row["blob_uri"], filename=row["filename"],
                         media_type=row["media_type"], category=row["category"], size=row["size"],
                         sha256=row["sha256"])
    _emit(wire.make(event, "api", id=catalogue.reply_id("api", "upload", str(row["id"]))))
    log.info("user %s uploaded %s (%s, %s, %d bytes) as %s", user, filename, media_type, category,
             len(data), row["id"])
    UPLOADS.labels("accepted").inc()
    with db.pool(cfg.database_url).connection() as c:
        record = _file(c, user, row["id"])
    record.duplicate = response.status_code == 200
    return record


@app.get("/v1/files", response_model=list[File])
def list_files(user: User, c: DB, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)):
    rows = c.execute(
        "SELECT * FROM files WHERE user_id = %s ORDER BY created_at DESC LIMIT %s OFFSET %s",
        (user, limit, offset)).fetchall()
    return [File(**r) for r in rows]


@app.get("/v1/files/{file_id}", response_model=File)
def get_file(file_id: uuid.UUID, user: User, c: DB) -> File:
    return _file(c, user, file_id)


@app.delete("/v1/files/{file_id}", status_code=204)
def delete_file(file_id: uuid.UUID, user: User, c: DB) -> Response:
    row = c.execute("DELETE FROM files WHERE id = %s AND user_id = %s RETURNING id",
                    (file_id, user)).fetchone()  # chunks and stage records go with it (cascade)
    c.commit()
    if row is None:
        raise HTTPException(404, f"no file {file_id}")
    blobs.delete_prefix(file_key(user, file_id, ""))  # the upload and everything made of it
    return Response(status_code=204)


@app.get("/v1/search", response_model=SearchResult)
def search(user: User, c: DB, q: str = Query(..., min_length=1, max_length=1000),
           limit: int = Query(10, ge=1)) -> SearchResult:
    limit = min(limit, cfg.search_limit_max)
    vec = embedder(cfg.embed_model, cfg.embed_device, cfg.embed_batch_size).embed([q])[0]
    # pgvector 0.6 filters HNSW results after the scan, so a user's filter can leave fewer than k
    # rows: widen the scan, and fall back to an exact scan when it still comes up short.
    sql = """SELECT c.file_id, f.filename, f.media_type, c.text AS passage, c.locator,
                    1 - (c.embedding <=> %(v)s) AS score
             FROM chunks c JOIN files f ON f.id = c.file_id
             WHERE c.user_id = %(u)s ORDER BY c.embedding <=> %(v)s LIMIT %(k)s"""
    args = {"v": vec, "u": user, "k": limit * 4}
    with c.transaction():
        c.execute("SET LOCAL hnsw.ef_search = 200")
        rows = c.execute(sql, args).fetchall()
        if len(rows) < args["k"]:
            total = c.execute("SELECT count(*) AS n FROM chunks WHERE user_id = %s", (user,)).fetchone()["n"]
            if total > len(rows):
                c.execute("SET LOCAL enable_indexscan = off")
                rows = c.execute(sql, args).fetchall()
    hits, seen = [], set()
    for r in rows:  # the best passage of each file
        if r["file_id"] not in seen:
            seen.add(r["file_id"])
            hits.append(Hit(**r))
    return SearchResult(query=q, hits=hits[:limit])


@app.get("/healthz", include_in_schema=False)
def healthz():
    return {"status": "alive"}


@app.get("/readyz", include_in_schema=False)
def readyz(c: DB):
    c.execute("SELECT 1")
    return {"status": "ready"}


@app.get("/metrics", include_in_schema=False)
def metrics():
    return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)
