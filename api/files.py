"""The file routes: upload (store the blob, record the file, emit `file.uploaded`), list, the record of one
file stage by stage, and delete. Every route is the caller's own; another user's file is a 404."""
from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, UploadFile
from fastapi import File as FilePart
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from api import account, browse
from api.deps import DB, Api, Offset, Runtime, Uploader, User, log
from api.errors import link, problems
from api.reminders import Reminder
from events import catalogue, wire
from events.catalogue import FileDeleted, FileUploaded, TextExtracted
from shared import quota
from shared.blobs import file_key
from shared.media import safe_name, sniff
from shared.metrics import UPLOAD_BYTES, UPLOADS
from shared.observability import bound

router = APIRouter(tags=["files"])


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
    created_at: Any  # uploaded
    # When it was captured: what its content says (a photo's EXIF, a PDF's creation date, a recording's
    # creation_time, an e-mail's Date), else the upload time; the search's since/until read it.
    captured_at: Any
    ready_at: Any
    # The earliest file of its near-duplicate group (the same note edited, the same photo re-encoded), if
    # it is a copy; GET /v1/duplicates lists the groups.
    duplicate_of: uuid.UUID | None = None
    stages: dict[str, Stage] = {}
    # How the text was obtained: the extracting stage's record (method, pages, confidence, language …).
    extraction: dict | None = None
    # The language (ISO 639-1) most of its text is in, as the embed stage detected it per passage; else the
    # spoken language the transcription found; None: too little text to tell, or not read yet.
    language: str | None = None
    tags: list[browse.FileTag] = []
    cluster: browse.ClusterRef | None = None  # None: not clustered yet, or noise
    reminders: list[Reminder] = []  # suggested from its text, or set for it by hand
    backup: Backup | None = None  # None: the user set no backup bucket
    duplicate: bool = False
    # A captured link's address (its original is the page as fetched; its sha256 is the address's).
    source_url: str | None = None
    parent_id: uuid.UUID | None = None  # the e-mail (or imported note) this file came attached to
    attachments: list[uuid.UUID] = []  # an e-mail's (or an imported note's) attachments, each a file of its own


def record(conn, user: str, file_id: uuid.UUID) -> File:
    row = conn.execute("SELECT * FROM files WHERE id = %s AND user_id = %s", (file_id, user)).fetchone()
    if row is None:
        raise HTTPException(404, f"no file {file_id}")
    stages = conn.execute(
        "SELECT * FROM file_stages WHERE file_id = %s ORDER BY started_at", (file_id,)).fetchall()
    # How the text was obtained: the record of whichever stage emitted the file's text.extracted.
    extraction = next((s["detail"] for s in stages if TextExtracted.type in s["emitted"]), None)
    linked = conn.execute("SELECT * FROM reminders WHERE file_id = %s AND user_id = %s ORDER BY due_at",
                          (file_id, user)).fetchall()
    found = conn.execute("""SELECT language FROM chunks WHERE file_id = %s AND user_id = %s AND language IS NOT NULL
                            GROUP BY language ORDER BY sum(length(text)) DESC, language LIMIT 1""",
                         (file_id, user)).fetchone()
    language = found["language"] if found else (extraction or {}).get("language")
    attached = conn.execute("SELECT id FROM files WHERE parent_id = %s AND user_id = %s ORDER BY filename, id",
                            (file_id, user)).fetchall()
    return File(**row, stages={s["stage"]: Stage(**s) for s in stages}, extraction=extraction, language=language,
                attachments=[a["id"] for a in attached],
                tags=browse.file_tags(conn, file_id), cluster=browse.cluster_of(conn, row["cluster_id"]),
                reminders=[Reminder(**r) for r in linked], backup=backup_of(conn, user, row))


def backup_of(conn, user: str, row: dict) -> Backup | None:
    done = conn.execute("SELECT status, uri, reason FROM backups WHERE file_id = %s", (row["id"],)).fetchone()
    if done:
        return Backup(**done)
    if account.user_settings(conn, user).backup_bucket and row["status"] in ("processing", "ready"):
        return Backup(status="pending")  # the copy is made once the file is ready
    return None


class Upload(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a part other than `file` is a 422, as in every body
    file: UploadFile


def by_id(pointer: str) -> dict:
    """The routes that take a file's id, as OpenAPI links from an answer that carries one at `pointer`."""
    return {"links": {name: link(method, path, pointer)
                      for name, method, path in (("GetFile", "GET", "/v1/files/{file_id}"),
                                                 ("DeleteFile", "DELETE", "/v1/files/{file_id}"),
                                                 ("RelatedFiles", "GET", "/v1/files/{file_id}/related"))}}


@router.post("/v1/files", status_code=201, response_model=File, responses={
    201: by_id("/id"),
    200: {"model": File, "description": "the same bytes were uploaded before: that file, with `duplicate` true",
          **by_id("/id")},
    **problems(401, 413, 422, 429, 503)})
async def upload(form: Annotated[Upload, FilePart()], user: Uploader, api: Runtime, response: Response,
                 request: Request) -> File:
    cfg, file = api.cfg, form.file
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


SAME_BYTES = "SELECT * FROM files WHERE user_id = %s AND sha256 = %s"
# The new row, and whether its owner backs up (a new file's backup is pending then): the answer's whole record.
INSERT = """INSERT INTO files (id, user_id, filename, media_type, category, size, sha256, blob_uri, source_url)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (user_id, sha256) DO NOTHING
            RETURNING *, (SELECT backup_bucket FROM user_settings WHERE user_id = files.user_id) AS backup_bucket"""


def _store(api: Api, user: str, filename: str, data: bytes, response: Response) -> File:
    media_type, category = sniff(data, filename)
    return store(api, user, filename, hashlib.sha256(data).hexdigest(), len(data), media_type, category, response,
                 lambda key: api.blobs.put(key, data, media_type))


def store(api: Api, user: str, filename: str, sha: str, size: int, media_type: str, category: str,
          response: Response, put, source_url: str | None = None) -> File:
    """A file made of bytes that arrived (an upload, or a resumable upload's parts, which `put(key)` writes
    to the blob store and whose uri it returns), as every way in makes one: the same bytes twice are one
    file, the quota holds, the row and the event follow. One connection: the new file's answer and event
    are built from the row it inserted; only a file uploaded before is read, since it may have gone
    through stages already."""
    file_id = uuid.uuid4()
    with api.pool.connection() as c:
        row = c.execute(SAME_BYTES, (user, sha)).fetchone()
        if row is None:
            try:  # the user's lock is held until the commit below: the next upload counts this one
                quota.check(c, user, size, api.cfg.quota_bytes, api.cfg.quota_files)
            except quota.OverQuota as e:
                UPLOADS.labels("over_quota").inc()
                raise HTTPException(e.status, e.reason) from None
            uri = put(file_key(user, file_id, "original"))
            account.ensure_user(c, user)
            row = c.execute(INSERT, (file_id, user, filename, media_type, category, size, sha, uri,
                                     source_url)).fetchone()
            c.commit()
            if row is None:  # a concurrent upload of the same bytes won the race
                api.blobs.delete(uri)
                row = c.execute(SAME_BYTES, (user, sha)).fetchone()
            else:
                answer = File(**row, backup=Backup(status="pending") if row["backup_bucket"] else None)
        if row["id"] != file_id:
            response.status_code = 200
            UPLOADS.labels("duplicate").inc()
            answer = record(c, user, row["id"])
            answer.duplicate = True
            if answer.status != "processing" or answer.stages:
                return answer  # already on its way, or done: nothing to resend
            # else it never reached a stage (the broker was down): send it again
    event = FileUploaded(file_id=row["id"], user_id=user, blob_uri=row["blob_uri"], filename=row["filename"],
                         media_type=row["media_type"], category=row["category"], size=row["size"],
                         sha256=row["sha256"])
    ce = wire.make(event, "api", id=catalogue.reply_id("api", "upload", str(row["id"])))
    with bound(ce):  # the upload's log lines carry the file's and the event's ids
        api.emit(ce, "the file is stored, upload it again to resume it")
        log.info("user %s uploaded %s (%s, %s, %d bytes) as %s", user, filename, media_type, category,
                 size, row["id"])
    UPLOADS.labels("accepted").inc()
    UPLOAD_BYTES.inc(size)
    return answer


@router.get("/v1/files", response_model=list[File], responses={
    200: by_id("/0/id"),
    **problems(401, 422, 503)})
def list_files(user: User, c: DB, limit: int = Query(50, ge=1, le=500), offset: Offset = 0):
    rows = c.execute(
        "SELECT * FROM files WHERE user_id = %s ORDER BY created_at DESC LIMIT %s OFFSET %s",
        (user, limit, offset)).fetchall()
    return [File(**r) for r in rows]


@router.get("/v1/files/{file_id}", response_model=File, responses=problems(401, 404, 422, 503))
def get_file(file_id: uuid.UUID, user: User, c: DB) -> File:
    return record(c, user, file_id)


@router.delete("/v1/files/{file_id}", status_code=204, responses=problems(401, 404, 422, 503))
def delete_file(file_id: uuid.UUID, user: User, c: DB, api: Runtime) -> Response:
    # The file's row first, then its stage records, as every stage takes them (shared/lifecycle.py's
    # hold): taken in any other order, a delete and a stage finishing that file deadlock.
    if c.execute("SELECT 1 FROM files WHERE id = %s AND user_id = %s FOR UPDATE", (file_id, user)).fetchone() is None:
        raise HTTPException(404, f"no file {file_id}")
    backup = c.execute("SELECT uri FROM backups WHERE file_id = %s AND user_id = %s", (file_id, user)).fetchone()
    # Suggestions go with the file; reminders the user set or accepted stay, unpinned (ON DELETE SET NULL).
    c.execute("DELETE FROM reminders WHERE file_id = %s AND user_id = %s AND status = 'suggested'", (file_id, user))
    # A group of near-duplicates outlives its root: its next earliest copy becomes the root.
    c.execute("""WITH heir AS (SELECT id FROM files WHERE duplicate_of = %(f)s ORDER BY created_at, id LIMIT 1)
                 UPDATE files SET duplicate_of = nullif((SELECT id FROM heir), id) WHERE duplicate_of = %(f)s""",
              {"f": file_id})
    c.execute("DELETE FROM file_stages WHERE file_id = %s", (file_id,))
    c.execute("DELETE FROM files WHERE id = %s", (file_id,))  # chunks, tags, backups go with it (cascade)
    # Announced before the commit: if the broker cannot take it, nothing is deleted and the caller retries.
    gone = FileDeleted(file_id=file_id, user_id=user, backup_uri=backup and backup["uri"],
                       backup_bucket=account.user_settings(c, user).backup_bucket)
    api.emit(wire.make(gone, "api"), "nothing was deleted; try again")
    c.commit()
    api.blobs.delete_prefix(file_key(user, file_id, ""))  # the upload and everything made of it
    return Response(status_code=204)
