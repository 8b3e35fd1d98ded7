"""extract: text-like uploads become text: plain text in any common encoding, Markdown, the visible
text of HTML, and the paragraphs and tables of DOCX. Anything else routed here is unsupported."""
from __future__ import annotations

import io
import zipfile

from bs4 import BeautifulSoup
from charset_normalizer import from_bytes

from events.catalogue import FileUploaded, TextExtracted
from shared.stage import Context, Rejected, Stage, Unsupported, serve
from shared.textdoc import TextDoc

PLAIN = {"text/plain", "text/markdown", "application/json", "application/x-ndjson"}
HTML = "text/html"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
INVISIBLE = ["script", "style", "noscript", "template", "head", "svg"]


COMMON = ["utf_8", "ascii", "cp1252", "latin_1"]  # which to believe when short texts fit several


def decode(data: bytes) -> tuple[str, str]:
    matches = list(from_bytes(data))
    if not matches:
        raise Unsupported("the bytes are not text in any encoding we can detect")
    fit = min((m.chaos, -m.coherence) for m in matches)
    tied = [m for m in matches if (m.chaos, -m.coherence) == fit]
    best = min(tied, key=lambda m: COMMON.index(m.encoding) if m.encoding in COMMON else len(COMMON))
    return str(best).replace("\r\n", "\n"), best.encoding


def html_text(data: bytes) -> str:
    soup = BeautifulSoup(data, "html.parser")  # it reads the charset from <meta> itself
    for tag in soup(INVISIBLE):
        tag.decompose()
    return soup.get_text("\n", strip=True)


def docx_text(data: bytes) -> str:
    import docx  # python-docx: imported on first use, it is the rare upload

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise Rejected(f"not a readable DOCX file: {e}") from None
    cells = [c.text for t in document.tables for row in t.rows for c in row.cells]
    return "\n".join([p.text for p in document.paragraphs] + cells)


class Extract(Stage):
    name = "extract"
    consumes = (FileUploaded,)

    def handle(self, event: FileUploaded, ctx: Context) -> TextExtracted:
        kind = event.media_type
        if kind not in PLAIN | {HTML, DOCX}:
            raise Unsupported(f"no extractor reads {kind} files")
        data = ctx.blobs.get(event.blob_uri)
        if kind == HTML:
            text, method = html_text(data), "html"
        elif kind == DOCX:
            text, method = docx_text(data), "docx"
        else:
            text, encoding = decode(data)
            method = "text"
            ctx.detail["encoding"] = encoding
        doc = TextDoc()
        doc.add(text)
        if not doc.segments:
            raise Unsupported("the file holds no text")
        ctx.detail.update(method=method, chars=len(doc.text))
        return doc.save(ctx.blobs, event, method)


handle = serve(Extract())
