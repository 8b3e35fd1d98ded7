"""CloudEvents on the wire, the one module that knows the SDK (cloudevents 1.x, which
functions-framework 3.10 pins). Moving to 2.x (`cloudevents.core.bindings.http`) touches only this file.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

from cloudevents.conversion import to_binary, to_dict, to_structured
from cloudevents.exceptions import GenericException
from cloudevents.http import CloudEvent, from_dict, from_http

from events.catalogue import SOURCE, EventData, FileEvent

__all__ = ["CloudEvent", "MalformedEvent", "make", "decode", "binary", "structured", "as_dict", "from_json"]


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
    return CloudEvent(attrs, data.model_dump(mode="json"))


def ping(name: str, data: str, extensions: dict[str, str], namespace: str = "local") -> CloudEvent:
    """The event a Knative PingSource sends: its type and source are fixed by Knative."""
    attrs = {"type": "dev.knative.sources.ping", "source": f"/apis/v1/namespaces/{namespace}/pingsources/{name}",
             "id": str(uuid.uuid4()), "datacontenttype": "application/json", **extensions}
    return CloudEvent(attrs, json.loads(data) if data else None)


def decode(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """A CloudEvent from an HTTP request in binary or structured mode, or MalformedEvent."""
    try:
        event = from_http(dict(headers), body)
    except (GenericException, ValueError, TypeError) as e:
        raise MalformedEvent(f"not a CloudEvent: {e}") from e
    if isinstance(event.data, (bytes, str)):
        try:
            event.data = json.loads(event.data)
        except ValueError as e:
            raise MalformedEvent(f"event data is not JSON: {e}") from e
    return event


def binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    return to_binary(event)


def structured(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    return to_structured(event)


def as_dict(event: CloudEvent) -> dict:
    return to_dict(event)


def from_json(d: dict) -> CloudEvent:
    return from_dict(d)
