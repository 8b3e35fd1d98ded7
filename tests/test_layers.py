"""The house's floors: events/ is the map (catalogue, wire format, routes), shared/ what a function
needs at run time, functions/ and api/ the functions, local/ the runtime of one machine. Nothing
imports upward, a stage never imports another, and shared/ and events/ name no function's module."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAY_IMPORT = {
    "events": set(),
    "shared": {"events"},
    "functions": {"events", "shared"},
    "api": {"events", "shared"},
    "local": {"events", "shared"},
}


def sources(package: str):
    return sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def strings(path: Path) -> list[str]:
    """String constants that are not docstrings: names a module acts on."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docs]


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_nothing_imports_upward(package):
    for path in sources(package):
        for module in imported(path):
            top = module.split(".")[0]
            if top in MAY_IMPORT and top != package:
                assert top in MAY_IMPORT[package], f"{path.relative_to(ROOT)} imports {module}"


def test_a_stage_never_imports_another():
    for path in sources("functions"):
        own = path.relative_to(ROOT / "functions").parts[0]
        for module in imported(path):
            parts = module.split(".")
            if parts[0] == "functions" and len(parts) > 1:
                assert parts[1] == own, f"{path.relative_to(ROOT)} imports {module}"


@pytest.mark.parametrize("package", ["events", "shared"])
def test_the_lower_floors_name_no_function(package):
    for path in sources(package):
        for s in strings(path):
            assert "api.app" not in s and "functions/" not in s, f"{path.relative_to(ROOT)} names {s!r}"


def test_importing_a_function_builds_nothing():
    """Settings, pools, authenticator and models come with `start` (the lifespan), never at import."""
    import importlib

    from api import app
    assert not hasattr(app.app.state, "api")
    for name in ("embed", "tag", "transcribe", "ocr", "cluster"):
        stage = importlib.import_module(f"functions.{name}.main").handle.stage
        assert not any(hasattr(v, "_model") for v in vars(stage).values()), name


def test_a_model_holder_loads_once_runs_and_lets_go_when_idle():
    import threading
    import time

    from shared.models import ModelHolder

    class Doubler(ModelHolder):
        name = "doubler"
        loads = 0

        def _load(self):
            time.sleep(0.05)  # two callers race for a model neither has loaded
            Doubler.loads += 1
            return lambda x: 2 * x

        def _run(self, model, x):
            return model(x)

    holder = Doubler(idle_seconds=0.2)
    threads = [threading.Thread(target=holder.run, args=(1,)) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert holder.run(21) == 42 and Doubler.loads == 1
    deadline = time.monotonic() + 5
    while holder._model is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert holder._model is None  # let go after idle_seconds unused
    assert holder.run(1) == 2 and Doubler.loads == 2  # and loaded again on the next use


def test_skaffold_syncs_each_stage_by_its_own_name():
    import yaml

    doc = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    for artifact in doc["build"]["artifacts"]:
        name = artifact["docker"]["buildArgs"]["FUNCTION"]
        assert artifact["image"] == f"mindspace-{name}"
        if name != "api":
            assert artifact["sync"]["manual"][0]["src"] == f"functions/{name}/**/*.py"
    assert not any("patches" in p for p in doc.get("profiles", [])), "patches address artifacts by position"
