"""Resumable uploads with the tus 1.0 protocol (core, creation, termination, expiration: what Uppy and the
tus clients for Android and iOS speak): a one-hour voice memo over a train's connection survives a cut.
POST /v1/uploads creates one, HEAD tells how much arrived, PATCH appends from there, DELETE ends it. Each
PATCH streams into a part of its own in the blob store, never whole in memory; the last one joins the
parts into the file's original and makes the file exactly as POST /v1/files does (api/files.py `store`:
sniffing, dedupe, quota, event). Uploads are per user; another's is a 404. Unfinished ones expire
(RESUMABLE_EXPIRE_HOURS) and their parts are removed as new uploads are created."""
from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from api import account, files
from api.deps import Runtime, Uploader, User, log
from shared import quota
from shared.media import SNIFF_BYTES, safe_name, sniff

router = APIRouter(tags=["files"])
TUS = {"Tus-Resumable": "1.0.0"}
EXPIRED_PER_SWEEP = 100


def _tus(request: Request) -> None:
    if request.headers.get("tus-resumable") != "1.0.0":
        raise HTTPException(412, "this server speaks tus 1.0.0: send Tus-Resumable: 1.0.0",
                            headers={"Tus-Version": "1.0.0"})


def _metadata(header: str) -> dict[str, str]:
    """tus's Upload-Metadata: comma-separated "key base64value" pairs; a value that is not base64 is
    left out (the file is then named "upload")."""
    out = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, value = pair.partition(" ")
        try:
            out[key] = base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            continue
    return out


def _heads(row: dict) -> dict:
    heads = TUS | {"Upload-Offset": str(row["received"]), "Upload-Length": str(row["length"]),
                   "Upload-Expires": format_datetime(row["expires_at"].astimezone(UTC), usegmt=True),
                   "Cache-Control": "no-store"}
    return heads | ({"Mindspace-File-Id": str(row["file_id"])} if row["file_id"] else {})


@router.options("/v1/uploads", status_code=204, include_in_schema=False)
def capabilities(api: Runtime) -> Response:
    return Response(status_code=204, headers=TUS | {
        "Tus-Version": "1.0.0", "Tus-Max-Size": str(api.cfg.max_resumable_bytes),
        "Tus-Extension": "creation,termination,expiration"})


class Created(BaseModel):
    id: uuid.UUID
    offset: int  # tus's Upload-Offset: 0
    length: int
    expires_at: datetime


# tus is a protocol of headers, offsets and raw bytes with its own clients and statuses (412 for another
# version): its routes stay out of the OpenAPI document, whose contract tests/test_contract.py holds the
# rest of the API to; tests/test_uploads.py and the tus project's own client hold these to tus.
@router.post("/v1/uploads", status_code=201, include_in_schema=False)
def create(request: Request, user: Uploader, api: Runtime) -> Response:
    """Start a resumable upload of Upload-Length bytes (Upload-Metadata: filename, base64); its URL is
    the Location header."""
    _tus(request)
    try:
        length = int(request.headers["upload-length"])
    except (KeyError, ValueError):
        raise HTTPException(400, "Upload-Length (the whole size, in bytes) is required; deferred lengths are not"
                                 " supported") from None
    if not 0 < length <= api.cfg.max_resumable_bytes:
        raise HTTPException(413 if length > 0 else 422, f"Upload-Length {length}: between 1 and "
                            f"{api.cfg.max_resumable_bytes} bytes (MAX_RESUMABLE_BYTES)")
    name = safe_name(_metadata(request.headers.get("upload-metadata", "")).get("filename") or "upload")
    upload_id = uuid.uuid4()
    with api.pool.connection() as c:
        try:  # refused before a byte is sent, where it could not fit
            quota.check(c, user, length, api.cfg.quota_bytes, api.cfg.quota_files)
        except quota.OverQuota as e:
            raise HTTPException(e.status, e.reason) from None
        account.ensure_user(c, user)
        row = c.execute("""INSERT INTO uploads (id, user_id, filename, length, expires_at)
                           VALUES (%s, %s, %s, %s, %s) RETURNING *""",
                        (upload_id, user, name, length,
                         datetime.now(UTC) + timedelta(hours=api.cfg.resumable_expire_hours))).fetchone()
        expired = c.execute("""DELETE FROM uploads WHERE id IN (SELECT id FROM uploads WHERE expires_at < now()
                               LIMIT %s) RETURNING id, user_id""", (EXPIRED_PER_SWEEP,)).fetchall()
        c.commit()
    for gone in expired:
        api.blobs.delete_prefix(f"users/{gone['user_id']}/uploads/{gone['id']}/")
    body = Created(id=upload_id, offset=0, length=length, expires_at=row["expires_at"]).model_dump_json()
    return Response(body, status_code=201, media_type="application/json",
                    headers=_heads(row) | {"Location": f"/v1/uploads/{upload_id}"})


def _own(c, user: str, upload_id: uuid.UUID) -> dict:
    row = c.execute("SELECT * FROM uploads WHERE id = %s AND user_id = %s AND expires_at > now()",
                    (upload_id, user)).fetchone()
    if row is None:
        raise HTTPException(404, f"no upload {upload_id}", headers=TUS)
    return row


@router.head("/v1/uploads/{upload_id}", include_in_schema=False)
def offset(upload_id: uuid.UUID, user: User, api: Runtime) -> Response:
    with api.pool.connection() as c:
        return Response(status_code=200, headers=_heads(_own(c, user, upload_id)))


@router.patch("/v1/uploads/{upload_id}", status_code=204, include_in_schema=False)
async def append(upload_id: uuid.UUID, request: Request, user: User, api: Runtime) -> Response:
    """Bytes from Upload-Offset on (Content-Type: application/offset+octet-stream). A cut connection keeps
    what arrived: HEAD tells from where to go on."""
    _tus(request)
    if request.headers.get("content-type") != "application/offset+octet-stream":
        raise HTTPException(415, "PATCH takes Content-Type: application/offset+octet-stream", headers=TUS)
    row = await run_in_threadpool(_read, api, user, upload_id)
    if request.headers.get("upload-offset") != str(row["received"]):
        raise HTTPException(409, f"Upload-Offset {request.headers.get('upload-offset')}: {row['received']} bytes "
                                 "arrived so far; go on from there (HEAD tells)", headers=_heads(row))
    room, got = row["length"] - row["received"], 0
    key = f"users/{user}/uploads/{upload_id}/{row['received']:020d}"
    with api.blobs.writer(key) as out:
        try:
            async for chunk in request.stream():
                if got + len(chunk) > room:
                    raise HTTPException(413, f"more than Upload-Length ({row['length']} bytes)", headers=_heads(row))
                if chunk:
                    await run_in_threadpool(out.write, chunk)
                    got += len(chunk)
        except ClientDisconnect:  # a cut connection: what arrived is kept
            log.info("upload %s: the connection was cut after %d bytes", upload_id, got)
    row = await run_in_threadpool(_appended, api, user, upload_id, row["received"], got, api.blobs.uri(key))
    if row["received"] == row["length"] and row["file_id"] is None:
        row = await run_in_threadpool(_finish, api, user, row)
    return Response(status_code=204, headers=_heads(row))


def _read(api, user: str, upload_id: uuid.UUID) -> dict:
    with api.pool.connection() as c:
        return _own(c, user, upload_id)


def _appended(api, user: str, upload_id: uuid.UUID, start: int, got: int, uri: str) -> dict:
    """Count the part in, unless another PATCH moved the offset meanwhile (then this one is the conflict)."""
    with api.pool.connection() as c:
        row = c.execute("""UPDATE uploads SET received = received + %s, parts = parts || %s
                           WHERE id = %s AND user_id = %s AND received = %s RETURNING *""",
                        (got, [uri] if got else [], upload_id, user, start)).fetchone()
    if row is None:
        api.blobs.delete(uri)
        raise HTTPException(409, "another PATCH of this upload arrived meanwhile; HEAD tells where it stands",
                            headers=TUS)
    return row


def _finish(api, user: str, row: dict) -> dict:
    """The parts joined into the file's original, read twice (its hash and first bytes, then copied), never
    whole in memory; then the file is made as an upload makes it."""
    sha, head = hashlib.sha256(), b""
    for uri in row["parts"]:
        with api.blobs.reader(uri) as part:
            while chunk := part.read(1024 * 1024):
                head += chunk[:SNIFF_BYTES - len(head)] if len(head) < SNIFF_BYTES else b""
                sha.update(chunk)
    media_type, category = sniff(head, row["filename"])

    def put(key: str) -> str:
        with api.blobs.writer(key, media_type) as out:
            for uri in row["parts"]:
                with api.blobs.reader(uri) as part:
                    while chunk := part.read(1024 * 1024):
                        out.write(chunk)
        return api.blobs.uri(key)

    made = files.store(api, user, row["filename"], sha.hexdigest(), row["length"], media_type, category,
                       Response(), put)
    with api.pool.connection() as c:
        row = c.execute("UPDATE uploads SET file_id = %s, parts = '{}' WHERE id = %s RETURNING *",
                        (made.id, row["id"])).fetchone()
    api.blobs.delete_prefix(f"users/{user}/uploads/{row['id']}/")
    return row


@router.delete("/v1/uploads/{upload_id}", status_code=204, include_in_schema=False)
def terminate(upload_id: uuid.UUID, request: Request, user: User, api: Runtime) -> Response:
    _tus(request)
    with api.pool.connection() as c:
        _own(c, user, upload_id)
        c.execute("DELETE FROM uploads WHERE id = %s AND user_id = %s", (upload_id, user))
        c.commit()
    api.blobs.delete_prefix(f"users/{user}/uploads/{upload_id}/")
    return Response(status_code=204, headers=TUS)
