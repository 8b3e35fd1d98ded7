"""The API keeps the contract its OpenAPI document states: schemathesis generates requests from the
running stack's /openapi.json, valid and invalid, and runs every one of its checks on each answer: no
5xx, only declared statuses, bodies and headers as declared, invalid data refused, valid data accepted,
405 with `Allow` for an undeclared method, 401 when the credentials are left out. Its examples, coverage
and fuzzing phases try each operation alone; its stateful phase follows the document's links from the
routes that make a file, a reminder or a device (and the lists of files, reminders and clusters) to the
routes that take their ids, and with the stateful checks too (what was made can be read, what was
deleted is gone). Bounded: a few examples per operation, a few dozen short scenarios."""
from __future__ import annotations

import os
from collections import Counter

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import Flaky
from schemathesis import checks

from api.app import app
from shared.problems import MEDIA_TYPE

# Generated from the document the API builds; the first test checks that the stack serves that very one.
schema = schemathesis.openapi.from_dict(app.openapi())
schema.config.update(headers={"Authorization": "Bearer dev:contract"})
# The stateful phase follows the document's own links, not ones schemathesis infers: they are the contract.
schema.config.phases.stateful.inference.algorithms = []
EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", 8))  # per operation and phase; more for a deeper run
SCENARIOS = int(os.environ.get("CONTRACT_SCENARIOS", 150))  # stateful runs, each a chain of linked calls
# What a JSON schema cannot say, a route checks itself: a request of the right shape may still be 422.
SEMANTIC = {
    "POST /v1/files": "an empty file",
    "POST /v1/reminders": "a due time in the past, a rule RFC 5545 does not allow, an unknown time zone",
    "PATCH /v1/reminders/{reminder_id}": "the same",
    "PUT /v1/settings": "an unknown time zone",
    "POST /v1/captures": "a URL that is not http(s) with a host, a shared text that holds none",
    "POST /v1/imports": "an empty archive",
}
# The ones that answer the fuzzer's user 403 or 409 whatever it sends: operators' routes, and a change to a
# reminder that is done or past (the stateful phase makes such reminders).
REFUSED = {"GET /v1/admin/jobs", "GET /v1/admin/dead-letters", "POST /v1/admin/dead-letters/replay"}


def validate(case, response, **kwargs) -> None:
    """Every check of schemathesis, less the two that cannot hold (README, "the API contract"), and ours:
    every error is problem details, every answer carries the safe headers."""
    excluded = [checks.positive_data_acceptance] if response.status_code == 422 and case.operation.label in SEMANTIC \
        else []
    # Every multipart part is bytes: a "file" of 42 is a 2-byte file.
    if case.operation.label in ("POST /v1/files", "POST /v1/imports"):
        excluded.append(checks.negative_data_rejection)
    case.validate_response(response, excluded_checks=excluded, **kwargs)
    headers = {name: values[0] for name, values in response.headers.items()}
    if response.status_code >= 400:  # every error is problem details
        assert headers["content-type"] == MEDIA_TYPE
        body = response.json()
        assert body["status"] == response.status_code and body["title"] and body["detail"]
    assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-store"


def test_the_stack_serves_this_document(stack):
    assert httpx.get(f"{stack.api_url}/openapi.json").json() == app.openapi()


def test_every_body_refuses_fields_it_does_not_know():
    """One rule for every request body, in the document as in the server: an unknown field is a 422
    (`additionalProperties: false`), never silently dropped."""
    doc = app.openapi()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                body = doc["components"]["schemas"][media["schema"]["$ref"].rsplit("/", 1)[1]]
                assert body.get("additionalProperties") is False, f"{method.upper()} {path}"


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_contract(case, stack):
    validate(case, case.call(base_url=stack.api_url))


def test_the_stateful_phase_follows_every_link_and_reaches_every_route(stack, sql):
    """Every operation is called in the stateful phase, and every route that takes an id answers 2xx
    there: it was reached with an id that a link carried from the answer that made or listed it."""
    user = "contract-stateful"
    auth = {"Authorization": f"Bearer dev:{user}"}
    answered: Counter[tuple[str, int]] = Counter()
    failures: list[BaseException] = []
    scenarios = 0

    class Scenarios(schema.as_state_machine()):
        def setup(self):
            # Each scenario starts with a cluster and a reminder to list and follow: clusters come from the
            # cluster stage once a user has a few alike files, and the fuzzer's files are noise; a reminder
            # it makes needs a due time in the future, a real zone and a valid rule all at once, which it
            # rarely draws.
            sql("INSERT INTO users (id) VALUES (%s) ON CONFLICT DO NOTHING", user)
            sql("INSERT INTO clusters (user_id, label) SELECT %s, 'seeded' WHERE NOT EXISTS "
                "(SELECT 1 FROM clusters WHERE user_id = %s)", user, user)
            if not sql("SELECT 1 FROM reminders WHERE user_id = %s AND status = 'scheduled'", user):
                assert httpx.post(f"{stack.api_url}/v1/reminders", headers=auth, json={
                    "title": "seeded", "due_at": "2099-01-01T09:00:00Z"}).status_code == 201

        def teardown(self):
            nonlocal scenarios
            scenarios += 1

        def get_call_kwargs(self, case):
            return {"base_url": stack.api_url, "headers": auth}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            answered[case.operation.label, response.status_code] += 1
            try:
                validate(case, response, transport_kwargs=kwargs or None, recorder=self.recorder)
            except BaseException as e:
                failures.append(e)
                raise

    # Which routes the derandomized scenarios reach depends on the set of operations: after adding routes,
    # chains of 8 steps still reached every one; if a route goes unreached, try other lengths or more
    # scenarios (CONTRACT_SCENARIOS) before suspecting the route.
    # As schemathesis's own runner does: generation only (replaying a scenario meets a server whose state
    # has moved on, which Hypothesis calls flaky), and another suite after such a replay. Derandomized: the
    # same scenarios on every run, so that what they reach does not vary (CONTRACT_SCENARIOS for more).
    for _ in range(5):
        try:
            Scenarios.run(settings=settings(phases=[Phase.generate], max_examples=SCENARIOS - scenarios,
                                            stateful_step_count=8, derandomize=True, database=None,
                                            deadline=None, suppress_health_check=list(HealthCheck)))
        except Flaky:
            pass
        assert not failures, failures[0]
        if scenarios >= SCENARIOS:
            break
    with_ids = {op.ok().label for op in schema.get_all_operations() if "{" in op.ok().path}
    reached = {label for label, status in answered if status < 300}
    assert with_ids <= reached, f"never answered 2xx in {scenarios} scenarios: {sorted(with_ids - reached)}; " \
                                f"the answers: {sorted(answered.items())}"
