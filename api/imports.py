"""Imports: POST /v1/imports stores an archive (a Google Keep export, a Markdown folder or Obsidian vault as a zip,
an Evernote .enex, a Mindspace export) and asks the imports stage to make it into files; GET /v1/imports/{id}
tells how far it got. The archive is streamed into the blob store, never held in memory."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, UploadFile
from fastapi import File as FilePart
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from api import account
from api.deps import DB, Api, Runtime, Uploader, User
from api.errors import link, problems
from events import wire
from events.catalogue import ImportRequested
from shared import quota
from shared.media import safe_name

router = APIRouter(tags=["files"])
CHUNK = 1024 * 1024
SWEPT = 20  # finished imports whose archives one new import removes


class Import(BaseModel):
    id: uuid.UUID
    filename: str
    size: int
    status: str  # queued, running, done, failed
    format: str | None  # keep, markdown, enex, mindspace: what the archive turned out to be
    total: int  # notes and attachments found
    done: int
    added: int  # files new to the user (a note imported before adds nothing)
    reason: str | None  # why it failed
    created_at: datetime
    finished_at: datetime | None


class ImportForm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: UploadFile


@router.post("/v1/imports", status_code=202, response_model=Import, responses={
    202: {"links": {"GetImport": link("GET", "/v1/imports/{import_id}", "/id")}},
    **problems(401, 413, 422, 429, 503)})
async def create_import(form: Annotated[ImportForm, FilePart()], user: Uploader, api: Runtime,
                        request: Request) -> Import:
    cap = api.cfg.max_import_bytes
    if int(request.headers.get("content-length") or 0) > cap + 64 * 1024:
        raise HTTPException(413, f"the archive is over the limit of {cap} bytes (MAX_IMPORT_BYTES)")
    import_id = uuid.uuid4()
    key = f"users/{user}/imports/{import_id}/archive"
    size = 0
    with api.blobs.writer(key, "application/octet-stream") as out:
        while chunk := await form.file.read(CHUNK):
            size += len(chunk)
            if size > cap:
                break
            await run_in_threadpool(out.write, chunk)
    uri = api.blobs.uri(key)
    if not 0 < size <= cap:
        api.blobs.delete(uri)
        raise HTTPException(413 if size else 422, f"the archive is over the limit of {cap} bytes (MAX_IMPORT_BYTES)"
                            if size else "the archive is empty")
    return await run_in_threadpool(_record, api, user, import_id, safe_name(form.file.filename), size, uri)


def _record(api: Api, user: str, import_id: uuid.UUID, filename: str, size: int, uri: str) -> Import:
    with api.pool.connection() as c:
        try:  # refused at once where even the packed archive could not fit; the stage checks what it unpacks to
            quota.check(c, user, size, api.cfg.quota_bytes, 0)
        except quota.OverQuota as e:
            api.blobs.delete(uri)
            raise HTTPException(e.status, e.reason) from None
        account.ensure_user(c, user)
        row = c.execute("INSERT INTO imports (id, user_id, filename, size) VALUES (%s, %s, %s, %s) RETURNING *",
                        (import_id, user, filename, size)).fetchone()
        c.commit()  # before the event: the stage must find the import it is told of
        try:
            api.emit(wire.make(ImportRequested(import_id=import_id, user_id=user, blob_uri=uri), "api",
                               id=str(import_id)), "the archive was not imported; send it again")
        except HTTPException as e:
            c.execute("UPDATE imports SET status = 'failed', reason = %s, finished_at = now() WHERE id = %s",
                      (e.detail, import_id))
            c.commit()
            api.blobs.delete(uri)
            raise
        finished = c.execute("""SELECT id FROM imports WHERE user_id = %s AND status IN ('done', 'failed')
                                ORDER BY created_at DESC LIMIT %s""", (user, SWEPT)).fetchall()
    for old in finished:  # their archives served their retries; the files are made
        api.blobs.delete_prefix(f"users/{user}/imports/{old['id']}/")
    return Import(**row)


@router.get("/v1/imports/{import_id}", response_model=Import, responses=problems(401, 404, 422))
def get_import(import_id: uuid.UUID, user: User, c: DB) -> Import:
    row = c.execute("SELECT * FROM imports WHERE id = %s AND user_id = %s", (import_id, user)).fetchone()
    if row is None:
        raise HTTPException(404, f"no import {import_id}")
    return Import(**row)


@router.get("/v1/imports", response_model=list[Import], responses=problems(401, 422))
def list_imports(user: User, c: DB) -> list[Import]:
    return [Import(**r) for r in c.execute("SELECT * FROM imports WHERE user_id = %s ORDER BY created_at DESC"
                                           " LIMIT 100", (user,)).fetchall()]
