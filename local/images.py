"""What each function's image installs, worked out from the installed distributions alone (no Docker).

An image installs `.[FUNCTION]` (Dockerfile): the project's `dependencies`, the function's group of
`[project.optional-dependencies]` in pyproject.toml (a self-reference such as `mindspace[embed]` unfolded),
and whatever those require, with the extras they name and their markers evaluated here. `closure` is that
set, taken from this venv's metadata; `site` lays it out as a site-packages folder of links to the venv's
own files, so that a Python started with `python -S` and `site.addsitedir(folder)` sees what the image
would and nothing else: an import of anything outside fails as it would in the image, optional imports
fall back as they would there, and importlib.metadata lists the image's distributions only.
tests/test_images.py runs every function that way; bench/bench_images.py reports the sizes.
"""
from __future__ import annotations

import os
import tomllib
from collections import defaultdict
from functools import cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from local.stack import function_names

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "mindspace"
# Every function's group: the API's and each stage's.
FUNCTIONS = ("api", *function_names())


class Missing(LookupError):
    """A requirement of the group that this venv does not have installed."""


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def groups() -> dict[str, list[str]]:
    return pyproject()["project"]["optional-dependencies"]


def requirements(extras) -> tuple[list[Requirement], list[Requirement]]:
    """The project's own requirements for these groups (its base included, self-references unfolded), and
    those installed without their dependencies ([tool.mindspace.no-deps])."""
    toml = pyproject()
    known, no_deps = toml["project"]["optional-dependencies"], toml["tool"]["mindspace"]["no-deps"]
    out, bare, seen, todo = [Requirement(r) for r in toml["project"]["dependencies"]], [], set(), list(extras)
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        if extra not in known:
            raise KeyError(f"pyproject.toml has no group {extra!r}; it has {', '.join(known)}")
        seen.add(extra)
        bare += map(Requirement, no_deps.get(extra, []))
        for req in map(Requirement, known[extra]):
            if canonicalize_name(req.name) == PROJECT:
                todo += sorted(req.extras)
            else:
                out.append(req)
    return out, bare


def _applies(req: Requirement, extras: set[str]) -> bool:
    return req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""})


def _installed(name: str, parent: str) -> metadata.Distribution:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise Missing(f"{name} (required by {parent}) is not installed in this venv") from None


def closure(extras) -> dict[str, metadata.Distribution]:
    """Canonical name -> installed distribution, for everything an image of these groups installs."""
    reqs, bare = requirements(extras)
    dists = {canonicalize_name(r.name): _installed(r.name, PROJECT) for r in bare if _applies(r, set())}
    wanted: dict[str, set[str]] = {}
    todo = [(canonicalize_name(r.name), set(r.extras), PROJECT) for r in reqs if _applies(r, set())]
    while todo:
        name, more, parent = todo.pop()
        if name in wanted and more <= wanted[name]:
            continue
        wanted[name] = wanted.get(name, set()) | more
        dist = dists.setdefault(name, _installed(name, parent))
        todo += [(canonicalize_name(r.name), set(r.extras), name)
                 for r in map(Requirement, dist.requires or []) if _applies(r, wanted[name])]
    return dists


def files(dist: metadata.Distribution) -> list[Path]:
    """A distribution's installed files (its RECORD), those outside site-packages (scripts) left out."""
    return [Path(f) for f in dist.files or [] if not str(f).startswith("..")]


def size(dist: metadata.Distribution) -> int:
    """Bytes on disk of a distribution's files."""
    total = 0
    for f in files(dist):
        try:
            total += dist.locate_file(f).stat().st_size
        except OSError:
            pass  # listed but not there (a .pyc never compiled)
    return total


@cache
def _owners() -> dict[str, set[str]]:
    """Each top-level entry of site-packages -> the distributions with files under it."""
    owners: dict[str, set[str]] = defaultdict(set)
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for f in files(dist):
            owners[f.parts[0]].add(name)
    return owners


def site(extras, folder: Path) -> Path:
    """`folder` as the image's site-packages: a link for each top-level entry only the closure's distributions
    own (whole folders: what their packages wrote into them at set-up, the exported ONNX graphs, comes too),
    file by file where others share it (namespace packages such as google/)."""
    dists = closure(extras)
    folder.mkdir(parents=True, exist_ok=True)
    for dist in dists.values():
        base = Path(dist.locate_file(""))
        for top, paths in _tops(dist).items():
            if _owners()[top] <= dists.keys():
                pairs = [(base / top, folder / top)]
            else:
                pairs = [(base / f, folder / f) for f in paths]
            for target, link in pairs:
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.is_symlink() and target.exists():
                    os.symlink(target, link)
    return folder


def _tops(dist: metadata.Distribution) -> dict[str, list[Path]]:
    tops: dict[str, list[Path]] = defaultdict(list)
    for f in files(dist):
        tops[f.parts[0]].append(f)
    return tops


def provider(module: str) -> list[str]:
    """The distributions of this venv that give a top-level module, and the groups that install them."""
    top = module.partition(".")[0]
    dists = metadata.packages_distributions().get(top, [])
    found = []
    for dist in dists:
        name = canonicalize_name(dist)
        holding = [g for g in groups() if g not in ("all", "local", "onnx-export") and _holds(g, name)]
        found.append(f"{dist} (in group {', '.join(holding) or 'none'})")
    return found


def _holds(group: str, name: str) -> bool:
    try:
        return name in closure((group,))
    except Missing:
        return False
