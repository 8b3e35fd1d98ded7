"""backup: every ready file's original is copied to the Google Cloud Storage bucket its owner named
(`backup_bucket` in their settings), with the function's own service account: a resumable upload for
large files, the checksum checked against the stored bytes, metadata naming the file and its owner.
Deleting the file deletes the copy. A bucket it cannot write to ends the backup as failed, with the
reason and the role to grant, rather than in the dead-letter list: retrying cannot fix it. A bucket
must name its user in OWNER_OBJECT first (one service account writes every user's backups)."""
from __future__ import annotations

import base64
import hashlib
import io
import re
from urllib.parse import urlparse

from events.catalogue import FileDeleted, FileReady
from shared.blobs import gcs_client
from shared.stage import Context, Rejected, Stage, serve

ROLE = "roles/storage.objectUser"  # create, read and delete objects: what the README asks users to grant
OWNER_OBJECT = "mindspace-owner.txt"  # the user ids, one a line, whose files may be backed up to the bucket


def object_name(user_id: str, file_id, filename: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("._")[:120] or "file"
    return f"mindspace/{user_id}/{file_id}/{safe}"


class Backup(Stage):
    name = "backup"
    consumes = (FileReady, FileDeleted)

    def start(self, cfg) -> None:
        self.resumable_above = cfg.backup_resumable_above
        self._client = None

    def client(self):
        if self._client is None:
            self._client = gcs_client()
        return self._client

    def handle(self, event, ctx: Context) -> None:
        if isinstance(event, FileDeleted):
            buckets = {urlparse(event.backup_uri).netloc if event.backup_uri else None, event.backup_bucket} - {None}
            ctx.detail["deleted"] = sum(self.delete(b, event.user_id, event.file_id) for b in buckets)
            return None
        row = ctx.db.execute("SELECT backup_bucket FROM user_settings WHERE user_id = %s", (event.user_id,)).fetchone()
        bucket = row and row["backup_bucket"]
        if not bucket:
            ctx.detail["skipped"] = "no backup bucket set"
            return None
        name = object_name(event.user_id, event.file_id, ctx.file["filename"])
        uri = f"gs://{bucket}/{name}"
        if ctx.db.execute("SELECT 1 FROM backups WHERE file_id = %s AND status = 'done' AND uri = %s",
                          (event.file_id, uri)).fetchone():
            ctx.detail["skipped"] = "already backed up"
            return None
        data = ctx.blobs.get(ctx.file["blob_uri"])
        status, md5, reason = "failed", None, None
        if hashlib.sha256(data).hexdigest() != ctx.file["sha256"]:
            reason = "the stored bytes no longer match the upload's SHA-256; not backing them up"
        else:
            reason = self.refusal(bucket, event.user_id)
        if reason is None:
            md5, status = self.upload(bucket, name, data, ctx.file, event), "done"
        # Deleted while the copy was made? Its FileDeleted may have come first: take the copy back.
        if not ctx.db.execute("SELECT 1 FROM files WHERE id = %s FOR SHARE", (event.file_id,)).fetchone():
            self.delete(bucket, event.user_id, event.file_id)
            ctx.detail["skipped"] = "deleted while it was copied"
            return None
        ctx.db.execute(
            """INSERT INTO backups (file_id, user_id, status, uri, reason, md5) VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (file_id) DO UPDATE SET status = excluded.status, uri = excluded.uri,
                   reason = excluded.reason, md5 = excluded.md5, updated_at = now()""",
            (event.file_id, event.user_id, status, uri if status == "done" else None, reason, md5))
        ctx.detail.update(status=status, uri=uri, reason=reason)
        return None

    def refusal(self, bucket: str, user_id: str) -> str | None:
        """Why this user's files may not go to this bucket, or None. Every user's backups are written by
        one service account, so a bucket must name the user in its OWNER_OBJECT: otherwise anyone could
        have their files written into a bucket someone else granted that account."""
        from google.api_core import exceptions as gcs

        try:  # ValueError: the client refuses a name no bucket can have ("Not A Bucket!") before asking GCS
            owners = self.client().bucket(bucket).blob(OWNER_OBJECT).download_as_text().split()
        except (gcs.Forbidden, gcs.NotFound, gcs.Unauthorized, gcs.BadRequest, ValueError) as e:
            return (f"cannot use bucket {bucket!r} ({type(e).__name__}): it must exist, grant the backup service "
                    f"account {ROLE}, and hold an object {OWNER_OBJECT} that names your user id {user_id!r}")
        if user_id not in owners:
            return f"{OWNER_OBJECT} in bucket {bucket!r} does not name your user id {user_id!r}"
        return None

    def delete(self, bucket: str, user_id: str, file_id) -> int:
        """Delete every copy of a file in a bucket (by its prefix: whatever name it was copied under)."""
        from google.api_core import exceptions as gcs

        try:
            blobs = list(self.client().list_blobs(bucket, prefix=f"mindspace/{user_id}/{file_id}/"))
            for blob in blobs:
                blob.delete()
            return len(blobs)
        except (gcs.NotFound, gcs.BadRequest, ValueError):
            return 0  # the bucket or the copy is gone already, or no bucket can have that name
        except gcs.Forbidden as e:
            raise Rejected(f"cannot delete the backup of {file_id} in {bucket!r}: grant {ROLE}: {e}") from None

    def upload(self, bucket: str, name: str, data: bytes, file: dict, event: FileReady) -> str:
        """Upload with the client's checksum check, then compare the stored object's MD5 with ours."""
        blob = self.client().bucket(bucket).blob(name)
        blob.metadata = {"mindspace-file-id": str(event.file_id), "mindspace-user-id": event.user_id,
                         "mindspace-sha256": file["sha256"], "mindspace-filename": file["filename"][:500]}
        if len(data) > self.resumable_above:  # without a size the client uploads in resumable chunks
            blob.chunk_size = 8 * 1024 * 1024
            blob.upload_from_file(io.BytesIO(data), content_type=file["media_type"], checksum="crc32c")
        else:
            blob.upload_from_string(data, content_type=file["media_type"], checksum="md5")
        blob.reload()
        ours = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()  # GCS's checksum
        if blob.md5_hash and blob.md5_hash != ours:
            raise RuntimeError(f"the stored copy's MD5 {blob.md5_hash} is not the file's {ours}")
        return ours


handle = serve(Backup())
