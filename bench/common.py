"""What every benchmark needs: a stage called in-process on a blob store, best-of timing, peak memory."""
from __future__ import annotations

import hashlib
import importlib
import resource
import tempfile
import time
import uuid
from pathlib import Path

from events.catalogue import Category, FileUploaded
from shared.blobs import LocalBlobStore, file_key
from shared.config import Settings
from shared.stage import Context


class StageHarness:
    """The stage's own handle() on real blobs; only HTTP and the database records are left out."""

    def __init__(self, name: str, **settings):
        settings.setdefault("data_dir", Path(tempfile.mkdtemp(prefix="mindspace-bench-", dir="/tmp")))
        self.cfg = Settings(**settings)
        self.blobs = LocalBlobStore(self.cfg.blob_dir)
        self.stage = importlib.import_module(f"functions.{name}.main").handle.stage
        self.stage.start(self.cfg)

    def upload(self, filename: str, data: bytes, media_type: str, category: Category) -> FileUploaded:
        file_id = uuid.uuid4()
        uri = self.blobs.put(file_key("bench", file_id, filename), data, media_type)
        return FileUploaded(file_id=file_id, user_id="bench", blob_uri=uri, filename=filename, size=len(data),
                            media_type=media_type, category=category, sha256=hashlib.sha256(data).hexdigest())

    def handle(self, event: FileUploaded):
        ctx = Context(self.cfg, self.blobs, None, None)
        out = self.stage.handle(event, ctx)
        return out, ctx.detail


def best_pair(a, b, repeat: int) -> tuple[float, float]:
    """Best-of-`repeat` times of a and b, run alternately, so that drift in the machine's speed
    (other load, frequency) falls on both alike."""
    times_a, times_b = [], []
    for _ in range(repeat):
        times_a.append(best(a, 1))
        times_b.append(best(b, 1))
    return min(times_a), min(times_b)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def peak_mib() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest child (Tesseract runs as one), MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, child
