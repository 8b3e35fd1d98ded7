"""Traces across events: one upload is one trace, from the API's request span through every stage's
span, carried from event to event in the CloudEvents distributed-tracing extension (traceparent)."""
from __future__ import annotations

import time
import uuid

from events import wire
from events.catalogue import FileUploaded
from shared import tracing

NOTE = (b"# Garden plan\n\nPlant the tomatoes next Friday at 3pm, beside the basil and the marigolds. "
        b"The greenhouse needs a new hinge; ask Anna at the hardware store in Leeds.\n")
STAGES = {"extract", "embed", "tag", "suggest", "cluster"}  # what a note passes through


def test_one_upload_is_one_trace_through_every_stage(stack, user, otlp):
    r = user.upload("garden-trace.md", NOTE)
    assert r.status_code == 201, r.text
    file_id = r.json()["id"]
    assert user.wait(file_id)["status"] == "ready"

    deadline = time.monotonic() + 60  # spans are exported in batches, shortly after they end
    while True:
        stage_spans = [s for s in list(otlp.spans) if s["attributes"].get("mindspace.file_id") == file_id]
        if {s["service"] for s in stage_spans} >= STAGES or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert {s["service"] for s in stage_spans} >= STAGES, stage_spans
    trace_ids = {s["trace_id"] for s in stage_spans}
    assert len(trace_ids) == 1, f"the stages' spans are in {len(trace_ids)} traces"

    spans = otlp.trace(trace_ids.pop())
    roots = [s for s in spans.values() if not s["parent_id"]]
    assert [(s["service"], s["name"]) for s in roots] == [("api", "POST /v1/files")]  # the upload began it
    for span in stage_spans:
        assert span["name"] == span["service"]  # named after its stage
        assert span["attributes"]["mindspace.stage"] == span["service"]
        assert span["attributes"]["cloudevents.event_type"].startswith("com.mindspace.")
        chain, s = [span["service"]], span
        while s["parent_id"]:
            assert s["parent_id"] in spans, f"{chain}: parent {s['parent_id']} was not exported"
            s = spans[s["parent_id"]]
            chain.append(s["service"])
        assert s is roots[0], chain  # every stage's chain of parents ends at the API's request span


def _event(**extensions) -> wire.CloudEvent:
    data = FileUploaded(file_id=uuid.uuid4(), user_id="u", blob_uri="file:///x", filename="a.md",
                        media_type="text/markdown", category="text", size=1, sha256="0" * 64)
    event = wire.make(data, "api")
    for k, v in extensions.items():
        event[k] = v
    return event


def test_the_trace_context_survives_the_wire_and_passes_through_without_a_collector():
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    received = wire.decode(*wire.binary(_event(traceparent=parent, tracestate="vendor=1")))
    assert received["traceparent"] == parent and received["tracestate"] == "vendor=1"
    assert wire.from_json(wire.as_dict(received))["traceparent"] == parent  # as the broker queues it
    # No collector in this process: no SDK, no spans; the incoming context still goes on to the next event.
    with tracing.stage_span("extract", received):
        emitted = tracing.inject(_event())
    assert emitted["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert "traceparent" not in tracing.inject(_event())  # outside any trace, nothing is made up
