"""What every benchmark needs: a stage called in-process on a blob store, best-of timing, peak memory."""
from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import json
import os
import random
import resource
import statistics
import subprocess
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


# --- what the driver (bench/run.py) needs of every script: --json/--quick, the machine, spreads -------------

def options(doc: str | None = None) -> argparse.ArgumentParser:
    """A bench script's parser with the options every script shares: --json PATH for the driver, --quick."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, help="write the results here as JSON (bench/run.py reads them)")
    p.add_argument("--quick", action="store_true", help="a smoke run: small inputs, one round")
    return p


def emit(args, results: dict) -> None:
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


def spread(samples: list[float]) -> dict[str, float]:
    """min / median / max of a few rounds: the figures are reported with their spread, never one best."""
    return {"min": min(samples), "median": statistics.median(samples), "max": max(samples), "n": len(samples)}


def machine() -> dict[str, str | int]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    mem = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]) // 1024
    return {"cpu": cpu, "cores": os.cpu_count() or 0, "memory_mib": mem}


def group_memory_mib(pgid: int) -> tuple[float, float]:
    """(now, peak) resident memory of a process group, MiB: the sums of VmRSS and VmHWM of its processes
    (/proc). The sum of peaks is an upper bound when they did not coincide."""
    rss = hwm = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # the 5th field of /proc/PID/stat, after the name
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm += int(line.split()[1])
    return rss / 1024, hwm / 1024


# --- inputs the benchmarks make themselves (as tests/media.py and tests/load make theirs) -----------------

NOTE_WORDS = ("garden harbour invoice lantern meeting orchard budget recipe bicycle meadow ledger violin "
              "glacier pantry workshop compass festival quarry ribbon tram canal sketch kettle ferry market "
              "telescope vineyard archive lecture pottery saddle beacon ceramic thunder willow granite blanket "
              "museum notebook parcel shelter timber chimney marble canyon orchestra").split()
FILLER = "the a of to and in for with on at from by about after before under over".split()
SPEECH = [
    "The quarterly budget meeting moves to Thursday afternoon in the blue room.",
    "Remember to water the orchids on the balcony every Sunday morning.",
    "Anna will send the revised invoice to the printing company before Friday.",
    "We agreed to cut travel expenses by ten percent for the next quarter.",
]


def note(i: int) -> str:
    """≈80 words in sentences, distinct per i (as tests/test_load.py writes its notes)."""
    rng = random.Random(i)
    sentences = [" ".join(rng.choice(NOTE_WORDS if k % 2 == 0 else FILLER) for k in range(10)).capitalize() + "."
                 for _ in range(8)]
    return f"Note {i}. " + " ".join(sentences)


def text_image(lines: list[str], width: int = 1400):
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=44)  # Pillow's bundled FreeType font: no system fonts needed
    image = Image.new("L", (width, 100 + 90 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((50, 50 + 90 * i), line, font=font, fill=0)
    return image


def png(image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def pdf(pages: list) -> bytes:
    """One page per item: a string becomes a text layer, an image a scanned page without one."""
    from fpdf import FPDF

    doc = FPDF()
    doc.set_font("helvetica", size=14)
    for page in pages:
        doc.add_page()
        if isinstance(page, str):
            doc.multi_cell(0, 8, page)
        else:
            doc.image(page, x=10, y=10, w=190)
    return bytes(doc.output())


def speech_wav(sentence: str) -> bytes:
    return subprocess.run(["espeak-ng", "--stdout", "-s", "150", sentence], check=True, capture_output=True).stdout


def lines(i: int, n: int = 8) -> list[str]:
    words = note(i).split()
    return [" ".join(words[k:k + 6]) for k in range(0, 6 * n, 6)]
