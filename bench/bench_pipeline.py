"""End to end against the direct path, side by side in one run: the same generated inputs go through the
local stack (upload through the API by concurrent clients, until every file is ready) and through the
same models called directly in one process, batched as a careful script would (Tesseract, pypdfium2's
text layers, faster-whisper, then MiniLM 32 at a time in the embed stage's runtime and spaCy `nlp.pipe` +
TextRank over all texts), which then writes the same rows (files, chunks with their vectors, tags) to
the same PostgreSQL in batches (COPY, one transaction). Two corpora: notes of ≈80 words, and a mixed one
(notes, images of text, a scanned PDF, a text PDF, short recordings). Rounds alternate which path goes
first; files per minute of both, their ratio (pipeline/direct, goal >= 0.9) per round, CPU seconds per
file of both (every stack process and PostgreSQL against the direct process and PostgreSQL; goal: the
pipeline within 2x), CPU per process and per broker delivery, and where the pipeline's time went per
stage. Then CPU per note against the size of the batch that arrives together (notes uploaded in bursts
of 1, 4, 16, 32; the direct path given the same batches).

The direct path runs no suggest or cluster step and announces nothing: it is the least the machine must do,
so the ratios are the price of the pipeline (HTTP, broker, per-event records, one event at a time).

    make bench            # or: .venv/bin/python bench/bench_pipeline.py [--rounds 3] [--quick]
"""
from __future__ import annotations

import io
import os
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import psycopg
import pypdfium2 as pdfium
import pytesseract
import semchunk
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from psycopg.rows import dict_row

from local.stack import Stack, free_port_block
from shared.config import Settings
from shared.models import SpacyPipeline, Whisper, embedder

import common
from common import SPEECH, emit, lines, note, pdf, png, speech_wav, spread, text_image

EXTRACTORS = ("extract", "ocr", "transcribe")
# What each stage's event comes after: an upstream stage's finish; file.ready's consumers, the file's ready_at.
AFTER = {"embed": EXTRACTORS, "tag": EXTRACTORS, "suggest": EXTRACTORS, "cluster": ("embed",),
         "notify": ("ready",), "backup": ("ready",)}
MODEL_STEP = {"extract": "read", "ocr": "ocr", "transcribe": "transcribe", "embed": "embed", "tag": "tag"}


def corpora(quick: bool) -> dict[str, list[tuple[str, bytes, str]]]:
    """(filename, bytes, kind) per corpus; kinds: note, image, scan, text-pdf, audio."""
    n_notes, n_mixed_notes, n_images, n_audio = (10, 3, 1, 1) if quick else (60, 12, 3, 3)
    notes = [(f"note{i}.txt", note(i).encode(), "note") for i in range(n_notes)]
    mixed = [(f"mixed{i}.txt", note(1000 + i).encode(), "note") for i in range(n_mixed_notes)]
    mixed += [(f"photo{i}.png", png(text_image(lines(2000 + i))), "image") for i in range(n_images)]
    mixed.append(("scan.pdf", pdf([text_image(lines(3000 + p, 12)) for p in range(1 if quick else 2)]), "scan"))
    mixed.append(("report.pdf", pdf([note(4000 + p) * 3 for p in range(3)]), "text-pdf"))
    mixed += [(f"memo{i}.wav", speech_wav(" ".join(SPEECH[(i + k) % len(SPEECH)] for k in range(2))), "audio")
              for i in range(n_audio)]
    return {"notes": notes, "mixed": mixed}


class Direct:
    """The same models in this process, each called as a careful script would: batched, no HTTP, no database."""

    def __init__(self, cfg: Settings):
        self.cfg = cfg
        # The embed stage's own runtime (ONNX Runtime by default), so the models' cost is the same on both sides.
        self.embedder = embedder(cfg.embed_model, cfg.embed_device, cfg.embed_batch_size, 0, cfg.embed_runtime,
                                 cfg.embed_onnx_path)
        self.chunker = semchunk.chunkerify(self.embedder.tokenizer, cfg.chunk_tokens)
        self.nlp = SpacyPipeline(cfg.spacy_model).model()
        self.whisper = Whisper(cfg.whisper_model, cfg.whisper_device, cfg.whisper_compute_type).model()
        self.whisper_options = dict(beam_size=cfg.whisper_beam_size, language=cfg.whisper_language or None,
                                    vad_filter=True)
        # Two Tesseracts side by side, each with OpenMP threads of its own, would fight over the cores (the
        # ocr stage runs it single-threaded too). Set after Whisper's load, which reads it for its own threads.
        os.environ["OMP_THREAD_LIMIT"] = "1"

    def text_of(self, data: bytes, kind: str) -> tuple[str, str]:
        """(step, text) of one input."""
        if kind == "note":
            return "read", data.decode()
        if kind == "image":
            return "ocr", pytesseract.image_to_string(Image.open(io.BytesIO(data)), lang=self.cfg.ocr_languages)
        if kind == "audio":
            segments, _ = self.whisper.transcribe(io.BytesIO(data), **self.whisper_options)
            return "transcribe", " ".join(s.text for s in segments)
        doc, texts = pdfium.PdfDocument(data), []
        try:
            for page in doc:
                text = page.get_textpage().get_text_bounded()
                if len(text.strip()) < 20:  # no text layer: render and read, as the ocr stage decides
                    image = page.render(scale=self.cfg.ocr_dpi / 72, grayscale=True).to_pil()
                    text = pytesseract.image_to_string(image, lang=self.cfg.ocr_languages)
                texts.append(text)
        finally:
            doc.close()
        return "ocr", "\n".join(texts)

    def run(self, files, conn=None) -> tuple[float, dict[str, float]]:
        """Seconds in all, and per step (the extraction steps summed over files, as the stages' are); with a
        connection, the rows the pipeline would write are written too (step `store`)."""
        steps: dict[str, float] = defaultdict(float)
        started = time.perf_counter()

        def extract(item):
            t = time.perf_counter()
            step, text = self.text_of(item[1], item[2])
            return step, text, time.perf_counter() - t

        # Files are independent, and Tesseract and CTranslate2 let go of the GIL: one file per core at a time.
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            extracted = list(pool.map(extract, files))
        texts = [text for _, text, _ in extracted]
        for step, _, seconds in extracted:
            steps[step] += seconds
        t = time.perf_counter()
        chunks = [[c for c in self.chunker(text, overlap=self.cfg.chunk_overlap) if c.strip()] for text in texts]
        vectors = iter(self.embedder.run([c for cs in chunks for c in cs]))
        steps["embed"] = time.perf_counter() - t
        t = time.perf_counter()
        tags = [[(e.label_.lower(), e.text.lower(), e.text) for e in doc.ents]
                + [("phrase", p.text.lower(), p.text) for p in doc._.phrases[:8]]
                for doc in self.nlp.pipe(texts, batch_size=32)]
        steps["tag"] = time.perf_counter() - t
        if conn is not None:
            t = time.perf_counter()
            self.store(conn, files, texts, [[(c, next(vectors)) for c in cs] for cs in chunks], tags)
            steps["store"] = time.perf_counter() - t
        return time.perf_counter() - started, dict(steps)

    @staticmethod
    def store(conn, files, texts, chunks, tags) -> None:
        """The files, their chunks with vectors and their tags, by COPY in one transaction, as a careful
        import script would write them (the same tables and indexes the stages write to)."""
        user = f"direct-{uuid.uuid4().hex[:8]}"
        ids = [uuid.uuid4() for _ in files]
        with conn.transaction():
            conn.execute("INSERT INTO users (id) VALUES (%s)", (user,))
            with conn.cursor().copy("COPY files (id, user_id, filename, media_type, category, size, sha256,"
                                    " blob_uri, status, ready_at) FROM STDIN") as copy:
                for fid, (name, data, _) in zip(ids, files, strict=True):
                    copy.write_row((fid, user, name, "text/plain", "text", len(data), uuid.uuid4().hex * 2,
                                    f"file:///{fid}", "ready", datetime.now(UTC)))
            with conn.cursor().copy("COPY chunks (file_id, ord, user_id, text, embedding) FROM STDIN") as copy:
                for fid, cs in zip(ids, chunks, strict=True):
                    for i, (text, vector) in enumerate(cs):
                        copy.write_row((fid, i, user, text, "[" + ",".join(map(str, vector.tolist())) + "]"))
            with conn.cursor().copy("COPY tags (file_id, user_id, kind, name, label, score) FROM STDIN") as copy:
                for fid, rows in zip(ids, tags, strict=True):
                    for (kind, name), label in {(k, n): label for k, n, label in rows}.items():
                        copy.write_row((fid, user, kind, name, label, 1.0))


def job_seconds(stack: Stack) -> dict[str, tuple[float, float]]:
    """(sum, count) of job_duration_seconds per stage, from every function's /metrics."""
    out = {}
    for name, port in stack.function_ports.items():
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            if family.name == "job_duration_seconds":
                values = {s.name: s.value for s in family.samples if s.name.endswith(("_sum", "_count"))}
                out[name] = (values.get("job_duration_seconds_sum", 0.0), values.get("job_duration_seconds_count", 0.0))
    return out


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU seconds (user + system) so far of each stack process, its workers included, and of PostgreSQL
    (the postmaster and its backends): where the machine's two cores went."""
    groups = {name: proc.pid for name, proc in stack.procs.items()}
    if stack._pg is not None:
        groups["postgres"] = stack._pg.get_pid()
    out = {}
    for name, pid in groups.items():
        try:
            leader = psutil.Process(pid)
            total = 0.0
            for p in [leader, *leader.children(recursive=True)]:
                t = p.cpu_times()
                # an exited child (a backend of a closed connection, a Tesseract run) counts in its parent's
                total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            continue
        out[name] = total
    me = psutil.Process().cpu_times()
    out["bench clients"] = me.user + me.system  # the uploading and polling threads of this process
    return out


def upload_all(api: str, user: str, files, clients: int) -> list[str]:
    http = [httpx.Client(base_url=api, timeout=120, headers={"Authorization": f"Bearer dev:{user}"})
            for _ in range(clients)]

    def one(i: int) -> str:
        name, data, _ = files[i]
        r = http[i % clients].post("/v1/files", files={"file": (name, data)})
        r.raise_for_status()
        return r.json()["id"]

    try:
        with ThreadPoolExecutor(clients) as pool:
            return list(pool.map(one, range(len(files))))
    finally:
        for h in http:
            h.close()


def wait_done(conn, ids: list[str], timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while conn.execute("SELECT count(*) AS n FROM files WHERE id = ANY(%s::uuid[]) AND status = 'processing'",
                       (ids,)).fetchone()["n"]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"files still processing after {timeout} s")
        time.sleep(0.1)


def stage_times(conn, ids: list[str]) -> tuple[dict[str, dict[str, float]], int]:
    """Per stage, seconds summed over the files: `work` (its file_stages row, started to finished) and
    `wait` (from the event it consumes being produced, i.e. the upload or the upstream stage's finish,
    to its start: broker, HTTP and the queue); and how many stage runs took more than one attempt."""
    rows = conn.execute("""SELECT s.file_id, s.stage, s.attempts, s.started_at, s.finished_at, f.created_at,
                                  f.ready_at FROM file_stages s JOIN files f ON f.id = s.file_id
                           WHERE s.file_id = ANY(%s::uuid[]) AND s.finished_at IS NOT NULL""", (ids,)).fetchall()
    by_file: dict = defaultdict(dict)
    for r in rows:
        by_file[r["file_id"]][r["stage"]] = r
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"work": 0.0, "wait": 0.0, "runs": 0})
    for stages in by_file.values():
        for name, r in stages.items():
            upstream = [r["ready_at"] if u == "ready" else stages[u]["finished_at"]
                        for u in AFTER.get(name, ()) if u in stages or (u == "ready" and r["ready_at"])]
            produced = upstream[0] if upstream else r["created_at"]
            out[name]["work"] += (r["finished_at"] - r["started_at"]).total_seconds()
            out[name]["wait"] += max(0.0, (r["started_at"] - produced).total_seconds())
            out[name]["runs"] += 1
    return dict(out), sum(r["attempts"] > 1 for r in rows)


def pipeline_round(stack: Stack, conn, files, clients: int) -> dict:
    user = f"bench-{uuid.uuid4().hex[:8]}"  # the same bytes from a new user are new files
    before, cpu_before = job_seconds(stack), cpu_seconds(stack)
    started = time.perf_counter()
    ids = upload_all(stack.api_url, user, files, clients)
    wait_done(conn, ids)
    elapsed = time.perf_counter() - started
    after, cpu_after = job_seconds(stack), cpu_seconds(stack)
    cpu = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
    statuses = {r["status"]: r["n"] for r in conn.execute(
        "SELECT status, count(*) AS n FROM files WHERE id = ANY(%s::uuid[]) GROUP BY 1", (ids,))}
    stages, retried = stage_times(conn, ids)
    deliveries = conn.execute("SELECT coalesce(sum(attempts), 0) AS n FROM file_stages WHERE file_id = ANY(%s::uuid[])",
                              (ids,)).fetchone()["n"]
    # What near-duplicate detection (in the cluster stage) costs, against the stages' work on these files.
    duplicates = conn.execute("""SELECT coalesce(sum((detail->>'duplicates_ms')::float), 0) / 1000 AS s
                                 FROM file_stages WHERE file_id = ANY(%s::uuid[]) AND stage = 'cluster'""",
                              (ids,)).fetchone()["s"]
    for name, (total, count) in after.items():
        if count > before.get(name, (0, 0))[1]:
            stages.setdefault(name, {"work": 0.0, "wait": 0.0, "runs": 0})
            stages[name]["handler"] = total - before.get(name, (0, 0))[0]
    return {"seconds": elapsed, "statuses": statuses, "stages": stages, "retried": retried, "cpu": cpu,
            "duplicates_s": duplicates, "deliveries": deliveries}


def direct_round(stack: Stack, conn, direct: Direct, files, batch: int = 0) -> dict:
    """The direct path over the files (in batches of `batch` where given), storing; its CPU seconds are
    this process's and PostgreSQL's (the stack idles meanwhile)."""
    me, pg = psutil.Process(), cpu_seconds(stack).get("postgres", 0.0)
    before = sum(me.cpu_times()[:2])
    seconds, steps = 0.0, defaultdict(float)
    for start in range(0, len(files), batch or len(files)):
        took, step = direct.run(files[start:start + (batch or len(files))], conn)
        seconds += took
        for k, v in step.items():
            steps[k] += v
    cpu = {"direct": sum(me.cpu_times()[:2]) - before, "postgres": cpu_seconds(stack).get("postgres", 0.0) - pg}
    return {"seconds": seconds, "steps": dict(steps), "cpu": cpu}


def batch_sweep(stack: Stack, conn, direct: Direct, notes, sizes) -> dict:
    """CPU seconds per note with notes arriving in bursts of each size: uploaded together, waited for, then
    the next burst (the pipeline); the direct path given the same batches."""
    out = {}
    for size in sizes:
        before = cpu_seconds(stack)
        for start in range(0, len(notes), size):
            pipeline_round(stack, conn, notes[start:start + size], min(size, 8))
        after = cpu_seconds(stack)
        pipe = sum(after[k] - before.get(k, 0.0) for k in after if k != "bench clients")
        d = direct_round(stack, conn, direct, notes, size)
        out[size] = {"pipeline": pipe / len(notes), "direct": sum(d["cpu"].values()) / len(notes)}
        print(f"  batches of {size:3d}: CPU per note pipeline {out[size]['pipeline'] * 1000:5.0f} ms, direct "
              f"{out[size]['direct'] * 1000:5.0f} ms", flush=True)
    return out


def main() -> None:
    p = common.options(__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--clients", type=int, default=8)
    args = p.parse_args()
    if args.quick:
        args.rounds = 1
    sets = corpora(args.quick)
    data = Path(tempfile.mkdtemp(prefix="mindspace-bench-", dir="/tmp"))
    os.chmod(data, 0o755)  # pgserver's own user must reach its data folder
    cfg = Settings(data_dir=data)
    stack = Stack(cfg, port=free_port_block(), env={
        "RATE_LIMIT_UPLOADS": "100000/minute", "RATE_LIMIT_SEARCHES": "100000/minute", "LOG_LEVEL": "WARNING"})
    t = time.perf_counter()
    stack.start()
    print(f"local stack ready in {time.perf_counter() - t:.0f} s")
    results: dict = {"clients": args.clients, "rounds": args.rounds, "cores": os.cpu_count(), "corpora": {}}
    try:
        with psycopg.connect(stack.database_url, autocommit=True, row_factory=dict_row) as conn:
            t = time.perf_counter()
            direct = Direct(cfg)
            # One file of each kind through both paths first: every model loaded on both sides, untimed.
            warm = [next(f for f in sets["mixed"] if f[2] == kind) for kind in ("note", "image", "scan", "audio")]
            direct.run(warm, conn)
            pipeline_round(stack, conn, warm, args.clients)
            print(f"warmed up in {time.perf_counter() - t:.0f} s")
            runs: dict[str, dict[str, list]] = {name: {"pipeline": [], "direct": []} for name in sets}
            for r in range(args.rounds):
                for name, files in sets.items():
                    order = ("pipeline", "direct") if r % 2 == 0 else ("direct", "pipeline")
                    for path in order:
                        if path == "pipeline":
                            runs[name]["pipeline"].append(pipeline_round(stack, conn, files, args.clients))
                        else:
                            runs[name]["direct"].append(direct_round(stack, conn, direct, files))
                    p_s, d_s = runs[name]["pipeline"][-1]["seconds"], runs[name]["direct"][-1]["seconds"]
                    print(f"round {r + 1} {name:6s} ({len(files)} files): "
                          f"pipeline {len(files) / p_s * 60:6.0f} files/min, "
                          f"direct {len(files) / d_s * 60:6.0f} files/min, ratio {d_s / p_s:.2f} "
                          f"{runs[name]['pipeline'][-1]['statuses']}")
            print("== CPU per note against the size of a batch arriving together")
            notes = sets["notes"][:12 if args.quick else 32]
            results["batches"] = batch_sweep(stack, conn, direct, notes, (1, 4, 12) if args.quick else (1, 4, 16, 32))
        for name, files in sets.items():
            results["corpora"][name] = summarise(files, runs[name])
    finally:
        stack.stop()
    for name, c in results["corpora"].items():
        print(f"== {name}: {c['files']} files ({c['kinds']}), {args.rounds} round(s), min/median/max")
        for key in ("pipeline_fpm", "direct_fpm", "ratio"):
            s = c[key]
            print(f"  {key:13s} {s['min']:8.2f} {s['median']:8.2f} {s['max']:8.2f}")
        print(f"  {'stage':10s} {'runs':>5s} {'model':>8s} {'work':>8s} {'adapter':>8s} {'wait':>8s}"
              "  (s per round, summed over files)")
        for stage, s in c["stages"].items():
            print(f"  {stage:10s} {s['runs']:5.0f} {s.get('model', 0):8.2f} {s['work']:8.2f} {s['adapter']:8.2f}"
                  f" {s['wait']:8.2f}")
        busy = sum(c["cpu"].values())
        print(f"  CPU s per round: {busy:.1f} in all, "
              + ", ".join(f"{k} {v:.1f}" for k, v in c["cpu"].items() if v >= 0.05))
        per = c["cpu_per_file"]
        print(f"  CPU per file: pipeline {fmt_ms(per['pipeline'])}, direct {fmt_ms(per['direct'])}, pipeline/direct "
              f"{per['ratio']['median']:.2f} (goal <= 2); broker {c['broker_ms_per_delivery']['median']:.1f} ms of CPU"
              f" per delivery, {c['deliveries_per_file']:.1f} deliveries per file")
    emit(args, results)


def fmt_ms(s: dict) -> str:
    return f"{s['median'] * 1000:.0f} ms ({s['min'] * 1000:.0f}-{s['max'] * 1000:.0f})"


def summarise(files, runs: dict[str, list]) -> dict:
    """Spreads over rounds; the per-stage figures are means per round."""
    n = len(files)
    ratios = [d["seconds"] / p["seconds"] for p, d in zip(runs["pipeline"], runs["direct"], strict=True)]
    stages: dict[str, dict[str, float]] = {}
    for p in runs["pipeline"]:
        for stage, s in p["stages"].items():
            acc = stages.setdefault(stage, defaultdict(float))
            for key, value in s.items():
                acc[key] += value / len(runs["pipeline"])
    steps: dict[str, float] = defaultdict(float)
    for d in runs["direct"]:
        for step, seconds in d["steps"].items():
            steps[step] += seconds / len(runs["direct"])
    for stage, s in stages.items():
        # The adapter's share: decoding, its database records and commit, the reply; work is the stage's own.
        s["adapter"] = s.get("handler", s["work"]) - s["work"]
        if stage in MODEL_STEP:
            s["model"] = steps.get(MODEL_STEP[stage], 0.0)
    cpu: dict[str, float] = defaultdict(float)
    for p in runs["pipeline"]:
        for name, seconds in p.get("cpu", {}).items():
            cpu[name] += seconds / len(runs["pipeline"])
    kinds = dict(sorted((k, sum(f[2] == k for f in files)) for k in {f[2] for f in files}))
    # The stack's processes and PostgreSQL, not the benchmark's own clients; the direct process and PostgreSQL.
    pipe_cpu = [sum(v for k, v in p["cpu"].items() if k != "bench clients") / n for p in runs["pipeline"]]
    direct_cpu = [sum(d["cpu"].values()) / n for d in runs["direct"]]
    return {"files": n, "kinds": kinds,
            "pipeline_fpm": spread([n / p["seconds"] * 60 for p in runs["pipeline"]]),
            "direct_fpm": spread([n / d["seconds"] * 60 for d in runs["direct"]]),
            "ratio": spread(ratios),
            "duplicates_share": spread([p["duplicates_s"] / max(1e-9, sum(s["work"] for s in p["stages"].values()))
                                        for p in runs["pipeline"]]),
            "direct_steps": dict(steps), "cpu": dict(sorted(cpu.items(), key=lambda kv: -kv[1])),
            "cpu_per_file": {"pipeline": spread(pipe_cpu), "direct": spread(direct_cpu),
                             "ratio": spread([a / b for a, b in zip(pipe_cpu, direct_cpu, strict=True)])},
            "direct_cpu": {k: statistics.mean(d["cpu"][k] for d in runs["direct"]) for k in runs["direct"][0]["cpu"]},
            "deliveries_per_file": statistics.mean(p["deliveries"] for p in runs["pipeline"]) / n,
            "broker_ms_per_delivery": spread([1000 * p["cpu"].get("broker", 0.0) / max(1, p["deliveries"])
                                              for p in runs["pipeline"]]),
            "stages": {k: dict(v) for k, v in sorted(stages.items())},
            "statuses": [p["statuses"] for p in runs["pipeline"]],
            "retried": [p["retried"] for p in runs["pipeline"]]}


if __name__ == "__main__":
    main()
