"""extract: text-like uploads (plain text in any common encoding, Markdown) become text as they are."""
from __future__ import annotations

import json

from charset_normalizer import from_bytes

from events.catalogue import Category, FileUploaded, TextExtracted
from shared.blobs import file_key
from shared.stage import Context, Stage, Unsupported, serve

TEXT_TYPES = {"text/plain", "text/markdown", "text/x-markdown"}


class Extract(Stage):
    name = "extract"
    consumes = (FileUploaded,)

    def handle(self, event: FileUploaded, ctx: Context) -> TextExtracted:
        if event.category != Category.text or event.media_type not in TEXT_TYPES:
            raise Unsupported(f"no extractor reads {event.media_type} ({event.category}) files yet")
        best = from_bytes(ctx.blobs.get(event.blob_uri)).best()
        if best is None:
            raise Unsupported("the bytes are not text in any encoding we can detect")
        text = str(best).replace("\r\n", "\n").strip()
        if not text:
            raise Unsupported("the file holds no text")
        doc = {"text": text, "segments": [{"start": 0, "end": len(text), "locator": {}}]}
        uri = ctx.blobs.put(file_key(event.user_id, event.file_id, "text.json"),
                            json.dumps(doc).encode(), "application/json")
        ctx.detail.update(method="text", encoding=best.encoding, chars=len(text))
        return TextExtracted(file_id=event.file_id, user_id=event.user_id, text_uri=uri,
                             method="text", chars=len(text))


handle = serve(Extract())
