"""What a stage raises when retrying cannot help: the adapter (shared/stage.py) turns it into the
file's end with a reason a person can read. Here, below the adapter, so that a reader of texts or
blobs (shared/textdoc.py, a stage's own helpers) can raise it without importing the adapter."""
from __future__ import annotations


class Rejected(Exception):
    """A poison event: retrying cannot help. The message is for a person to read."""

    file_status = "failed"


class Unsupported(Rejected):
    """No stage can make text of this file; the file ends as `unsupported`."""

    file_status = "unsupported"
