"""The API function: the app's one door. It stores uploads, emits `file.uploaded`, and answers for
files, their progress and search. Every route is per user; another user's file is a 404."""
from __future__ import annotations

import hashlib
import uuid
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request, Response, UploadFile
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api import account, admin, browse, errors, reminders
from api.deps import DB, Api, Offset, Runtime, Uploader, User, log, probes
from api.errors import problems
from api.media import safe_name, sniff
from api.reminders import Reminder
from events import catalogue, wire
from events.catalogue import FileDeleted, FileUploaded, TextExtracted
from shared import tracing
from shared.blobs import file_key
from shared.metrics import UPLOAD_BYTES, UPLOADS
from shared.observability import bound


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Knative's lifecycle for the API (shared/runtime.py): start when the server starts, stop when it shuts down."""
    app.state.api = Api()
    app.state.api.runtime.start()
    tracing.instrument_app(app)  # request spans, if a collector is configured
    yield
    app.state.api.runtime.stop()


app = FastAPI(
    lifespan=lifespan,
    title="Mindspace API",
    version="0.1.0",
    description="Upload what you capture; search it by meaning and words, browse its tags and clusters. "
    "Authenticate with a Firebase ID token (`Authorization: Bearer <token>`); the local stack also takes "
    "`Bearer dev:<user>`. Every error is RFC 9457 problem details (`application/problem+json`). Uploads "
    "and searches are limited per user (RATE_LIMIT_UPLOADS, RATE_LIMIT_SEARCHES): over a limit, 429 with "
    "`Retry-After`.",
)
errors.install(app)

app.include_router(browse.router)
app.include_router(reminders.router)
app.include_router(account.router)
app.include_router(admin.router)
app.include_router(probes)
app.add_middleware(admin.RequestTimer)


class Stage(BaseModel):
    status: str
    attempts: int
    detail: dict
    error: str | None
    started_at: Any
    finished_at: Any


class Backup(BaseModel):
    status: str  # pending, done, failed
    uri: str | None = None  # gs://bucket/object, once done
    reason: str | None = None  # why it failed


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
    tags: list[browse.FileTag] = []
    cluster: browse.ClusterRef | None = None  # None: not clustered yet, or noise
    reminders: list[Reminder] = []  # suggested from its text, or set for it by hand
    backup: Backup | None = None  # None: the user set no backup bucket
    duplicate: bool = False


def _file(conn, user: str, file_id: uuid.UUID) -> File:
    row = conn.execute("SELECT * FROM files WHERE id = %s AND user_id = %s", (file_id, user)).fetchone()
    if row is None:
        raise HTTPException(404, f"no file {file_id}")
    stages = conn.execute(
        "SELECT * FROM file_stages WHERE file_id = %s ORDER BY started_at", (file_id,)).fetchall()
    # How the text was obtained: the record of whichever stage emitted the file's text.extracted.
    extraction = next((s["detail"] for s in stages if TextExtracted.type in s["emitted"]), None)
    linked = conn.execute("SELECT * FROM reminders WHERE file_id = %s AND user_id = %s ORDER BY due_at",
                          (file_id, user)).fetchall()
    return File(**row, stages={s["stage"]: Stage(**s) for s in stages}, extraction=extraction,
                tags=browse.file_tags(conn, file_id), cluster=browse.cluster_of(conn, row["cluster_id"]),
                reminders=[Reminder(**r) for r in linked], backup=backup_of(conn, user, row))


def backup_of(conn, user: str, row: dict) -> Backup | None:
    done = conn.execute("SELECT status, uri, reason FROM backups WHERE file_id = %s", (row["id"],)).fetchone()
    if done:
        return Backup(**done)
    if account.user_settings(conn, user).backup_bucket and row["status"] in ("processing", "ready"):
        return Backup(status="pending")  # the copy is made once the file is ready
    return None


@app.post("/v1/files", status_code=201, response_model=File, responses={
    200: {"model": File, "description": "the same bytes were uploaded before: that file, with `duplicate` true"},
    **problems(401, 413, 422, 429, 503)})
async def upload(file: UploadFile, user: Uploader, api: Runtime, response: Response, request: Request) -> File:
    cfg = api.cfg
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
    return await run_in_threadpool(_store, api, user, safe_name(file.filename), data, response)


def _store(api: Api, user: str, filename: str, data: bytes, response: Response) -> File:
    sha = hashlib.sha256(data).hexdigest()
    media_type, category = sniff(data, filename)
    file_id = uuid.uuid4()
    with api.pool.connection() as c:
        existing = c.execute("SELECT id FROM files WHERE user_id = %s AND sha256 = %s", (user, sha)).fetchone()
        if existing is None:
            uri = api.blobs.put(file_key(user, file_id, "original"), data, media_type)
            account.ensure_user(c, user)
            inserted = c.execute(
                """INSERT INTO files (id, user_id, filename, media_type, category, size, sha256, blob_uri)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (user_id, sha256) DO NOTHING RETURNING id""",
                (file_id, user, filename, media_type, category, len(data), sha, uri),
            ).fetchone()
            c.commit()
            if inserted is None:  # a concurrent upload of the same bytes won the race
                api.blobs.delete(uri)
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
    ce = wire.make(event, "api", id=catalogue.reply_id("api", "upload", str(row["id"])))
    with bound(ce):  # the upload's log lines carry the file's and the event's ids
        api.emit(ce, "the file is stored, upload it again to resume it")
        log.info("user %s uploaded %s (%s, %s, %d bytes) as %s", user, filename, media_type, category,
                 len(data), row["id"])
    UPLOADS.labels("accepted").inc()
    UPLOAD_BYTES.inc(len(data))
    with api.pool.connection() as c:
        record = _file(c, user, row["id"])
    record.duplicate = response.status_code == 200
    return record


@app.get("/v1/files", response_model=list[File], responses=problems(401, 422, 503))
def list_files(user: User, c: DB, limit: int = Query(50, ge=1, le=500), offset: Offset = 0):
    rows = c.execute(
        "SELECT * FROM files WHERE user_id = %s ORDER BY created_at DESC LIMIT %s OFFSET %s",
        (user, limit, offset)).fetchall()
    return [File(**r) for r in rows]


@app.get("/v1/files/{file_id}", response_model=File, responses=problems(401, 404, 422, 503))
def get_file(file_id: uuid.UUID, user: User, c: DB) -> File:
    return _file(c, user, file_id)


@app.delete("/v1/files/{file_id}", status_code=204, responses=problems(401, 404, 422, 503))
def delete_file(file_id: uuid.UUID, user: User, c: DB, api: Runtime) -> Response:
    backup = c.execute("SELECT uri FROM backups WHERE file_id = %s AND user_id = %s", (file_id, user)).fetchone()
    # Suggestions go with the file; reminders the user set or accepted stay, unpinned (ON DELETE SET NULL).
    c.execute("DELETE FROM reminders WHERE file_id = %s AND user_id = %s AND status = 'suggested'", (file_id, user))
    row = c.execute("DELETE FROM files WHERE id = %s AND user_id = %s RETURNING id",
                    (file_id, user)).fetchone()  # chunks, stage records, backups go with it (cascade)
    if row is None:
        raise HTTPException(404, f"no file {file_id}")
    # Announced before the commit: if the broker cannot take it, nothing is deleted and the caller retries.
    gone = FileDeleted(file_id=file_id, user_id=user, backup_uri=backup and backup["uri"],
                       backup_bucket=account.user_settings(c, user).backup_bucket)
    api.emit(wire.make(gone, "api"), "nothing was deleted; try again")
    c.commit()
    api.blobs.delete_prefix(file_key(user, file_id, ""))  # the upload and everything made of it
    return Response(status_code=204)

