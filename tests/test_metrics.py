"""The design's metrics on every /metrics after one upload went through (the API, the stages, the local
broker), with bounded label values: stage and function names, outcomes, route templates, never an id."""
from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from events import wire
from events.catalogue import TextExtracted

UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)
EVERYWHERE = {"jobs_processed_total", "job_duration_seconds", "api_request_duration_seconds",
              "file_upload_bytes_total", "model_load_seconds", "events_dead_lettered_total", "cold_starts_total"}


def scrape(url: str) -> tuple[set[str], list]:
    """The metric names a /metrics declares (# TYPE lines, samples or not) and its samples."""
    text = httpx.get(url, timeout=10).raise_for_status().text
    declared = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    declared |= {n + "_total" for n in declared}  # the text format may name a counter without _total
    return declared, [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(samples, name: str, **labels) -> float | None:
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(found) if found else None


def wait_for(url: str, name: str, **labels) -> list:
    deadline = time.monotonic() + 60
    while True:
        _, samples = scrape(url)
        if value(samples, name, **labels):
            return samples
        assert time.monotonic() < deadline, f"no {name} {labels} on {url}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def one_upload(stack):
    """One note through every stage, a search (the API loads its model), a miss, and a malformed
    text.extracted that embed, tag and suggest refuse (so the dead-letter sink counts something)."""
    from conftest import User

    user = User(stack, "metrics-user")
    f = user.upload("lighthouse.md", b"The lighthouse keeper logs every passing ship at dusk.").json()
    assert user.wait(f["id"])["status"] == "ready"
    assert user.search("ships seen from the coast")
    assert user.http.get(f"/v1/files/{uuid.uuid4()}").status_code == 404
    assert user.http.get(f"/no/such/route/{uuid.uuid4()}").status_code == 404
    malformed = wire.from_json({"specversion": "1.0", "type": TextExtracted.type, "source": "/test",
                                "id": f"malformed-{uuid.uuid4()}", "datacontenttype": "application/json",
                                "data": {"not": "a text.extracted"}})
    headers, body = wire.binary(malformed)
    assert httpx.post(f"http://127.0.0.1:{stack.broker_port}/default", headers=headers, content=body).status_code == 202
    return f


def urls(stack) -> dict[str, str]:
    return {"api": f"{stack.api_url}/metrics", "broker": f"http://127.0.0.1:{stack.broker_port}/metrics",
            **{n: f"http://127.0.0.1:{p}/metrics" for n, p in stack.function_ports.items()}}


def test_every_function_and_the_api_declare_the_designs_metrics(stack, one_upload):
    for name, url in urls(stack).items():
        declared, samples = scrape(url)
        assert EVERYWHERE <= declared, (name, EVERYWHERE - declared)
        assert value(samples, "cold_starts_total", function=name) == 1, name  # once per process


def test_the_upload_is_counted_where_it_went(stack, one_upload):
    u = urls(stack)
    _, api = scrape(u["api"])
    assert value(api, "file_upload_bytes_total") >= len(b"The lighthouse keeper logs every passing ship at dusk.")
    assert value(api, "api_request_duration_seconds_count", route="/v1/files", method="POST", status="201") >= 1
    assert value(api, "api_request_duration_seconds_count", route="/v1/files/{file_id}", status="404") >= 1
    assert value(api, "api_request_duration_seconds_count", route="unmatched", status="404") >= 1
    assert value(api, "model_load_seconds_count", model="minilm") == 1  # the query embedder, loaded once
    for stage in ("extract", "embed", "tag", "suggest", "cluster"):
        _, samples = scrape(u[stage])
        assert value(samples, "jobs_processed_total", stage=stage, outcome="ok") >= 1, stage
        assert value(samples, "job_duration_seconds_count", stage=stage) >= 1, stage
    _, embed = scrape(u["embed"])
    assert value(embed, "model_load_seconds_count", model="minilm") == 1
    _, tag = scrape(u["tag"])
    assert value(tag, "model_load_seconds_count", model="spacy") == 1


def test_refusals_and_dead_letters_are_counted_by_stage(stack, one_upload):
    u = urls(stack)
    for stage in ("embed", "tag", "suggest"):
        wait_for(u[stage], "jobs_processed_total", stage=stage, outcome="rejected")
        # The sink names the stage from knativeerrordest (the function's path on the local stack).
        wait_for(u["deadletter"], "events_dead_lettered_total", stage=stage)


def test_the_broker_serves_queue_length_for_every_subscriber(stack, one_upload):
    declared, samples = scrape(urls(stack)["broker"])
    assert "queue_length" in declared
    stages = {s.labels["stage"] for s in samples if s.name == "queue_length"}
    assert {"extract", "ocr", "transcribe", "embed", "tag", "cluster", "suggest", "deadletter"} <= stages
    assert all(s.value >= 0 for s in samples if s.name == "queue_length")


def test_no_label_value_names_a_file_a_user_or_a_raw_path(stack, one_upload):
    for name, url in urls(stack).items():
        _, samples = scrape(url)
        for s in samples:
            for label, v in s.labels.items():
                assert not UUID.search(v), (name, s.name, label, v)
                assert "metrics-user" not in v, (name, s.name, label, v)
            if s.name.startswith("api_request_duration_seconds"):
                route = s.labels["route"]
                assert route == "unmatched" or route in templates(), route


def templates() -> set[str]:
    """The API's route templates: those of its OpenAPI document, and the probes and documents."""
    from api.app import app

    return set(app.openapi()["paths"]) | {"/metrics", "/healthz", "/readyz", "/docs", "/openapi.json"}
