"""extract: text-like uploads become text: plain text in any common encoding, Markdown, the visible text
of HTML, Word (DOCX, Strict OOXML, and 97-2003 .doc) and OpenDocument text (readers.py), and e-mail (mail.py),
whose attachments become files of their own, each uploaded to the pipeline as the API uploads a file.
Anything else routed here is unsupported."""
from __future__ import annotations

import hashlib
import uuid

from charset_normalizer import from_bytes

from events.catalogue import FileUploaded, TextExtracted
from functions.extract import mail, readers
from shared import dates, quota
from shared.blobs import file_key
from shared.media import sniff
from shared.stage import Context, Stage, Unsupported, serve
from shared.textdoc import TextDoc

EMAIL = "message/rfc822"
# An attachment's id follows from its message's and its place there: a retried event makes the same files.
ATTACHMENT_IDS = uuid.UUID("5d0c2a8e-2f1b-4c55-9a57-0e4a3c8f1d21")
ATTACH = """INSERT INTO files (id, user_id, filename, media_type, category, size, sha256, blob_uri, parent_id,
                               captured_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now())) ON CONFLICT DO NOTHING RETURNING id"""
SAME_BYTES = "SELECT id FROM files WHERE user_id = %s AND sha256 = %s"

PLAIN = {"text/plain", "text/markdown", "application/json", "application/x-ndjson"}
# media type -> (reader, the method the file's record names)
READERS = {readers.HTML: (readers.html_text, "html"), readers.DOCX: (readers.docx_text, "docx"),
           readers.ODT: (readers.odt_text, "odt"), readers.DOC: (readers.doc_text, "doc")}


COMMON = ["utf_8", "ascii", "cp1252", "latin_1"]  # which to believe when short texts fit several


def decode(data: bytes) -> tuple[str, str]:
    matches = list(from_bytes(data))
    if not matches:
        raise Unsupported("the bytes are not text in any encoding we can detect")
    fit = min((m.chaos, -m.coherence) for m in matches)
    tied = [m for m in matches if (m.chaos, -m.coherence) == fit]
    best = min(tied, key=lambda m: COMMON.index(m.encoding) if m.encoding in COMMON else len(COMMON))
    return str(best).replace("\r\n", "\n"), best.encoding


class Extract(Stage):
    name = "extract"
    consumes = (FileUploaded,)

    def handle(self, event: FileUploaded, ctx: Context) -> TextExtracted | list:
        kind = event.media_type
        if kind not in PLAIN and kind not in READERS and kind != EMAIL:
            raise Unsupported(f"no extractor reads {kind} files")
        data = ctx.blobs.get(event.blob_uri)
        uploads = []
        if kind == EMAIL:
            text, attachments, skipped, sent = mail.read(data, ctx.cfg.email_max_attachments)
            ctx.captured_at = dates.iso(sent, "UTC")  # the Date header; its attachments were captured with it
            uploads = [self.attach(a, event, ctx) for a in attachments]
            ctx.detail.update(attachments=len(attachments), attachments_skipped=skipped, sent=sent)
            method = "email"
        elif kind in READERS:
            read, method = READERS[kind]
            text = read(data)
        else:
            text, encoding = decode(data)
            method = "text"
            ctx.detail["encoding"] = encoding
        doc = TextDoc()
        doc.add(text)
        if not doc.segments:
            raise Unsupported("the file holds no text")
        ctx.detail.update(method=method, chars=len(doc.text))
        saved = doc.save(ctx.blobs, event, method)
        uploads = [u for u in uploads if u is not None]  # the attachments new to the user, read next
        return [saved, *uploads] if uploads else saved

    def attach(self, attachment: mail.Attachment, message: FileUploaded, ctx: Context) -> FileUploaded | None:
        """The attachment stored and recorded as a file linked to its message, and its upload event; None where
        the user holds those bytes already (that file stands for it) or a retry stored it before."""
        file_id = uuid.uuid5(ATTACHMENT_IDS, f"{message.file_id}/{attachment.index}")
        sha = hashlib.sha256(attachment.data).hexdigest()
        if ctx.db.execute(SAME_BYTES, (message.user_id, sha)).fetchone():
            return None
        try:
            quota.check(ctx.db, message.user_id, len(attachment.data), ctx.cfg.quota_bytes, ctx.cfg.quota_files)
        except quota.OverQuota as e:  # the message is read; its attachment is not kept, and its record says so
            ctx.detail.setdefault("attachments_over_quota", []).append(f"{attachment.filename}: {e.reason}")
            return None
        media_type, category = sniff(attachment.data, attachment.filename)
        uri = ctx.blobs.put(file_key(message.user_id, file_id, "original"), attachment.data, media_type)
        row = ctx.db.execute(ATTACH, (file_id, message.user_id, attachment.filename, media_type, category,
                                      len(attachment.data), sha, uri, message.file_id,
                                      dates.plausible(ctx.captured_at))).fetchone()
        if row is None:
            return None
        return FileUploaded(file_id=file_id, user_id=message.user_id, blob_uri=uri, filename=attachment.filename,
                            media_type=media_type, category=category, size=len(attachment.data), sha256=sha)


handle = serve(Extract())
