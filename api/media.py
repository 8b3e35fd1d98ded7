"""What an upload really is, sniffed from its bytes (libmagic), never trusted from its name."""
from __future__ import annotations

from pathlib import PurePath

import magic

from events.catalogue import Category

SNIFF_BYTES = 64 * 1024
_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def sniff(head: bytes, filename: str) -> tuple[str, Category]:
    mime = magic.from_buffer(head[:SNIFF_BYTES], mime=True)
    if mime.startswith("text/") or mime in ("application/json", "application/x-ndjson"):
        if mime == "text/html":
            return mime, Category.text
        # Markdown is plain text to libmagic; only then does the name refine it.
        if PurePath(filename).suffix.lower() in (".md", ".markdown"):
            return "text/markdown", Category.text
        return "text/plain", Category.text
    if mime == _DOCX:
        return mime, Category.text
    if mime == "application/pdf":
        return mime, Category.pdf
    major = mime.split("/", 1)[0]
    if major in ("image", "audio", "video"):
        return mime, Category(major)
    return mime, Category.other
