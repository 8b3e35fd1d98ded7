"""The developer loop of `mindspace run`: saving a Python file restarts the functions that run it, and no other.

A file under functions/NAME/ belongs to NAME; a module of shared/, events/ or api/ to every function whose
imports reach it (read from the code, as tests/test_layers.py reads them). watchfiles, the library behind
uvicorn --reload, reports the changes; the stack restarts each function it names, and the broker's retries
carry any delivery the restart cut short.
"""
from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from watchfiles import PythonFilter, watch

PACKAGES = ("api", "events", "functions", "shared")


def module_of(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _imports(root: Path, path: Path, mtime: float) -> frozenset[str]:
    names = set()
    package = module_of(root, path).rpartition(".")[0] if path.name != "__init__.py" else module_of(root, path)
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, ValueError):
        return frozenset()  # a file saved half-written: its function restarts and says why it fails
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from . import reading` in functions/ocr/main.py
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *filter(None, [base])])
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}  # `from shared import db` imports shared.db
    return frozenset(names)


def graph(root: Path) -> dict[str, set[str]]:
    """module -> the project's modules it imports."""
    files = {module_of(root, p): p for pkg in PACKAGES for p in (root / pkg).rglob("*.py")}
    return {m: {i for i in _imports(root, p, p.stat().st_mtime) if i in files} for m, p in files.items()}


def entry(function: str) -> str:
    return "api.app" if function == "api" else f"functions.{function}.main"


def affected(root: Path, changed: set[Path], functions: list[str]) -> dict[str, list[str]]:
    """function -> the changed files (relative to root) that it runs."""
    edges = graph(root)
    out: dict[str, list[str]] = {}
    for function in functions:
        reach, todo = set(), [entry(function)]
        while todo:
            m = todo.pop()
            if m not in reach:
                reach.add(m)
                todo += edges.get(m, ())
        own = root / "functions" / function
        for path in changed:
            if path.is_relative_to(own) or (path.is_relative_to(root) and module_of(root, path) in reach):
                out.setdefault(function, []).append(str(path.relative_to(root)))
    return out


def changes(root: Path, stop_event):
    """Sets of changed Python files under the code folders, until stop_event is set. Saves within 150 ms
    come as one set (an editor writing a file and its backup, a formatter after the save)."""
    for batch in watch(*(root / p for p in PACKAGES), watch_filter=PythonFilter(), debounce=150, step=50,
                       stop_event=stop_event, raise_interrupt=False):
        yield {Path(p).resolve() for _, p in batch}
