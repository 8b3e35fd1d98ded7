"""The API keeps the contract its OpenAPI document states: schemathesis generates requests from the
running stack's /openapi.json (its examples, coverage and fuzzing phases), valid and invalid, and runs
every one of its checks on each answer: no 5xx, only declared statuses, bodies and headers as
declared, invalid data refused, valid data accepted, 405 with `Allow` for an undeclared method, 401
when the credentials are left out. Bounded: a few examples per operation."""
from __future__ import annotations

import os

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from api.app import app
from shared.problems import MEDIA_TYPE

# Generated from the document the API builds; the first test checks that the stack serves that very one.
schema = schemathesis.openapi.from_dict(app.openapi())
schema.config.update(headers={"Authorization": "Bearer dev:contract"})
EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", 8))  # per operation and phase; more for a deeper run
# What a JSON schema cannot say, a route checks itself: a request of the right shape may still be 422.
SEMANTIC = {
    "POST /v1/files": "an empty file",
    "POST /v1/reminders": "a due time in the past, a rule RFC 5545 does not allow, an unknown time zone",
    "PATCH /v1/reminders/{reminder_id}": "the same",
    "PUT /v1/settings": "an unknown time zone",
}


def test_the_stack_serves_this_document(stack):
    assert httpx.get(f"{stack.api_url}/openapi.json").json() == app.openapi()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_contract(case, stack):
    response = case.call(base_url=stack.api_url)
    excluded = [checks.positive_data_acceptance] if response.status_code == 422 and case.operation.label in SEMANTIC \
        else []
    if case.operation.label == "POST /v1/files":  # every multipart part is bytes: a "file" of 42 is a 2-byte file
        excluded.append(checks.negative_data_rejection)
    case.validate_response(response, excluded_checks=excluded)
    headers = {name: values[0] for name, values in response.headers.items()}
    if response.status_code >= 400:  # every error is problem details
        assert headers["content-type"] == MEDIA_TYPE
        body = response.json()
        assert body["status"] == response.status_code and body["title"] and body["detail"]
    assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-store"
