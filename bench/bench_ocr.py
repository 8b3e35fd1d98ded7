"""The ocr stage against Tesseract called directly (pytesseract.image_to_string) on the same pages,
measured in one run; and the stage's peak memory, which the Knative Service's limit must exceed.

    make bench            # or: .venv/bin/python bench/bench_ocr.py [--pages 6]
"""
from __future__ import annotations

import io
import random

import pytesseract
from PIL import Image, ImageDraw, ImageFont

from events.catalogue import Category

from common import StageHarness, best_pair, emit, options, peak_mib

WORDS = ("invoice meeting garden receipt total budget river lighthouse market basil pipe copper dentist "
         "friday lemons recipe dough minutes quarterly review travel water seedling plan").split()


def page(seed: int) -> bytes:
    """An A4 page at 300 dpi with 30 lines of text, as a scanner or a phone would give it."""
    rnd = random.Random(seed)
    font = ImageFont.load_default(size=42)
    image = Image.new("L", (2480, 3508), 255)
    draw = ImageDraw.Draw(image)
    for line in range(30):
        draw.text((200, 250 + line * 100), " ".join(rnd.choice(WORDS) for _ in range(8)), font=font, fill=0)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def main() -> None:
    p = options(__doc__)
    p.add_argument("--pages", type=int, default=6)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    if args.quick:
        args.pages, args.repeat = 1, 1
    harness = StageHarness("ocr")
    pages = [page(i) for i in range(args.pages)]
    events = [harness.upload(f"page{i}.png", data, "image/png", Category.image) for i, data in enumerate(pages)]
    harness.handle(events[0])  # warm up both paths (file caches, the language data)

    confidences = []
    raw, stage = best_pair(
        lambda: [pytesseract.image_to_string(Image.open(io.BytesIO(d)), lang="eng") for d in pages],
        lambda: confidences.extend(harness.handle(e)[1]["confidence"] for e in events), args.repeat)
    own, child = peak_mib()
    print(f"{args.pages} A4 pages at 300 dpi (30 lines each), best of {args.repeat}; "
          f"mean confidence {sum(confidences) / len(confidences):.1f}")
    print(f"raw Tesseract (image_to_string): {args.pages / raw:6.2f} pages/s")
    print(f"ocr stage:                       {args.pages / stage:6.2f} pages/s")
    print(f"ratio stage/raw time:            {stage / raw:6.3f}  (1.0 = no overhead; goal <= 1.05)")
    print(f"peak memory: stage process {own:.0f} MiB, Tesseract {child:.0f} MiB")
    emit(args, {"pages": args.pages, "repeat": args.repeat, "raw_per_s": args.pages / raw,
                "stage_per_s": args.pages / stage, "ratio": stage / raw, "peak_mib": own, "tesseract_mib": child,
                "confidence": sum(confidences) / len(confidences)})


if __name__ == "__main__":
    main()
