"""MiniLM through ONNX Runtime (float and int8) against torch (sentence-transformers), on the embed
benchmark's corpus: passages per second, rounds alternated; how far the vectors are from torch's
(cosine); recall@10 of search when the chunks were embedded by int8 and the queries by float (as the
embed stage and the API would run them), against float for both; the query embedder's warm latency;
and process start to the first query vector with its peak memory, each runtime in a fresh process.

    make bench            # or: .venv/bin/python bench/bench_onnx.py [--notes 200] [--rounds 3]
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import semchunk
from bench_embed import WORDS, notes

from shared.models import embedder

from common import emit, options, spread

ROOT = Path(__file__).resolve().parent.parent
RUNTIMES = ("torch", "onnx", "onnx-int8")
# Process start to the first query vector, in a fresh interpreter: what the API pays on a cold start.
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
FIRST = """import re, sys, time
t = time.perf_counter()
from shared.models import embedder
embedder(runtime=sys.argv[1]).run(["what did I plan for the garden"])
hwm = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
print(time.perf_counter() - t, hwm, "torch" in sys.modules)"""


def top10(queries: np.ndarray, corpus: np.ndarray) -> np.ndarray:
    return np.argsort(-(queries @ corpus.T), axis=1)[:, :10]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))


def main() -> None:
    p = options(__doc__)
    p.add_argument("--notes", type=int, default=200)  # 200: make bench within 25 minutes
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--queries", type=int, default=300)
    args = p.parse_args()
    if args.quick:
        args.notes, args.rounds, args.queries = 30, 1, 50
    models = {r: embedder(runtime=r) for r in RUNTIMES}
    chunker = semchunk.chunkerify(models["onnx"].tokenizer, 200)
    passages = [c for t in notes(args.notes) for c in chunker(t, overlap=0.15)]
    rnd = random.Random(11)
    queries = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(2, 8))) for _ in range(args.queries)]
    for m in models.values():
        m.run(passages[:32])  # loaded and warm

    rates: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    vectors = {}
    for k in range(args.rounds):
        for r in RUNTIMES[k % 3:] + RUNTIMES[:k % 3]:  # each round opens with another runtime
            started = time.perf_counter()
            vectors[r] = models[r].run(passages)
            rates[r].append(len(passages) / (time.perf_counter() - started))
    qv = {r: models[r].run(queries) for r in RUNTIMES}
    cosine = {r: float(np.min(np.sum(vectors[r] * vectors["torch"], axis=1))) for r in RUNTIMES[1:]}
    truth = top10(qv["torch"], vectors["torch"])
    recalls = {"onnx (both)": recall(top10(qv["onnx"], vectors["onnx"]), truth),
               "int8 chunks, float queries": recall(top10(qv["onnx"], vectors["onnx-int8"]),
                                                    top10(qv["onnx"], vectors["onnx"])),
               "int8 (both)": recall(top10(qv["onnx-int8"], vectors["onnx-int8"]), top10(qv["onnx"], vectors["onnx"]))}

    latency = {}
    for r in RUNTIMES:
        times = []
        for q in queries[:100]:
            started = time.perf_counter()
            models[r].run([q])
            times.append((time.perf_counter() - started) * 1000)
        latency[r] = {"p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95))}
    first = {}
    for r in RUNTIMES:
        out = subprocess.run([sys.executable, "-c", FIRST, r], capture_output=True, text=True, check=True, cwd=ROOT)
        seconds, mib, torch = out.stdout.split()
        first[r] = {"seconds": float(seconds), "peak_mib": float(mib), "torch_imported": torch == "True"}

    print(f"{args.notes} notes, {len(passages)} passages, {args.queries} queries, {args.rounds} round(s)")
    for r in RUNTIMES:
        s = spread(rates[r])
        print(f"{r:10s} {s['median']:7.1f} passages/s ({s['min']:.1f}-{s['max']:.1f}); query p50 "
              f"{latency[r]['p50']:.2f} ms p95 {latency[r]['p95']:.2f} ms; first vector {first[r]['seconds']:.2f} s, "
              f"peak {first[r]['peak_mib']:.0f} MiB, torch imported: {first[r]['torch_imported']}")
    print("min cosine to torch:", json.dumps(cosine), "recall@10:", json.dumps(recalls))
    emit(args, {"notes": args.notes, "passages": len(passages), "queries": args.queries, "rounds": args.rounds,
                "per_s": {r: spread(v) for r, v in rates.items()}, "min_cosine_to_torch": cosine,
                "recall": recalls, "query_ms": latency, "first_vector": first})


if __name__ == "__main__":
    main()
