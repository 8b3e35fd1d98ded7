"""Everything out: POST /v1/exports records an export of the caller's memory as it stands; GET
/v1/exports/{id} streams it as one zip (stream-zip: built as it is sent, never whole in memory or on
disk): every file's original under originals/<id>/, its extracted text and locators under texts/<id>.json,
and index.json, which lists the files with their kinds, capture times, tags, clusters, links (e-mail
attachments, near-duplicates) and the reminders and settings, in the format an import reads back."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from api import account
from api.deps import DB, Runtime, User
from api.errors import link, problems
from shared.blobs import BlobNotFound, file_key

router = APIRouter(tags=["account"], responses=problems(401, 503))
FORMAT, VERSION = "mindspace-export", 1
CHUNK = 1024 * 1024


class Export(BaseModel):
    id: uuid.UUID
    status: str  # "ready": the zip is made as it is fetched
    files: int
    created_at: datetime
    download: str  # GET this for the zip


@router.post("/v1/exports", status_code=201, response_model=Export, responses={
    201: {"links": {"GetExport": link("GET", "/v1/exports/{export_id}", "/id")}}})
def create_export(user: User, c: DB) -> Export:
    account.ensure_user(c, user)
    row = c.execute("""INSERT INTO exports (id, user_id, files) SELECT %s, %s, count(*) FROM files WHERE user_id = %s
                       RETURNING *""", (uuid.uuid4(), user, user)).fetchone()
    c.commit()
    return Export(**row, status="ready", download=f"/v1/exports/{row['id']}")


def index(c, user: str, until: datetime) -> dict:
    files = c.execute(
        """SELECT f.id, f.filename, f.media_type, f.category, f.size, f.sha256, f.status, f.status_reason,
                  f.created_at, f.captured_at, f.parent_id, f.duplicate_of, f.source_url, k.label AS cluster,
                  coalesce((SELECT json_agg(json_build_object('kind', t.kind, 'name', t.name, 'label', t.label,
                                                              'score', t.score) ORDER BY t.score DESC)
                            FROM tags t WHERE t.file_id = f.id), '[]') AS tags
           FROM files f LEFT JOIN clusters k ON k.id = f.cluster_id
           WHERE f.user_id = %s AND f.created_at <= %s ORDER BY f.created_at, f.id""", (user, until)).fetchall()
    reminders = c.execute("""SELECT id, title, due_at, timezone, rrule, next_at, status, file_id, passage, locator,
                                    suggestion_key FROM reminders WHERE user_id = %s ORDER BY id""", (user,)).fetchall()
    return {"format": FORMAT, "version": VERSION, "user": user, "exported_at": until,
            "settings": account.user_settings(c, user).model_dump(),
            "files": [f | {"original": f"originals/{f['id']}/{member(f['filename'])}", "text": f"texts/{f['id']}.json"}
                      for f in files], "reminders": reminders}


def member(filename: str) -> str:
    """A file's name as a zip member's last part: a name is a label, and may hold slashes or be `..`."""
    name = filename.replace("/", "_").replace("\\", "_")
    return name if name.strip(".") else "original"


@router.get("/v1/exports/{export_id}", responses={
    200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
          "description": "the zip, streamed"}, **problems(404, 422)})
def download(export_id: uuid.UUID, user: User, c: DB, api: Runtime) -> StreamingResponse:
    from stream_zip import ZIP_64, stream_zip

    job = c.execute("SELECT * FROM exports WHERE id = %s AND user_id = %s", (export_id, user)).fetchone()
    if job is None:
        raise HTTPException(404, f"no export {export_id}")
    content = index(c, user, job["created_at"])
    uris = {f["id"]: c.execute("SELECT blob_uri FROM files WHERE id = %s", (f["id"],)).fetchone()["blob_uri"]
            for f in content["files"]}

    def chunks(blob):
        with blob:
            while chunk := blob.read(CHUNK):
                yield chunk

    def members():
        now = datetime.now(UTC)
        yield "index.json", now, 0o600, ZIP_64, [json.dumps(content, default=str, indent=1).encode()]
        for f in content["files"]:
            try:
                blob = api.blobs.reader(uris[f["id"]])
            except BlobNotFound:  # gone since the index was read: the file was deleted meanwhile
                continue
            yield f["original"], f["created_at"], 0o600, ZIP_64, chunks(blob)
            try:
                text = api.blobs.get(api.blobs.uri(file_key(user, f["id"], "text.json")))
            except BlobNotFound:  # not read (yet), or nothing to read in it
                continue
            yield f["text"], f["created_at"], 0o600, ZIP_64, [text]

    name = f"mindspace-export-{job['created_at']:%Y-%m-%d}.zip"
    return StreamingResponse(stream_zip(members()), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})
