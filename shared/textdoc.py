"""The text a file yields, with its layout: what every extractor writes and the embedder reads.

Stored as one JSON blob beside the upload, {"text": ..., "segments": [{"start", "end", "locator"}]},
where a segment is a page of a PDF ({"page": 3}) or a stretch of a recording ({"start_s", "end_s"}).
The event only points to it (claim check): texts can be far larger than a broker lets an event be.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from events.catalogue import FileEvent, TextExtracted
from shared.blobs import BlobStore, file_key
from shared.errors import Rejected


@dataclass
class TextDoc:
    parts: list[str] = field(default_factory=list)
    segments: list[dict] = field(default_factory=list)
    _length: int = 0

    def add(self, text: str, **locator) -> None:
        text = text.strip()
        if not text:
            return
        if self.parts:
            self.parts.append("\n\n")
            self._length += 2
        self.segments.append({"start": self._length, "end": self._length + len(text), "locator": locator})
        self.parts.append(text)
        self._length += len(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def save(self, blobs: BlobStore, event: FileEvent, method: str) -> TextExtracted:
        """Store the text beside the upload and name it in the `text.extracted` reply."""
        body = json.dumps({"text": self.text, "segments": self.segments}).encode()
        uri = blobs.put(file_key(event.user_id, event.file_id, "text.json"), body, "application/json")
        return TextExtracted(file_id=event.file_id, user_id=event.user_id, text_uri=uri, method=method,
                             chars=self._length)


def passages(blobs: BlobStore, text_uri: str):
    """(text, locator) of every non-empty segment of a stored text."""
    try:
        doc = json.loads(blobs.get(text_uri))
        segments = [(doc["text"][s["start"]:s["end"]], s["locator"]) for s in doc["segments"]]
    except (ValueError, KeyError, TypeError) as e:  # written by no extractor: retrying cannot mend it
        raise Rejected(f"the stored text is not a text document: {type(e).__name__}: {e}") from e
    for part, locator in segments:
        if part.strip():
            yield part, locator
