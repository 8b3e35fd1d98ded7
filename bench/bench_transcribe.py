"""The transcribe stage against faster-whisper called directly on the same audio, as real-time
factors (seconds of work per second of audio) measured in one run; and the stage's peak memory.

    make bench            # or: .venv/bin/python bench/bench_transcribe.py [--sentences 12]
"""
from __future__ import annotations

import io
import subprocess

from events.catalogue import Category

import common
from common import StageHarness, best_pair, emit, peak_mib

SENTENCES = [
    "The quarterly budget meeting moves to Thursday afternoon in the blue room.",
    "Remember to water the orchids on the balcony every Sunday morning.",
    "Anna will send the revised invoice to the printing company before Friday.",
    "We agreed to cut travel expenses by ten percent for the next quarter.",
    "The lighthouse keeper logs every passing ship in a leather notebook.",
    "Pick up tomato seedlings and basil at the farmers market on Saturday.",
]


def main() -> None:
    p = common.options(__doc__)
    p.add_argument("--sentences", type=int, default=12)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    if args.quick:
        args.sentences, args.repeat = 2, 1
    text = " ".join(SENTENCES[i % len(SENTENCES)] for i in range(args.sentences))
    audio = subprocess.run(["espeak-ng", "--stdout", "-s", "150", text], check=True, capture_output=True).stdout
    harness = StageHarness("transcribe")
    event = harness.upload("memo.wav", audio, "audio/x-wav", Category.audio)
    model = harness.stage.model.model()
    options = harness.stage.options

    def raw():
        segments, _ = model.transcribe(io.BytesIO(audio), **options)
        return [s.text for s in segments]

    raw()  # warm up
    details = []
    raw_s, stage_s = best_pair(raw, lambda: details.append(harness.handle(event)[1]), args.repeat)
    seconds = details[-1]["duration_s"]
    own, _ = peak_mib()
    print(f"{seconds:.0f} s of speech ({args.sentences} sentences), {options}, best of {args.repeat}")
    print(f"raw faster-whisper: real-time factor {raw_s / seconds:.3f}")
    print(f"transcribe stage:   real-time factor {stage_s / seconds:.3f}")
    print(f"ratio stage/raw time: {stage_s / raw_s:.3f}  (1.0 = no overhead; goal <= 1.05)")
    print(f"peak memory: stage process {own:.0f} MiB")
    emit(args, {"audio_s": seconds, "repeat": args.repeat, "raw_rtf": raw_s / seconds, "stage_rtf": stage_s / seconds,
                "ratio": stage_s / raw_s, "peak_mib": own})


if __name__ == "__main__":
    main()
