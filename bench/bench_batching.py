"""Throughput against batch size: the embed and tag models behind the stages' Batcher (shared/batching.py),
as the stages call them, under many concurrent requests (one note each, as concurrent deliveries of
text.extracted bring them), at BATCH_MAX_ITEMS 1 (no batching: each request its own model call) up to
32, with BATCH_WAIT_MS as configured. The ceiling is one batched call over every note, as a careful
script makes it. Rounds alternate the order of the sizes; notes per second, median (min-max).

    .venv/bin/python bench/bench_batching.py [--rounds 3] [--quick]
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import semchunk

from shared.config import Settings
from shared.metrics import BATCH_SIZE
from shared.models import SpacyPipeline, embedder

import common
from common import emit, note, spread


def observed(label: str) -> tuple[float, float]:
    """(sum, count) of batch_size{stage=label} so far."""
    values = {s.name: s.value for m in BATCH_SIZE.collect() for s in m.samples if s.labels.get("stage") == label}
    return values.get("batch_size_sum", 0.0), values.get("batch_size_count", 0.0)


def under_load(holder, label: str, requests: list[list[str]], size: int, wait_ms: float, clients: int,
               consume) -> tuple[float, float]:
    """(seconds, mean requests per model call) for every request sent by `clients` threads at once."""
    holder.batched(label, size, wait_ms)
    before = observed(label)
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for out in pool.map(holder.run, requests):
            consume(out)
    seconds = time.perf_counter() - started
    after = observed(label)
    return seconds, (after[0] - before[0]) / max(1.0, after[1] - before[1])


def main() -> None:
    p = common.options(__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--clients", type=int, default=32)
    args = p.parse_args()
    quick = args.quick
    rounds = 1 if quick else args.rounds
    sizes = (1, 8, 32) if quick else (1, 4, 8, 16, 32)
    cfg = Settings()
    texts = [note(i) for i in range(48 if quick else 160)]
    emb = embedder(cfg.embed_model, cfg.embed_device, cfg.embed_batch_size)
    chunker = semchunk.chunkerify(emb.tokenizer, cfg.chunk_tokens)
    nlp = SpacyPipeline(cfg.spacy_model)

    def tag_out(docs):
        for doc in docs:
            _ = [e.label_ for e in doc.ents], [p.text for p in doc._.phrases]

    models = {
        "embed": (emb, [[c for c in chunker(t, overlap=cfg.chunk_overlap) if c.strip()] for t in texts], len),
        "tag": (nlp, [[t] for t in texts], tag_out),
    }
    results: dict = {"notes": len(texts), "clients": args.clients, "rounds": rounds, "wait_ms": cfg.batch_wait_ms,
                     "sizes": list(sizes), "models": {}}
    for name, (holder, requests, consume) in models.items():
        # The ceiling: every input in one call, as bench_pipeline's direct path makes it; and a warm-up.
        flat = [x for r in requests for x in r]
        holder.model()
        consume(holder._run(holder.model(), flat[:8]))
        ceiling = []
        runs: dict[int, list] = {s: [] for s in sizes}
        for r in range(rounds):
            t = time.perf_counter()
            consume(holder._run(holder.model(), flat))
            ceiling.append(len(texts) / (time.perf_counter() - t))
            for size in sizes if r % 2 == 0 else tuple(reversed(sizes)):
                seconds, mean = under_load(holder, name, requests, size, cfg.batch_wait_ms, args.clients, consume)
                runs[size].append((len(texts) / seconds, mean))
        results["models"][name] = {
            "inputs": len(flat), "ceiling_per_s": spread(ceiling),
            "per_s": {s: spread([x for x, _ in v]) for s, v in runs.items()},
            "mean_batch": {s: sum(m for _, m in v) / len(v) for s, v in runs.items()}}
        m = results["models"][name]
        print(f"== {name}: {len(texts)} notes ({len(flat)} inputs), {args.clients} concurrent requests, "
              f"BATCH_WAIT_MS {cfg.batch_wait_ms}; one call over all: {m['ceiling_per_s']['median']:.1f} notes/s")
        for s in sizes:
            print(f"  BATCH_MAX_ITEMS {s:3d}: {m['per_s'][s]['median']:7.1f} notes/s "
                  f"({m['per_s'][s]['min']:.1f}-{m['per_s'][s]['max']:.1f}), mean batch {m['mean_batch'][s]:.1f}")
    emit(args, results)


if __name__ == "__main__":
    main()
