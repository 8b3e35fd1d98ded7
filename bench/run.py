"""Run every benchmark and write the report: each bench/bench_*.py runs as its own process (one at a
time: they would share the cores) and writes its results as JSON; this then renders docs/benchmarks.md,
its plots in docs/img/ and the raw figures in docs/results.json.

    make bench                 # everything, within 25 minutes on 2 cores
    make bench ARGS=--quick    # a smoke run of every benchmark in a minute or two
    .venv/bin/python bench/run.py --only pipeline coldstart   # some of them; --render redraws the report
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from common import machine

ROOT = Path(__file__).resolve().parent.parent
# name -> (script, what it measures); run in this order.
BENCHES = {
    "pipeline": ("bench_pipeline.py", "end to end against the direct path"),
    "coldstart": ("bench_coldstart.py", "cold start per function"),
    "images": ("bench_images.py", "what each built image holds (make images first)"),
    "embed": ("bench_embed.py", "embed stage against raw sentence-transformers"),
    "onnx": ("bench_onnx.py", "MiniLM through ONNX Runtime (float, int8) against torch"),
    "tag": ("bench_tag.py", "tag stage against raw spaCy + TextRank"),
    "batching": ("bench_batching.py", "throughput against batch size (embed, tag)"),
    "ocr": ("bench_ocr.py", "ocr stage against raw Tesseract"),
    "transcribe": ("bench_transcribe.py", "transcribe stage against raw faster-whisper"),
    "organize": ("bench_organize.py", "search and clustering at scale"),
    "search": ("bench_search.py", "search at 100k chunks through GET /v1/search"),
    "users": ("bench_users.py", "1M chunks over 2,000 users: search, layouts, a note searchable"),
    "restore": ("bench_restore.py", "point-in-time recovery of 10k files / 100k chunks"),
}


def run(name: str, flags: list[str], logs: Path) -> dict:
    script = BENCHES[name][0]
    out = logs / f"{name}.json"
    command = f".venv/bin/python bench/{script} {' '.join(flags)}".strip()
    print(f"== {command}", flush=True)
    started = time.perf_counter()
    with open(logs / f"{name}.log", "wb") as log:  # the stack's relayed process logs; stdout is shown
        proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--json", str(out), *flags],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=log)
    sys.stdout.write(proc.stdout.decode(errors="replace"))
    seconds = time.perf_counter() - started
    print(f"   {name}: {seconds:.0f} s" + (f", FAILED ({proc.returncode}); its log: {logs / name}.log"
                                             if proc.returncode else ""), flush=True)
    return {"command": command, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
            "seconds": seconds,
            "rc": proc.returncode, "stdout": proc.stdout.decode(errors="replace"),
            "results": json.loads(out.read_text()) if out.exists() else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small inputs, one round each")
    p.add_argument("--only", nargs="+", choices=list(BENCHES), help="run these; keep the others' last results")
    p.add_argument("--render", action="store_true", help="only redraw the report from docs/results.json")
    p.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = p.parse_args()
    results_file = args.docs / "results.json"
    previous = json.loads(results_file.read_text()) if results_file.exists() else {}
    if args.render:
        import report

        report.write(previous, args.docs)
        return
    mode = "--quick" if args.quick else ""
    logs = Path(tempfile.mkdtemp(prefix="mindspace-bench-logs-", dir="/tmp"))
    started = time.perf_counter()
    benches = dict(previous.get("benches", {})) if args.only else {}
    for kept in benches.values():  # kept results name the machine they were measured on, not this one
        kept.setdefault("machine", previous.get("machine"))
    for name in args.only or BENCHES:
        flags = ["--quick"] if args.quick else []
        benches[name] = run(name, flags, logs)
    total = time.perf_counter() - started
    results = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
               "command": f"make bench{' ARGS=' + mode if mode else ''}" + (f" (--only {' '.join(args.only)})"
                                                                           if args.only else ""),
               "total_s": total if not args.only else previous.get("total_s", total), "benches": benches}
    args.docs.mkdir(parents=True, exist_ok=True)
    results_file.write_text(json.dumps(results, indent=1))
    import report  # matplotlib only once the benchmarks are done

    report.write(results, args.docs)
    print(f"all benchmarks in {total / 60:.1f} min; wrote {args.docs / 'benchmarks.md'} (logs in {logs})")
    if any(b["rc"] for b in benches.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
