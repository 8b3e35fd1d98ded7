"""imports: an archive the API stored (POST /v1/imports) becomes the user's files, each as an upload makes one.
Its notes keep their creation time (captured_at) and labels (tags of kind `label`, which the tag stage keeps);
attachments become files of their own, linked to their note; a Mindspace export brings its reminders back too.
All or nothing: the archive is checked whole (formats.py), the quota is checked for all of it, and every row
commits in one transaction; a refused archive leaves nothing behind. The same archive twice adds nothing: a
file's id follows from its user and its bytes, and bytes the user holds already are skipped."""
from __future__ import annotations

import hashlib
import uuid

from psycopg.types.json import Jsonb

from events.catalogue import Category, FileUploaded, ImportRequested
from functions.imports import formats
from shared import dates, quota
from shared.blobs import BlobNotFound, file_key
from shared.errors import Rejected
from shared.media import sniff
from shared.stage import Context, Stage, serve

IMPORTED_IDS = uuid.UUID("0b1e6f4c-5a57-4f0e-9a38-7f1d2c3e4b5a")
INSERT = """INSERT INTO files (id, user_id, filename, media_type, category, size, sha256, blob_uri, parent_id,
                               captured_at, source_url)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s) ON CONFLICT DO NOTHING RETURNING id"""
LABEL = """INSERT INTO tags (file_id, user_id, kind, name, label, score) VALUES (%s, %s, 'label', %s, %s, 1)
           ON CONFLICT DO NOTHING"""
REMINDER = """INSERT INTO reminders (user_id, title, due_at, timezone, rrule, next_at, status, file_id, passage,
                                     locator, suggestion_key)
              SELECT %(user)s, %(title)s, %(due_at)s, %(timezone)s, %(rrule)s, %(next_at)s, %(status)s, %(file_id)s,
                     %(passage)s, %(locator)s, %(suggestion_key)s
              WHERE NOT EXISTS (SELECT 1 FROM reminders WHERE user_id = %(user)s AND title = %(title)s
                                AND due_at = %(due_at)s AND file_id IS NOT DISTINCT FROM %(file_id)s)"""


class Imports(Stage):
    name = "imports"
    consumes = (ImportRequested,)

    def handle(self, event: ImportRequested, ctx: Context) -> list[FileUploaded]:
        if not ctx.blobs.key_of(event.blob_uri).startswith(f"users/{event.user_id}/imports/{event.import_id}/"):
            raise Rejected("the archive named is not this import's")
        job = ctx.read("SELECT status FROM imports WHERE id = %s AND user_id = %s", (event.import_id, event.user_id))
        if job is None or job["status"] in ("done", "failed"):  # gone with its account, or ended before
            return []
        stored: list[str] = []  # what this attempt put in the blob store: removed if the archive is refused
        try:
            with ctx.blobs.reader(event.blob_uri) as stream:
                archive = self.open(stream, ctx.cfg)
                uploads = self.store(archive, event, ctx, stored)
        except (Rejected, BlobNotFound) as e:
            for prefix in stored:
                ctx.blobs.delete_prefix(prefix)
            reason = str(e) if isinstance(e, Rejected) else f"the archive is gone: {e}"
            ctx.side("UPDATE imports SET status = 'failed', reason = %s, finished_at = now() WHERE id = %s",
                     (reason, event.import_id))
            raise Rejected(reason) from None
        return uploads  # the archive stays until the user's next import sweeps it (api/imports.py): a retry reads it

    @staticmethod
    def open(stream, cfg) -> formats.Archive:
        head = stream.read(512)
        stream.seek(0)
        if head.startswith(b"PK"):
            return formats.open_zip(stream, cfg)
        if b"<en-export" in head or head.lstrip().startswith(b"<?xml"):
            return formats.enex(stream, cfg)
        raise Rejected("not an archive this reads: a zip (Google Keep, Markdown or Obsidian, a Mindspace export) "
                       "or an Evernote .enex")

    def store(self, archive: formats.Archive, event: ImportRequested, ctx: Context, stored: list) -> list:
        user, db = event.user_id, ctx.db
        entries = list(formats.walk(archive.items))
        ctx.side("UPDATE imports SET status = 'running', format = %s, total = %s WHERE id = %s",
                 (archive.format, len(entries), event.import_id))
        # First every member is read once for its digest (a damaged one refuses the archive before anything is
        # stored), then the quota is checked for what is new, then the new files are stored.
        digests = {}
        for item, _ in entries:
            data = item.read()
            if data:
                digests[id(item)] = (hashlib.sha256(item.source_url.encode() if item.source_url else data).hexdigest(),
                                     len(data))
        held = {r["sha256"]: r["id"] for r in db.execute(
            "SELECT sha256, id FROM files WHERE user_id = %s AND sha256 = ANY(%s)",
            (user, [d[0] for d in digests.values()])).fetchall()}
        new = {sha: size for sha, size in digests.values() if sha not in held}
        try:
            quota.check(db, user, sum(new.values()), ctx.cfg.quota_bytes, ctx.cfg.quota_files, files=len(new))
        except quota.OverQuota as e:
            raise Rejected(f"the import does not fit: {e.reason}") from None
        ids, uploads, step = dict(held), [], max(1, len(entries) // 50)
        for n, (item, note) in enumerate(entries, 1):
            if id(item) not in digests:
                continue
            sha, size = digests[id(item)]
            if sha not in ids:
                file_id = uuid.uuid5(IMPORTED_IDS, f"{user}/{sha}")
                data = item.read()
                media_type, category = ((item.media_type, Category.link) if item.source_url
                                        else sniff(data, item.filename))
                stored.append(file_key(user, file_id, ""))
                uri = ctx.blobs.put(file_key(user, file_id, "original"), data, media_type)
                db.execute(INSERT, (file_id, user, item.filename, media_type, category, size, sha, uri,
                                    note and ids.get(digests.get(id(note), ("",))[0]),
                                    dates.plausible(item.captured_at), item.source_url))
                ids[sha] = file_id
                uploads.append(FileUploaded(file_id=file_id, user_id=user, blob_uri=uri, filename=item.filename,
                                            media_type=media_type, category=category, size=size, sha256=sha))
            for label in dict.fromkeys(item.labels):
                db.execute(LABEL, (ids[sha], user, label.strip().lower(), label.strip()))
            if n % step == 0:
                ctx.side("UPDATE imports SET done = %s WHERE id = %s", (n, event.import_id))
        olds = {item.old_id: ids[digests[id(item)][0]] for item, _ in entries if item.old_id and id(item) in digests}
        for r in archive.reminders:
            db.execute(REMINDER, {**{k: r.get(k) for k in ("title", "due_at", "timezone", "rrule", "next_at", "status",
                                                          "passage", "suggestion_key")},
                                  "user": user, "file_id": olds.get(str(r.get("file_id"))),
                                  "locator": Jsonb(r["locator"]) if r.get("locator") is not None else None})
        db.execute("""UPDATE imports SET status = 'done', done = total, added = %s, finished_at = now()
                      WHERE id = %s""", (len(uploads), event.import_id))
        ctx.detail.update(format=archive.format, notes=len(archive.items), added=len(uploads))
        return uploads


handle = serve(Imports())
