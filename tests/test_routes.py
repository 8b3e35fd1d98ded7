"""The catalogue, the Triggers and the functions agree: every consumed event type has a route, every
Trigger names a real function that consumes what it is sent, and the broker reads what Knative reads."""
from __future__ import annotations

import importlib
from enum import Enum

import pytest

from events import catalogue, routes
from events.catalogue import CATALOGUE, Category, FileUploaded
from local.stack import function_names

ROUTES = routes.load()
# Importing a stage must not load a model: cold starts stay short.
STAGES = {n: importlib.import_module(f"functions.{n}.main").handle.stage for n in function_names()}


def variants(t: type) -> list[dict]:
    """The attributes an event of type t can carry: one set per value of each enum extension."""
    out = [{"type": t.type}]
    for ext, field in t.extensions.items():
        kind = t.model_fields[field].annotation
        if isinstance(kind, type) and issubclass(kind, Enum):
            out = [a | {ext: v.value} for a in out for v in kind]
    return out


def test_every_event_a_stage_must_consume_has_a_route():
    for t in CATALOGUE.values():
        for attrs in variants(t) if not (t.outcome or t.announcement) else []:
            assert any(r.matches(attrs) for r in ROUTES), f"no Trigger for {attrs}"


def test_every_upload_goes_to_exactly_one_extractor():
    for attrs in variants(FileUploaded):
        assert len([r for r in ROUTES if r.matches(attrs)]) == 1, attrs


def test_every_trigger_names_a_function_that_consumes_what_it_is_sent():
    for r in ROUTES:
        assert r.subscriber in STAGES, f"Trigger {r.name} names no function: {r.subscriber}"
        consumes = STAGES[r.subscriber].consumes
        sent = [t for t in CATALOGUE.values() if any(r.matches(a) for a in variants(t))]
        assert sent, f"Trigger {r.name} matches no catalogued event type"
        assert all(t in consumes for t in sent), f"{r.subscriber} does not consume all of {sent}"
        assert r.delivery.dead_letter in STAGES, f"{r.name}'s dead-letter sink is no function"


def test_every_function_is_reached():
    reached = {r.subscriber for r in ROUTES} | {r.delivery.dead_letter for r in ROUTES}
    assert set(STAGES) <= reached


def test_extension_attributes_follow_the_cloudevents_naming_rule():
    with pytest.raises(TypeError):
        class Bad(catalogue.FileEvent):
            type = "com.mindspace.test.bad"
            extensions = {"media_Kind": "user_id"}


def test_uploads_carry_their_category_for_triggers():
    e = FileUploaded(file_id="00000000-0000-0000-0000-000000000001", user_id="u", blob_uri="file:///x",
                     filename="a", media_type="image/png", category=Category.image, size=1, sha256="0" * 64)
    from events import wire

    ce = wire.make(e, "api")
    assert ce["category"] == "image" and ce["subject"] == str(e.file_id)
    assert set(wire.as_dict(ce)["data"]) >= {"file_id", "blob_uri"}  # a reference, never the bytes


@pytest.mark.parametrize("expr,attrs,expected", [
    ({"exact": {"type": "a", "category": "text"}}, {"type": "a", "category": "text"}, True),
    ({"exact": {"type": "a"}}, {"type": "b"}, False),
    ({"prefix": {"type": "com.mindspace."}}, {"type": "com.mindspace.x"}, True),
    ({"suffix": {"type": ".uploaded"}}, {"type": "com.mindspace.file.uploaded"}, True),
    ({"any": [{"exact": {"category": "image"}}, {"exact": {"category": "pdf"}}]}, {"category": "pdf"}, True),
    ({"all": [{"exact": {"type": "a"}}, {"not": {"exact": {"category": "pdf"}}}]}, {"type": "a", "category": "pdf"},
     False),
    ({"exact": {"category": "text"}}, {"type": "a"}, False),
])
def test_trigger_filter_dialects(expr, attrs, expected):
    assert routes.Route("r", "s", (expr,)).matches(attrs) is expected


def test_backoff_follows_knatives_formula():
    exp = routes.Delivery(backoff_policy="exponential", backoff_delay=0.5)
    lin = routes.Delivery(backoff_policy="linear", backoff_delay=0.5)
    assert [exp.backoff(n) for n in range(3)] == [1.0, 2.0, 4.0]
    assert [lin.backoff(n) for n in range(3)] == [0.5, 1.0, 1.5]
    r = next(r for r in ROUTES if r.subscriber == "embed")
    assert r.delivery.timeout == 300 and r.delivery.retry >= 1
