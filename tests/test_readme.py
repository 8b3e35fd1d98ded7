"""The README reads true where a test can check it cheaply: its layout names every folder and module
there is and none that is not, and what its stage table and diagram say each stage consumes is what
the Triggers (knative/base/triggers.yaml, read by events/routes.py) route to it."""
from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

from events import routes

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
CODE = ("events", "shared", "functions", "api", "local")  # the floors whose every module the layout names
FOLDER = re.compile(r"(?<![\w/.-])([\w-]+)/(?![\w])")  # `cli/`, not the `search/tags` of a route list
MODULE = re.compile(r"(?<![\w/.-])([\w-]+\.(?:py|sh))\b")
EVENT = r"[a-z]+(?:\.[a-z]+)+"
PING = "dev.knative.sources.ping"


def section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def layout() -> dict[str, str]:
    """The layout's code block, by the folder each of its paragraphs starts with."""
    block = section("Layout").split("```\n", 2)[1]
    paragraphs: dict[str, str] = {}
    for line in block.splitlines():
        if not line.startswith(" "):
            folder = line.split("/", 1)[0]
        paragraphs[folder] = paragraphs.get(folder, "") + line + "\n"
    return paragraphs


def ignored(name: str) -> bool:
    patterns = [p.strip().rstrip("/") for p in (ROOT / ".gitignore").read_text().splitlines() if p.strip()]
    return name.startswith(".") or any(fnmatch.fnmatch(name, p) for p in patterns)


def present(folder: str) -> set[str]:
    """What the layout must name in a folder: its subfolders (`cli/`) and its modules and scripts, less the
    ones every package or stage has (`__init__.py`, `__main__.py`, a stage's `main.py`)."""
    names = set()
    for path in (ROOT / folder).rglob("*"):
        if "__pycache__" in path.parts:
            continue
        if path.is_dir():
            names.add(path.name + "/")
        elif path.suffix in (".py", ".sh") and path.name not in ("__init__.py", "__main__.py", "main.py"):
            names.add(path.name)
    return names


def test_the_layout_names_every_top_level_folder_and_nothing_else():
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and not ignored(p.name)}
    named = set(FOLDER.findall("".join(layout().values())))
    assert folders <= named, f"the README's layout leaves out {sorted(folders - named)}"
    assert set(layout()) <= folders, f"the README's layout names {sorted(set(layout()) - folders)}, which are not there"


@pytest.mark.parametrize("folder", CODE)
def test_the_layout_names_every_module_of_a_code_folder_and_only_those(folder):
    text = layout()[folder]
    named = {f"{name}/" for name in FOLDER.findall(text)} - {f"{folder}/"} | set(MODULE.findall(text))
    there = present(folder)
    assert there <= named, f"the README's layout of {folder}/ leaves out {sorted(there - named)}"
    assert named <= there, f"the README's layout of {folder}/ names {sorted(named - there)}, which are not there"


def consumed() -> dict[str, set[str]]:
    """Per subscriber, the event types its Triggers route to it (short names; a PingSource's tick as PING)."""
    types: dict[str, set[str]] = {}
    for r in routes.load():
        exact = {k: v for f in r.filters if "exact" in f for k, v in f["exact"].items()}
        types.setdefault(r.subscriber, set()).add(exact["type"].removeprefix("com.mindspace."))
    return types


def stage_table() -> dict[str, str]:
    """The README's stage table (`| stage | consumes | …`): each stage's `consumes` cell."""
    table = section("How it works").split("\n| stage | consumes |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|")[1:-1] for line in table.splitlines()[2:]]
    return {cells[0].strip(): cells[1] for cells in rows}


def test_the_stage_table_says_what_the_triggers_route_to_each_stage():
    table, triggers = stage_table(), consumed()
    assert set(table) == {p.name for p in (ROOT / "functions").iterdir() if (p / "main.py").exists()}
    sinks = {r.delivery.dead_letter for r in routes.load()}
    for stage, cell in table.items():
        said = set(re.findall(rf"`({EVENT})`", cell)) | ({PING} if "PingSource" in cell else set())
        if stage in sinks:  # the dead-letter sink: no Trigger, whatever the broker gave up on
            assert stage not in triggers and not said, (stage, cell)
        else:
            assert said == triggers.get(stage, set()), f"README says {stage} consumes {said}; the Triggers route " \
                                                       f"{triggers.get(stage)}"


def test_what_the_diagram_says_a_stage_consumes_is_routed_to_it():
    diagram = section("How it works").split("```\n", 2)[1]
    claims = []
    for types, stage in re.findall(rf"((?:{EVENT})(?: \| {EVENT})*) ──▶ ([a-z]+)", diagram):
        claims += [(t, stage) for t in types.split(" | ")]
    claims += [(t, stage) for stage, t in re.findall(rf"([a-z]+)(?: \([^)]*\))? ◀── ({EVENT})", diagram)]
    triggers, stages = consumed(), stage_table()
    claims = [(t, s) for t, s in claims if s in stages]
    assert len(claims) >= 6, claims  # the parsing still finds the diagram's arrows
    wrong = [(t, s) for t, s in claims if t not in triggers.get(s, set())]
    assert not wrong, f"the README's diagram routes {wrong}, which no Trigger does"
