"""The house's floors: events/ is the map (catalogue, wire format, routes), shared/ what a function
needs at run time, functions/ and api/ the functions, local/ the runtime of one machine. Nothing
imports upward, a stage never imports another, no module imports itself round a loop, shared/ and
events/ name no function's module, and configuration is read once, in shared/config.py."""
from __future__ import annotations

import ast
import graphlib
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


# Within a folder too: the harnesses' folders (their scripts import one another by bare name) as well.
FOLDERS = sorted([*MAY_IMPORT, "tests", "bench"])


def modules(folder: str, root: Path = ROOT) -> dict[str, Path]:
    """A folder's modules by the name they are imported by: dotted from the root in a package, the bare
    name in a folder of scripts (tests/, bench/), which put their folder on sys.path."""
    base = root if (root / folder / "__init__.py").exists() else root / folder
    out = {}
    for path in sorted((root / folder).rglob("*.py")):
        parts = path.relative_to(base).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph(folder: str, root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules of the same folder whose names it needs, imported at its top or inside a
    function: `import a.b` needs a.b; `from a import b` needs a.b if that is a module, else a's own b. A
    package's __init__ that imports its modules, whose modules import one another, is no loop."""
    mods = modules(folder, root)
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                base = ".".join([*anchor, node.module] if node.module else anchor)
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names}
        graph[name] = {t for t in targets if t in mods and t != name}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop of the graph (its first module again at its end), or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        return list(reversed(e.args[1]))  # graphlib names the loop from the imported to the importer
    return None


@pytest.mark.parametrize("folder", FOLDERS)
def test_no_import_loops(folder):
    loop = cycle(import_graph(folder))
    assert loop is None, f"import loop in {folder}/: {' -> '.join(loop)}"


def test_the_loop_finder_sees_loops_imports_inside_functions_included(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from pkg import b\n")
    (tmp_path / "pkg" / "b.py").write_text("def later():\n    from pkg.c import x\n")
    (tmp_path / "pkg" / "c.py").write_text("import pkg.a\nx = 1\n")
    assert import_graph("pkg", tmp_path) == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"},
                                            "pkg.c": {"pkg.a"}}
    loop = cycle(import_graph("pkg", tmp_path))
    assert loop and loop[0] == loop[-1] and set(loop) == {"pkg.a", "pkg.b", "pkg.c"}
    (tmp_path / "pkg" / "c.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "__init__.py").write_text("from pkg import a\nfrom pkg.c import x\n")
    assert cycle(import_graph("pkg", tmp_path)) is None  # the package's modules, by their package's name
    (tmp_path / "pkg" / "c.py").write_text("from pkg import y\nx = 1\n")
    assert cycle(import_graph("pkg", tmp_path)) in (["pkg", "pkg.c", "pkg"], ["pkg.c", "pkg", "pkg.c"])  # y: __init__'s
    assert "hostile" in import_graph("tests")["test_preconditions"]  # scripts import each other by bare name


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


# Configuration is handed in once (`start(cfg)`). Who else may read the environment or call the
# process's `settings()`, and why; everyone else is handed a Settings. Not scanned: local/, the launcher
# of one machine's processes, which reads the developer's environment (MINDSPACE_USER, PORT …) and builds
# each process's own (as the ConfigMap does on a cluster); tests/ and bench/, the harnesses that do the same.
READS_ENVIRONMENT = {"shared/config.py": "reads it into Settings once; sets what libraries read only from it"}
CALLS_SETTINGS = {"shared/runtime.py": "a function's start: reads the settings once and hands them in"}
ENVIRONMENT = {"environ", "environb", "getenv", "putenv", "unsetenv"}


def reads_configuration(path: Path) -> tuple[list[str], list[str]]:
    """(uses of the environment, calls of settings()) in a file, with their lines. A `__main__` block may
    call settings(): it is a process's start (python -m shared.db, the migration Job)."""
    tree = ast.parse(path.read_text())
    main = {id(n) for block in tree.body if isinstance(block, ast.If) and "__main__" in ast.unparse(block.test)
            for n in ast.walk(block)}
    env, calls = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT and ast.unparse(node.value) == "os":
            env.append(f"os.{node.attr} (line {node.lineno})")
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and {a.name for a in node.names} & ENVIRONMENT:
            env.append(f"from os import … (line {node.lineno})")
        elif (isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] == "settings"
              and id(node) not in main):
            calls.append(f"settings() (line {node.lineno})")
    return env, calls


@pytest.mark.parametrize("package", ["events", "shared", "functions", "api"])
def test_configuration_is_read_once_in_shared_config(package):
    for path in sources(package):
        name = path.relative_to(ROOT).as_posix()
        env, calls = reads_configuration(path)
        assert not env or name in READS_ENVIRONMENT, f"{name} reads the environment: {env}; take it from Settings"
        assert not calls or name in CALLS_SETTINGS, f"{name} calls settings(): {calls}; take the cfg handed in"


def test_the_configuration_check_sees_what_it_forbids(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom shared import config\n\ndef f():\n    return os.environ.get('X'), "
                     "os.getenv('Y'), config.settings()\n\nif __name__ == '__main__':\n    config.settings()\n")
    env, calls = reads_configuration(probe)
    assert (sorted(env), calls) == (["os.environ (line 5)", "os.getenv (line 5)"], ["settings() (line 5)"])


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
