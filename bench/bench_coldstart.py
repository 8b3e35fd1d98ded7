"""Cold start per function (scale to zero makes it matter): for every function in functions/ and the API,
started as the local stack starts it (functions-framework or uvicorn, local/stack.py `serve_argv`), the
time from process start to ready (`/readyz` 200; goal < 1.5 s), to the first event processed with its
model loaded (one representative event; the API: its first search), and the peak resident memory of its
process group while working against the memory limit its Knative Service declares (knative/base).
One embedded PostgreSQL serves every run; functions run one at a time, rounds alternate nothing but
repeat the whole list, and the spread over rounds is reported.

    make bench            # or: .venv/bin/python bench/bench_coldstart.py [--rounds 3] [--only embed api]
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import psycopg
import yaml

from events import wire
from events.catalogue import (
    Category,
    FileEvent,
    FileReady,
    FileUploaded,
    NotificationKind,
    NotificationRequested,
    TextEmbedded,
)
from local.stack import ROOT, Stack, free_port_block, function_names, serve_argv
from shared import db
from shared.blobs import LocalBlobStore, file_key
from shared.config import Settings
from shared.models import EMBED_DIM
from shared.textdoc import TextDoc

import common
from common import emit, group_memory_mib, note, png, speech_wav, spread, text_image

USER = "bench"
# Upstream first: embed stores the chunks that cluster's event refers to.
ORDER = ["extract", "ocr", "transcribe", "embed", "tag", "suggest", "cluster", "notify", "backup", "remind",
         "deadletter"]


class Sink(BaseHTTPRequestHandler):
    """K_SINK for the functions that post their events (remind, deadletter): takes anything."""

    def do_POST(self):  # noqa: N802  (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


def memory_limit_mib(name: str) -> float | None:
    """The memory limit of the function's Knative Service in knative/base/<name>.yaml."""
    path = ROOT / "knative" / "base" / f"{name}.yaml"
    for doc in yaml.safe_load_all(path.read_text()) if path.exists() else ():
        if doc and doc.get("kind") == "Service" and "serving.knative.dev" in doc.get("apiVersion", ""):
            value = doc["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
            units = {"Gi": 1024, "Mi": 1, "G": 1e9 / 2**20, "M": 1e6 / 2**20}
            for unit, factor in units.items():
                if value.endswith(unit):
                    return float(value[: -len(unit)]) * factor
            return float(value) / 2**20
    return None


class Fixtures:
    """A user's files and blobs in the benchmark's database, and one representative event per function."""

    def __init__(self, cfg: Settings, url: str):
        self.blobs = LocalBlobStore(cfg.blob_dir)
        self.url = url
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO users (id) VALUES (%s) ON CONFLICT DO NOTHING", (USER,))
        self.note = self.file("note.txt", note(1).encode(), "text/plain", Category.text)
        self.image = self.file("photo.png", png(text_image(common.lines(2))), "image/png", Category.image)
        self.audio = self.file("memo.wav", speech_wav(common.SPEECH[0]), "audio/x-wav", Category.audio)
        doc = TextDoc()
        doc.add(note(1) + " Dentist next Friday at 3pm.")
        self.text = doc.save(self.blobs, FileEvent(file_id=self.note.file_id, user_id=USER), "text")

    def file(self, filename: str, data: bytes, media_type: str, category: Category) -> FileUploaded:
        file_id = uuid.uuid4()
        uri = self.blobs.put(file_key(USER, file_id, filename), data, media_type)
        sha = hashlib.sha256(data + file_id.bytes).hexdigest()  # one user's same bytes would be one file
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("INSERT INTO files (id, user_id, filename, media_type, category, size, sha256, blob_uri)"
                         " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                         (file_id, USER, filename, media_type, category.value, len(data), sha, uri))
        return FileUploaded(file_id=file_id, user_id=USER, blob_uri=uri, filename=filename, size=len(data),
                            media_type=media_type, category=category, sha256=sha)

    def embedded_files(self, n: int) -> None:
        """`n` files with a chunk each around three directions, as embed would have left them (once)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            if conn.execute("SELECT count(*) FROM chunks WHERE user_id = %s", (USER,)).fetchone()[0] >= n:
                return
            rng = np.random.default_rng(0)
            centres = rng.normal(size=(3, EMBED_DIM))
            for i in range(n):
                f = self.file(f"n{i}.txt", f"note {i}".encode(), "text/plain", Category.text)
                v = centres[i % 3] + rng.normal(scale=0.1, size=EMBED_DIM)
                vector = "[" + ",".join(map(str, v / np.linalg.norm(v))) + "]"
                conn.execute("INSERT INTO chunks (file_id, ord, user_id, text, embedding) VALUES (%s, 0, %s, %s, %s)",
                             (f.file_id, USER, f"topic {i % 3} note {i}", vector))

    def event(self, name: str):
        """A new CloudEvent (a new id: never a duplicate) that makes `name` do its real work."""
        if name == "extract":
            return wire.make(self.note, "bench")
        if name == "ocr":
            return wire.make(self.image, "bench")
        if name == "transcribe":
            return wire.make(self.audio, "bench")
        if name in ("embed", "tag", "suggest"):
            return wire.make(self.text, "bench")
        if name == "cluster":  # with a dozen more embedded files, so that it fits HDBSCAN for real
            self.embedded_files(12)
            return wire.make(TextEmbedded(file_id=self.note.file_id, user_id=USER, chunks=1, model="bench"), "bench")
        if name == "notify":
            return wire.make(NotificationRequested(user_id=USER, key=str(uuid.uuid4()), kind=NotificationKind.reminder,
                                                   title="Call the plumber"), "bench")
        if name == "backup":
            return wire.make(FileReady(file_id=self.note.file_id, user_id=USER, filename="note.txt"), "bench")
        if name == "remind":
            return wire.ping("reminders", '{"task": "reminders"}', {"task": "reminders"})
        if name == "deadletter":
            doomed = self.file("doomed.txt", uuid.uuid4().bytes, "text/plain", Category.text)
            event = wire.make(doomed, "bench")
            event["knativeerrordest"], event["knativeerrorcode"] = "http://127.0.0.1:9/extract", "500"
            return event
        return None


def measure(name: str, argv: list[str], env: dict[str, str], port: int, fixtures: Fixtures) -> dict:
    samples: list[float] = []
    stop = threading.Event()
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)

    def sample():  # the group's resident memory while it works: a Tesseract child comes and goes
        while not stop.wait(0.05):
            samples.append(group_memory_mib(proc.pid)[0])

    threading.Thread(target=sample, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}")
            try:
                if httpx.get(f"{base}/readyz", timeout=30).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > 120:
                raise TimeoutError(f"{name} not ready after 120 s")
            time.sleep(0.02)
        ready = time.perf_counter() - started
        if name == "api":
            r = httpx.get(f"{base}/v1/search", params={"q": "garden meeting"}, timeout=120,
                          headers={"Authorization": f"Bearer dev:{USER}"})
        elif (event := fixtures.event(name)) is not None:
            headers, body = wire.binary(event)
            r = httpx.post(f"{base}/", headers=headers, content=body, timeout=300)
        first = time.perf_counter() - started
        status = r.status_code if name == "api" or event is not None else None
        peak = max(group_memory_mib(proc.pid)[1], max(samples, default=0))
    finally:
        stop.set()
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    return {"ready_s": ready, "first_event_s": first, "status": status, "peak_mib": peak}


def main() -> None:
    p = common.options(__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", nargs="+", help="these functions (api included) only")
    args = p.parse_args()
    names = [n for n in ORDER if n in function_names()] + [n for n in function_names() if n not in ORDER] + ["api"]
    if args.quick:
        args.rounds, args.only = 1, args.only or ["extract", "api"]
    names = [n for n in names if not args.only or n in args.only]

    data = Path(tempfile.mkdtemp(prefix="mindspace-bench-", dir="/tmp"))
    cfg = Settings(data_dir=data)
    stack = Stack(cfg, port=free_port_block(4))
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    stack.start_database()
    db.migrate(stack.database_url)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    try:
        fixtures = Fixtures(cfg, stack.database_url)
        for r in range(args.rounds):
            for name in names:
                port = free_port_block(1)
                env = stack.env(name) | {"LOG_LEVEL": "WARNING", "K_SINK": f"http://127.0.0.1:{sink.server_port}/"}
                m = measure(name, serve_argv(name, "127.0.0.1", port), env, port, fixtures)
                runs[name].append(m)
                print(f"round {r + 1} {name:11s} ready {m['ready_s']:5.2f} s, first event {m['first_event_s']:6.2f} s "
                      f"(HTTP {m['status']}), peak {m['peak_mib']:5.0f} MiB")
    finally:
        sink.shutdown()
        stack.stop()
    results = {"rounds": args.rounds, "functions": {}}
    print(f"== {args.rounds} round(s): min/median/max")
    for name, ms in runs.items():
        limit = memory_limit_mib(name)
        peak = max(m["peak_mib"] for m in ms)
        results["functions"][name] = {
            "ready_s": spread([m["ready_s"] for m in ms]), "first_event_s": spread([m["first_event_s"] for m in ms]),
            "peak_mib": peak, "limit_mib": limit, "statuses": [m["status"] for m in ms]}
        f = results["functions"][name]
        print(f"  {name:11s} ready {f['ready_s']['min']:.2f}/{f['ready_s']['median']:.2f}/{f['ready_s']['max']:.2f} s"
              f"  first event {f['first_event_s']['median']:.2f} s  peak {peak:.0f} MiB of {limit or 0:.0f} MiB")
    emit(args, results)


if __name__ == "__main__":
    main()
