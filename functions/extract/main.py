"""extract: text-like uploads become text: plain text in any common encoding, Markdown, the visible text
of HTML, Word (DOCX, Strict OOXML, and 97-2003 .doc) and OpenDocument text (readers.py). Anything else routed
here is unsupported."""
from __future__ import annotations

from charset_normalizer import from_bytes

from events.catalogue import FileUploaded, TextExtracted
from functions.extract import readers
from shared.stage import Context, Stage, Unsupported, serve
from shared.textdoc import TextDoc

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

    def handle(self, event: FileUploaded, ctx: Context) -> TextExtracted:
        kind = event.media_type
        if kind not in PLAIN and kind not in READERS:
            raise Unsupported(f"no extractor reads {kind} files")
        data = ctx.blobs.get(event.blob_uri)
        if kind in READERS:
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
        return doc.save(ctx.blobs, event, method)


handle = serve(Extract())
