"""docs/scale.md is the capacity model worked out from the figures of the last benchmark run (docs/results.json):
the document says what bench/capacity.py makes of them, and names its check against the local stack."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import capacity  # noqa: E402


def test_the_capacity_model_is_the_one_the_figures_give():
    assert (ROOT / "docs" / "scale.md").read_text() == capacity.render(capacity.load()) + "\n", \
        "docs/scale.md is stale: run .venv/bin/python bench/capacity.py"


def test_the_model_sizes_the_stages_that_do_the_work_for_each_number_of_users():
    benches = capacity.load()
    plans = [capacity.plan(benches, n) for n in capacity.USERS]
    for plan in plans:
        assert {"api", "extract", "ocr", "transcribe", "embed", "tag", "cluster", "suggest"} <= set(plan["replicas"])
    assert [p["nodes"] for p in plans] == sorted(p["nodes"] for p in plans)  # more users, no fewer nodes
