"""The developer loop of `make run`: saving a file restarts the functions that run it (local/reload.py), and
the next event runs the new code, with no restart of the stack and no event lost."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from local import reload
from local.stack import ROOT, Stack, free_port_block, function_names
from shared.config import Settings

from conftest import User

FUNCTIONS = ["api", *function_names()]


def test_a_stage_file_belongs_to_its_stage_alone():
    assert reload.affected(ROOT, {ROOT / "functions/ocr/reading.py"}, FUNCTIONS) == {
        "ocr": ["functions/ocr/reading.py"]}


def test_a_shared_module_restarts_those_that_import_it_and_no_other():
    # The catalogue is everyone's (the adapter reads it); the cluster stage's own module only the cluster's.
    assert reload.affected(ROOT, {ROOT / "events/catalogue.py"}, FUNCTIONS).keys() == set(FUNCTIONS)
    assert reload.affected(ROOT, {ROOT / "functions/cluster/clustering.py"}, FUNCTIONS).keys() == {"cluster"}
    models = {f for f in FUNCTIONS if "shared.models" in _reach(reload.entry(f))}
    assert reload.affected(ROOT, {ROOT / "shared/models.py"}, FUNCTIONS).keys() == models
    assert "extract" not in models and "embed" in models


def _reach(module: str) -> set[str]:
    edges, seen, todo = reload.graph(ROOT), set(), [module]
    while todo:
        if (m := todo.pop()) not in seen:
            seen.add(m)
            todo += edges.get(m, ())
    return seen


@pytest.fixture(scope="module")
def copy_stack(fcm, gcs, otlp):
    """A stack with reload on, running a copy of the code (the test edits it, never the repository)."""
    root = Path(tempfile.mkdtemp(prefix="mindspace-code-", dir="/tmp"))
    for folder in ("api", "events", "shared", "functions", "local", "knative"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    data = Path(tempfile.mkdtemp(prefix="mindspace-reload-", dir="/tmp"))
    os.chmod(data, 0o755)
    s = Stack(Settings(data_dir=data), port=free_port_block(), root=root, reload=True,
              env={"FIREBASE_CREDENTIALS": str(fcm.credentials), "FCM_URL": fcm.url})
    s.start()
    yield s
    s.stop()
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)


def _zip(seed: int) -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("a.bin", bytes([seed]) * 4096)
    return out.getvalue()


def test_saving_a_stage_restarts_it_alone_and_the_next_event_runs_the_new_code(copy_stack, record_property):
    user = User(copy_stack, "reloader")
    first = user.upload("old.zip", _zip(1)).json()
    assert "no extractor reads" in user.wait(first["id"])["status_reason"]
    pids = {name: p.pid for name, p in copy_stack.procs.items()}
    main = copy_stack.root / "functions/extract/main.py"
    saved = time.monotonic()
    main.write_text(main.read_text().replace('f"no extractor reads {kind} files"',
                                             'f"reloaded: nothing reads {kind} files"'))
    # At once, while extract restarts: the broker's retries carry the delivery the restart cuts off.
    second = user.upload("new.zip", _zip(2)).json()
    deadline = time.monotonic() + 30
    while copy_stack.procs["extract"].pid == pids["extract"] or not _ready(copy_stack, "extract"):
        assert time.monotonic() < deadline, "extract was not restarted after its file was saved"
        time.sleep(0.05)
    restarted = time.monotonic() - saved
    record_property("reload_s", restarted)
    print(f"extract restarted and ready {restarted:.2f} s after the save")
    # The upload made during the restart is not lost (old code or new, whichever took its delivery) …
    assert "reads application/zip" in user.wait(second["id"])["status_reason"]
    # … and the next one runs the new code.
    third = user.upload("newer.zip", _zip(3)).json()
    assert "reloaded: nothing reads" in user.wait(third["id"])["status_reason"]
    assert {n: p.pid for n, p in copy_stack.procs.items() if n != "extract"} == \
        {n: p for n, p in pids.items() if n != "extract"}, "a function other than extract was restarted"
    assert copy_stack.restarts.get("extract", 0) == 0, "the supervisor, not the reload, brought extract back"


def _ready(stack: Stack, name: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{_url(stack, name)}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_saving_a_shared_module_restarts_the_functions_that_import_it_together(copy_stack, record_property):
    expected = set(reload.affected(copy_stack.root, {copy_stack.root / "shared/models.py"}, FUNCTIONS))
    pids = {name: p.pid for name, p in copy_stack.procs.items()}
    models = copy_stack.root / "shared/models.py"
    saved = time.monotonic()
    models.write_text(models.read_text() + "\n# saved again\n")
    deadline = time.monotonic() + 60
    while not all(copy_stack.procs[n].pid != pids[n] and _ready(copy_stack, n) for n in expected):
        assert time.monotonic() < deadline, "not every importer of shared/models.py came back"
        time.sleep(0.05)
    took = time.monotonic() - saved
    record_property("reload_shared_s", took)
    print(f"{len(expected)} functions ({', '.join(sorted(expected))}) restarted and ready {took:.2f} s after the save")
    assert {n for n, p in copy_stack.procs.items() if p.pid != pids[n]} == expected


def _url(stack: Stack, name: str) -> str:
    return stack.api_url if name == "api" else f"http://127.0.0.1:{stack.function_ports[name]}"
