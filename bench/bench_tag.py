"""The tag stage against spaCy + TextRank called directly on the same notes (one note per call, as
events arrive), measured in one run;
and the stage's peak memory, which the Knative Service's limit must exceed.

    make bench            # or: .venv/bin/python bench/bench_tag.py [--notes 200]
"""
from __future__ import annotations

import random
import uuid

from events.catalogue import FileEvent
from shared.textdoc import TextDoc

from common import StageHarness, best_pair, emit, options, peak_mib

PEOPLE = ["Anna Schmidt", "Marco Rossi", "Li Wei", "Fatima Khan", "John Miller"]
PLACES = ["Berlin", "Lisbon", "Tokyo", "Nairobi", "Toronto"]
TOPICS = ["the quarterly budget", "the garden beds", "the band rehearsal", "the tax receipts", "the ferry trip"]


def note(rnd: random.Random) -> str:
    return " ".join(f"{rnd.choice(PEOPLE)} met {rnd.choice(PEOPLE)} in {rnd.choice(PLACES)} on Friday to talk "
                    f"about {rnd.choice(TOPICS)} and spent ${rnd.randint(10, 900)}." for _ in range(rnd.randint(3, 12)))


def main() -> None:
    p = options(__doc__)
    p.add_argument("--notes", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    if args.quick:
        args.notes, args.repeat = 20, 1
    rnd = random.Random(7)
    texts = [note(rnd) for _ in range(args.notes)]
    harness = StageHarness("tag")
    events = []
    for text in texts:
        doc = TextDoc()
        doc.add(text)
        events.append(doc.save(harness.blobs, FileEvent(file_id=uuid.uuid4(), user_id="bench"), "text"))
    nlp = harness.stage.nlp.model()
    # The stage's analysis from the stored text; the database write is left out, as in the other benches.
    # One note per call on both sides: a stage gets one file per event and cannot batch across them.
    raw, timed = best_pair(lambda: [len(d.ents) + len(d._.phrases) for d in map(nlp, texts)],
                           lambda: [harness.stage.tags(harness.blobs, e.text_uri) for e in events], args.repeat)
    own, _ = peak_mib()
    print(f"{args.notes} notes, best of {args.repeat}")
    print(f"raw spaCy + TextRank: {args.notes / raw:7.1f} notes/s")
    print(f"tag stage:            {args.notes / timed:7.1f} notes/s")
    print(f"ratio stage/raw time: {timed / raw:7.3f}  (1.0 = no overhead; goal <= 1.05)")
    print(f"peak memory: stage process {own:.0f} MiB")
    emit(args, {"notes": args.notes, "repeat": args.repeat, "raw_per_s": args.notes / raw,
                "stage_per_s": args.notes / timed, "ratio": timed / raw, "peak_mib": own})


if __name__ == "__main__":
    main()
