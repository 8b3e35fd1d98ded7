"""The local broker honours the CloudEvents HTTP binding and Knative's broker contract, as a Knative
Broker does: any valid CloudEvent is accepted whatever its data, in binary and structured mode; header
values are percent-decoded; an event over the cap is refused and never queued; batches get a clear 4xx.
The requests are built here from the binding spec, not with our own encoder."""
from __future__ import annotations

import base64
import json

import httpx
import pytest

from events import wire

BASE = {"ce-specversion": "1.0", "ce-type": "com.example.unrouted", "ce-source": "/test", "ce-id": "b-1"}
STRUCTURED = {"content-type": "application/cloudevents+json"}


def event(**attrs) -> dict:
    return {"specversion": "1.0", "type": "com.example.unrouted", "source": "/test", "id": "s-1"} | attrs


# --- the wire format alone (no stack) --------------------------------------------------------------

@pytest.mark.parametrize("content_type,body,data", [
    ("text/plain", b"hello", b"hello"),
    ("application/xml", b"<note>hi</note>", b"<note>hi</note>"),
    ("application/octet-stream", b"\x00\xff\x10", b"\x00\xff\x10"),
    ("application/json", b'{"a": 1}', {"a": 1}),
    ("application/vnd.example+json", b'[1, 2]', [1, 2]),
])
def test_binary_mode_takes_any_data_and_parses_only_json(content_type, body, data):
    assert wire.decode(BASE | {"content-type": content_type}, body).data == data


def test_structured_mode_with_data_base64_survives_a_round_trip():
    e = wire.decode(STRUCTURED, json.dumps(event(datacontenttype="image/png",
                                                 data_base64=base64.b64encode(b"\x89PNG").decode())).encode())
    assert e.data == b"\x89PNG"
    assert wire.from_json(wire.as_dict(e)).data == b"\x89PNG"  # as queued and delivered again


def test_header_values_are_percent_decoded_and_encoded():
    e = wire.decode(BASE | {"ce-note": "caf%C3%A9%20100%25"}, b"")
    assert e["note"] == "café 100%"
    headers, _ = wire.binary(e)
    assert headers["ce-note"] == "caf%C3%A9 100%25" and wire.decode(headers, b"")["note"] == "café 100%"
    with pytest.raises(wire.MalformedEvent, match="UTF-8"):
        wire.decode(BASE | {"ce-note": "%FF%FE"}, b"")


def test_json_data_that_is_not_json_and_batches_are_malformed():
    with pytest.raises(wire.MalformedEvent, match="JSON"):
        wire.decode(BASE | {"content-type": "application/json"}, b"{nope")
    with pytest.raises(wire.MalformedEvent, match="batched"):
        wire.decode({"content-type": "application/cloudevents-batch+json"}, json.dumps([event()]).encode())


def test_every_trigger_with_a_dead_letter_sink_has_a_route_to_it_with_its_retries():
    """The local broker's routes (shared/local_queue.py, which the API's jobs view reads too): each
    Trigger's own, and one to its dead-letter sink, retried as the Trigger is and with no sink behind."""
    from events import routes
    from shared import local_queue

    triggers = routes.load()
    by_name = local_queue.delivery_routes(triggers)
    for t in triggers:
        assert by_name[t.name] is t
        if t.delivery.dead_letter:
            to_sink = by_name[local_queue.to_sink(t.name)]
            assert to_sink.subscriber == t.delivery.dead_letter and to_sink.delivery.retry == t.delivery.retry
            assert to_sink.delivery.dead_letter is None and not to_sink.filters
    assert len(by_name) == len(triggers) + sum(bool(t.delivery.dead_letter) for t in triggers)


# --- the running broker ----------------------------------------------------------------------------

def queued(sql) -> int:
    return sql("SELECT count(*) AS n FROM procrastinate_jobs")[0]["n"]


@pytest.mark.parametrize("headers,body", [
    (BASE | {"content-type": "text/plain"}, b"a plain note"),
    (BASE | {"content-type": "application/xml"}, b"<a/>"),
    (BASE | {"content-type": "application/octet-stream"}, bytes(range(256))),
    (BASE | {"ce-note": "caf%C3%A9"}, b""),
    (STRUCTURED, json.dumps(event(datacontenttype="application/octet-stream", data_base64="AAEC")).encode()),
    (STRUCTURED, json.dumps(event(data="text data")).encode()),
])
def test_the_broker_accepts_any_valid_cloudevent(stack, headers, body):
    r = httpx.post(stack.broker_url, headers=headers, content=body, timeout=30)
    assert r.status_code == 202, r.text


@pytest.mark.parametrize("headers,body,status,says", [
    (BASE | {"ce-note": "%C3%28"}, b"", 400, "UTF-8"),
    ({"content-type": "application/cloudevents-batch+json"}, json.dumps([event()]).encode(), 400, "batched"),
    ({"content-type": "text/plain"}, b"no attributes at all", 400, "not a CloudEvent"),
])
def test_the_broker_refuses_what_is_no_single_cloudevent(stack, headers, body, status, says):
    r = httpx.post(stack.broker_url, headers=headers, content=body, timeout=30)
    assert r.status_code == status and says in r.text, r.text


def test_an_event_over_the_cap_is_refused_and_never_queued(stack, sql):
    before = queued(sql)
    big = json.dumps(event(type="com.mindspace.text.extracted", data={"x": "y" * 300_000})).encode()
    r = httpx.post(stack.broker_url, headers=STRUCTURED, content=big, timeout=30)
    assert r.status_code == 413 and "reference" in r.text
    chunked = httpx.post(stack.broker_url, headers=STRUCTURED, content=iter([big[:100_000], big[100_000:]]))
    assert chunked.status_code == 413
    assert queued(sql) == before


def test_every_function_refuses_oversized_and_malformed_events(stack):
    for name, port in stack.function_ports.items():
        url = f"http://127.0.0.1:{port}/"
        big = httpx.post(url, headers=STRUCTURED, content=json.dumps(event(data="y" * 300_000)), timeout=30)
        assert big.status_code == 413, (name, big.text)
        bad = httpx.post(url, headers=STRUCTURED, content=b"{not json", timeout=30)
        assert bad.status_code == 400, (name, bad.text)
        wrong = httpx.post(url, headers=BASE | {"content-type": "text/plain"}, content=b"hello", timeout=30)
        assert wrong.status_code in (400, 422), (name, wrong.text)  # a type it does not take, or not a dead letter
