"""Structured logs: one JSON object per line with the ids of the event in hand, the standard library's
records included, and no secret."""
from __future__ import annotations

import io
import json
import logging
import uuid
from datetime import datetime, timedelta

import pytest
import structlog

from events import wire
from events.catalogue import FileUploaded
from shared import tracing
from shared.observability import bound, setup_logging

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def json_lines():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging("extract", "INFO", "json")
    out = io.StringIO()
    next(h for h in root.handlers if h.get_name() == "mindspace").setStream(out)  # instead of stderr
    yield lambda: [json.loads(line) for line in out.getvalue().splitlines()]
    root.handlers[:], root.level = saved
    structlog.reset_defaults()


def _event() -> wire.CloudEvent:
    data = FileUploaded(file_id=uuid.uuid4(), user_id="u", blob_uri="file:///x", filename="a.md",
                        media_type="text/markdown", category="text", size=1, sha256="0" * 64)
    event = wire.make(data, "api")
    event["traceparent"] = f"00-{TRACE}-00f067aa0ba902b7-01"
    return event


def test_a_json_line_carries_the_ids_of_the_event_in_hand(json_lines):
    event = _event()
    with tracing.stage_span("extract", event), bound(event):
        logging.getLogger("mindspace.stage").info("read %d pages of %s", 3, "a.pdf")
        structlog.get_logger("mindspace.stage").warning("slow", seconds=2.5)
    logging.getLogger("mindspace.stage").info("between events")
    during, native, after = json_lines()
    assert list(during)[:4] == ["time", "level", "function", "message"]
    assert during["time"].endswith("Z") and datetime.fromisoformat(during["time"]).utcoffset() == timedelta(0)
    assert during | {"time": None} == {
        "time": None, "level": "info", "function": "extract", "message": "read 3 pages of a.pdf",
        "logger": "mindspace.stage", "file_id": event["subject"], "event_id": event["id"],
        "event_type": "com.mindspace.file.uploaded", "trace_id": TRACE}
    assert native["level"] == "warning" and native["seconds"] == 2.5 and native["trace_id"] == TRACE
    assert not {"file_id", "event_id", "event_type", "trace_id"} & set(after)  # cleared with the event


def test_a_failure_is_one_line_with_its_traceback(json_lines):
    try:
        raise ValueError("no pages")
    except ValueError:
        logging.getLogger("mindspace.stage").exception("extract failed")
    [line] = json_lines()
    assert line["level"] == "error" and "ValueError: no pages" in line["exception"]


def test_no_secret_reaches_a_log_line(json_lines):
    log = logging.getLogger("mindspace.db")
    log.warning("cannot connect to %s", "postgresql://mindspace:s3cr3t-pw@db:5432/mindspace")
    log.info("Authorization: Bearer eyJhbGciOi.payload.sig")
    text = json.dumps(json_lines())
    assert "s3cr3t-pw" not in text and "eyJhbGciOi" not in text
    assert "postgresql://mindspace:***@db:5432/mindspace" in text
