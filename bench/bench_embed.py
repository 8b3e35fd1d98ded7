"""The embed stage's text path (semchunk chunking + batched encoding through shared.models) against
calling sentence-transformers directly on the same passages, measured in one run.

    make bench            # or: .venv/bin/python bench/bench_embed.py [--notes 400]
"""
from __future__ import annotations

import random

import semchunk

from shared.models import embedder

from common import best_pair, emit, options, peak_mib

WORDS = ("garden tomato budget meeting travel invoice river lighthouse ship basil fence morning sun "
         "quarterly review marketing spend anna march water seedling market plan call note idea").split()


def notes(n: int, seed: int = 7) -> list[str]:
    rnd = random.Random(seed)
    return [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(40, 400))) + "." for _ in range(n)]


def main() -> None:
    p = options(__doc__)
    p.add_argument("--notes", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    if args.quick:
        args.notes, args.repeat = 30, 1
    emb = embedder()
    model = emb.model()
    chunker = semchunk.chunkerify(emb.tokenizer, 200)
    texts = notes(args.notes)
    passages = [c for t in texts for c in chunker(t, overlap=0.15)]
    model.encode(passages[:64])  # warm up

    raw, stage = best_pair(lambda: model.encode(passages, batch_size=32, normalize_embeddings=True),
                           lambda: emb.run([c for t in texts for c in chunker(t, overlap=0.15)]), args.repeat)
    print(f"{len(texts)} notes, {len(passages)} passages, best of {args.repeat}")
    print(f"raw sentence-transformers: {len(passages) / raw:8.1f} passages/s")
    print(f"embed stage text path:     {len(passages) / stage:8.1f} passages/s")
    print(f"ratio stage/raw time:      {stage / raw:8.3f}  (1.0 = no overhead; goal <= 1.05)")
    print(f"peak memory: stage process {peak_mib()[0]:.0f} MiB")
    emit(args, {"notes": len(texts), "passages": len(passages), "repeat": args.repeat,
                "raw_per_s": len(passages) / raw, "stage_per_s": len(passages) / stage, "ratio": stage / raw,
                "peak_mib": peak_mib()[0]})


if __name__ == "__main__":
    main()
