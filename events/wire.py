"""CloudEvents on the wire, the one module that knows the SDK (cloudevents 1.x, which
functions-framework 3.10 pins). Moving to 2.x (`cloudevents.core.bindings.http`) touches only this file.
"""
from __future__ import annotations

import json
import string
import threading
import uuid
from collections.abc import Mapping
from urllib.parse import quote, unquote

import httpx
from cloudevents.conversion import to_binary, to_structured
from cloudevents.exceptions import GenericException
from cloudevents.http import CloudEvent, from_http

from events.catalogue import SOURCE, EventData, FileEvent

__all__ = ["CloudEvent", "MalformedEvent", "make", "decode", "binary", "as_dict", "from_json", "send"]


BATCH = "application/cloudevents-batch"
STRUCTURED = "application/cloudevents"
# What a ce- header value may carry as it is: printable ASCII but % and the double quote.
HEADER_SAFE = "".join(c for c in string.printable if c not in '%"\r\n\t\x0b\x0c')


class MalformedEvent(ValueError):
    pass


def make(data: EventData, producer: str, id: str | None = None) -> CloudEvent:
    attrs = {
        "type": data.type,
        "source": f"{SOURCE}/{producer}",
        "id": id or str(uuid.uuid4()),
        "datacontenttype": "application/json",
        **data.extension_values(),
    }
    if isinstance(data, FileEvent):
        attrs["subject"] = str(data.file_id)
    if user := getattr(data, "user_id", None):
        # The CloudEvents partitioning extension: the Kafka broker keys its record by it, so one user's events
        # share a partition and an `ordered` Trigger hands them over in order (README, "A durable broker").
        attrs["partitionkey"] = user
    return CloudEvent(attrs, data.model_dump(mode="json"))


def ping(name: str, data: str, extensions: dict[str, str], namespace: str = "local") -> CloudEvent:
    """The event a Knative PingSource sends: its type and source are fixed by Knative."""
    attrs = {"type": "dev.knative.sources.ping", "source": f"/apis/v1/namespaces/{namespace}/pingsources/{name}",
             "id": str(uuid.uuid4()), "datacontenttype": "application/json", **extensions}
    return CloudEvent(attrs, json.loads(data) if data else None)


def decode(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """A CloudEvent from an HTTP request in binary or structured mode, or MalformedEvent. Data of a
    JSON content type is parsed; any other data (text, XML, bytes, `data_base64`) stays as it came:
    whether it is understood is for the subscriber to say, not the transport."""
    headers = {k.lower(): v for k, v in headers.items()}
    if headers.get("content-type", "").startswith(BATCH):
        raise MalformedEvent("batched mode (application/cloudevents-batch+json) is not accepted: send one "
                             "event per request")
    try:
        # The HTTP binding percent-encodes ce- header values; one that is not UTF-8 once decoded is refused.
        headers = {k: unquote(v, errors="strict") if k.startswith("ce-") else v for k, v in headers.items()}
        structured = headers.get("content-type", "").startswith(STRUCTURED)
        # Structured mode: the SDK reads `data` (JSON) or `data_base64` (bytes) as they are. Binary mode:
        # the body stays bytes here, and only a JSON content type makes it JSON (a JSON string included).
        event = from_http(headers, body) if structured else from_http(headers, body, data_unmarshaller=_raw)
    except UnicodeDecodeError as e:
        raise MalformedEvent(f"a ce- header's percent-encoding is not UTF-8: {e}") from e
    except (GenericException, ValueError, TypeError) as e:
        raise MalformedEvent(f"not a CloudEvent: {e}") from e
    if not structured and event.data is not None and is_json(event.get("datacontenttype")):
        try:
            event.data = json.loads(event.data) if event.data else None
        except ValueError as e:
            raise MalformedEvent(f"event data is not the JSON its content type says: {e}") from e
    return event


def _raw(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


def is_json(content_type: str | None) -> bool:
    """CloudEvents: data without a content type is JSON; so is application/json and any +json type."""
    media = (content_type or "application/json").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Binary mode, ce- header values percent-encoded as the HTTP binding asks (non-ASCII, %, ")."""
    headers, body = to_binary(event)
    return {k: quote(v, safe=HEADER_SAFE) if k.startswith("ce-") else v for k, v in headers.items()}, body


_client: httpx.Client | None = None
_client_lock = threading.Lock()


def send(url: str, event: CloudEvent, timeout: float = 30) -> None:
    """POST an event in binary mode (to a broker, K_SINK); an HTTP error raises. One client per process,
    made on first use (after tracing instruments httpx): `httpx.post` builds a client, its TLS context
    and a connection anew each call, which took two thirds of the API's and a stage's CPU under load."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = httpx.Client()
    headers, body = binary(event)
    _client.post(url, headers=headers, content=body, timeout=timeout).raise_for_status()


def as_dict(event: CloudEvent) -> dict:
    """The event as structured-mode JSON (binary data as `data_base64`), safe to store and queue."""
    return json.loads(to_structured(event)[1])


def from_json(d: dict) -> CloudEvent:
    return from_http({"content-type": "application/cloudevents+json"}, json.dumps(d).encode())
