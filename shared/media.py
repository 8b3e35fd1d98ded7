"""What an upload really is, sniffed from its bytes (libmagic), never trusted from its name; and its name
made safe to show. Names are labels only: blobs are keyed by ids, never by a name. The API sniffs uploads,
the extract stage an e-mail's attachments."""
from __future__ import annotations

import email.policy
import re
import unicodedata
from email.parser import BytesHeaderParser
from pathlib import PurePath

import magic

from events.catalogue import Category

SNIFF_BYTES = 64 * 1024
# DOCX (Strict OOXML too), OpenDocument text, Word 97-2003 and e-mail: read by the extract stage.
WORD_PROCESSING = {"application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                   "application/vnd.oasis.opendocument.text", "application/msword", "message/rfc822"}
MAX_NAME = 255  # characters: what file systems allow a name, and plenty for a label


def safe_name(name: str | None) -> str:
    """The name as given, minus what can deceive a reader or a terminal: control characters (NUL, escape
    sequences, line breaks) and every Unicode format character (Cf: the bidi overrides such as U+202E that
    show `invoice\u202etxt.exe` as `invoiceexe.txt`, zero-width characters), capped at MAX_NAME characters
    with its extension kept. Slashes stay: the name is a label, never a path."""
    cleaned = "".join(" " if c in "\t\n\r" else c for c in unicodedata.normalize("NFC", name or "")
                      if unicodedata.category(c) not in ("Cc", "Cf") or c in "\t\n\r")
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > MAX_NAME:
        suffix = PurePath(cleaned).suffix if len(PurePath(cleaned).suffix) <= 16 else ""
        cleaned = cleaned[: MAX_NAME - len(suffix) - 1] + "…" + suffix
    return cleaned or "upload"


def is_message(head: bytes) -> bool:
    """An e-mail that libmagic calls text: it knows one by a first Received:, Return-Path: or From line, which
    a message a mail client saves (Subject: first, say) need not have. Its header block, parsed, names a
    sender and a date or a message id."""
    if not re.match(rb"[A-Za-z][A-Za-z0-9-]*:", head):
        return False
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(head[:SNIFF_BYTES])
    return "From" in headers and ("Date" in headers or "Message-ID" in headers)


def sniff(head: bytes, filename: str) -> tuple[str, Category]:
    mime = magic.from_buffer(head[:SNIFF_BYTES], mime=True)
    if mime.startswith("text/") or mime in ("application/json", "application/x-ndjson"):
        if mime == "text/html":
            return mime, Category.text
        # Markdown is plain text to libmagic; only then does the name refine it.
        if PurePath(filename).suffix.lower() in (".md", ".markdown"):
            return "text/markdown", Category.text
        if is_message(head):
            return "message/rfc822", Category.text
        return "text/plain", Category.text
    if mime in WORD_PROCESSING:
        return mime, Category.text
    # Mail gateways and scanners may write bytes before the header; PDF readers look for it in the first kilobyte.
    if mime == "application/pdf" or (mime == "application/octet-stream" and b"%PDF-" in head[:1024]):
        return "application/pdf", Category.pdf
    major = mime.split("/", 1)[0]
    if major in ("image", "audio", "video"):
        return mime, Category(major)
    return mime, Category.other
