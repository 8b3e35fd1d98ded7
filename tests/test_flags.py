"""Feature flags (shared/flags.py): FLAGS parsed or refused at start, users split by a stable hash that
takes about the percentage asked for, keeps each user on one side, and only adds users as it grows."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from pydantic import ValidationError

from shared import flags
from shared.config import Settings

USERS = [f"user-{i}" for i in range(1000)]


def share(flag: str, spec: str) -> set[str]:
    return {u for u in USERS if flags.enabled(flag, u, spec)}


def test_the_documented_example_parses():
    assert dict(flags.parse("suggest_reminders=25%,hybrid_search=on")) == {"suggest_reminders": 25.0,
                                                                          "hybrid_search": 100.0}
    assert dict(flags.parse(" hybrid_search = OFF , suggest_reminders=2.5% ")) == {"hybrid_search": 0.0,
                                                                                  "suggest_reminders": 2.5}
    assert dict(flags.parse("")) == {}


@pytest.mark.parametrize(("spec", "says"), [
    ("suggest_reminders=150%", "between 0% and 100%"),
    ("suggest_reminders=-5%", "name=N%"),
    ("suggest_reminders=maybe", "name=on, name=off or name=N%"),
    ("suggest_reminders", "name=on, name=off or name=N%"),
    ("sugest_reminders=on",
     "unknown flag 'sugest_reminders'; known flags: ai_reminder_titles, hybrid_search, suggest_reminders"),
    ("hybrid_search=on,hybrid_search=off", "given twice"),
])
def test_a_malformed_flags_setting_is_refused_at_start_saying_why(spec, says):
    with pytest.raises(ValidationError) as refused:
        Settings(flags=spec)
    assert "FLAGS" in str(refused.value) and says in str(refused.value)


def test_a_flag_not_named_has_its_declared_default():
    assert all(flags.enabled(name, "anyone", "") == default for name, default in flags.DEFAULTS.items())
    with pytest.raises(KeyError, match="not declared"):
        flags.enabled("no_such_flag", "anyone", "")


def test_25_percent_takes_about_a_quarter_of_1000_users_and_the_same_ones_each_time():
    chosen = share("suggest_reminders", "suggest_reminders=25%")
    bound = 4 * math.sqrt(len(USERS) * 0.25 * 0.75)  # four binomial standard deviations: ±55
    assert abs(len(chosen) - 250) < bound, len(chosen)
    assert share("suggest_reminders", "suggest_reminders=25%") == chosen


def test_a_growing_percentage_only_adds_users():
    steps = [share("suggest_reminders", f"suggest_reminders={p}%") for p in (0, 1, 10, 25, 50, 90, 100)]
    assert steps[0] == set() and steps[-1] == set(USERS)
    assert all(a <= b for a, b in zip(steps, steps[1:], strict=False))


@given(st.text(min_size=1, max_size=40), st.floats(0, 100), st.floats(0, 100))
def test_on_at_a_percentage_means_on_at_every_higher_one(user, a, b):
    low, high = sorted((a, b))
    assert not flags.enabled("suggest_reminders", user, f"suggest_reminders={low:.3f}%") or \
        flags.enabled("suggest_reminders", user, f"suggest_reminders={high:.3f}%")


def test_flags_split_users_independently():
    """Two flags at 50% share about a quarter of the users, not the same half."""
    both = share("suggest_reminders", "suggest_reminders=50%") & share("hybrid_search", "hybrid_search=50%")
    assert abs(len(both) - 250) < 4 * math.sqrt(len(USERS) * 0.25 * 0.75), len(both)


def test_each_evaluation_is_counted_by_variant():
    def count(variant: str) -> float:
        return REGISTRY.get_sample_value("feature_flag_evaluations_total",
                                         {"flag": "hybrid_search", "variant": variant}) or 0.0

    on, off = count("on"), count("off")
    flags.enabled("hybrid_search", "u1", "hybrid_search=on")
    flags.enabled("hybrid_search", "u1", "hybrid_search=off")
    flags.enabled("hybrid_search", "u2", "hybrid_search=off")
    assert (count("on") - on, count("off") - off) == (1, 2)


def test_the_suggest_stage_proposes_nothing_for_a_user_the_flag_leaves_out():
    """The stage still emits its outcome event, so the user's file becomes ready all the same; the flag
    is read before the stage touches the database or the text."""
    import uuid

    from events.catalogue import TextExtracted
    from functions.suggest.main import Suggest
    from shared.stage import Context

    event = TextExtracted(file_id=uuid.uuid4(), user_id="left-out", text_uri="blob://nowhere", method="text",
                          chars=12)
    ctx = Context(Settings(flags="suggest_reminders=off"), None, None, None)
    reply = Suggest().handle(event, ctx)
    assert (reply.file_id, reply.user_id, reply.reminders) == (event.file_id, "left-out", 0)
    assert ctx.detail["flag"] == "suggest_reminders off for this user"
