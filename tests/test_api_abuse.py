"""API abuse: what a curious or hostile client sends gets a clear 4xx as problem details, never a 5xx
and never a hint about someone else's data. Foreign ids, absurd paging, SQL and tsquery syntax in
search, bad tokens of every kind against Firebase verification, and the per-user rate limits."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import httpx
import pytest
from google.auth import crypt, jwt
from test_auth import PROJECT, _key_and_cert, firebase  # noqa: F401  (the loopback certificate server)

from shared.problems import MEDIA_TYPE

from conftest import UPLOAD_LIMIT, in_process


def problem(r: httpx.Response, status: int) -> dict:
    """The answer is `status` as RFC 9457 problem details, with a detail a person can act on."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == MEDIA_TYPE
    body = r.json()
    assert body["type"] == "about:blank" and body["status"] == status and body["title"] and body["detail"]
    return body


# --- someone else's things ------------------------------------------------------------------------

def test_another_users_things_are_404_as_if_they_did_not_exist(user, other_user, sql):
    file_id = user.upload("mine.md", b"# mine\n\nonly mine " + uuid.uuid4().bytes.hex().encode()).json()["id"]
    reminder = user.http.post("/v1/reminders", json={"title": "mine", "due_at": "2099-01-01T09:00:00Z"}).json()
    token = "device-" + uuid.uuid4().hex
    assert user.http.post("/v1/devices", json={"token": token, "platform": "android"}).status_code == 201
    cluster = sql("INSERT INTO clusters (user_id, label) VALUES (%s, 'mine') RETURNING id", user.name)[0]["id"]
    nobody = str(uuid.uuid4())

    for method, path, unknown in [("GET", f"/v1/files/{file_id}", f"/v1/files/{nobody}"),
                                  ("DELETE", f"/v1/files/{file_id}", f"/v1/files/{nobody}"),
                                  ("GET", f"/v1/reminders/{reminder['id']}", "/v1/reminders/999999999"),
                                  ("DELETE", f"/v1/reminders/{reminder['id']}", "/v1/reminders/999999999"),
                                  ("GET", f"/v1/clusters/{cluster}", "/v1/clusters/999999999"),
                                  ("DELETE", f"/v1/devices/{token}", "/v1/devices/no-such-device")]:
        foreign = problem(other_user.http.request(method, path), 404)
        missing = problem(other_user.http.request(method, unknown), 404)
        # The same words as for what does not exist: nothing tells the two apart.
        assert foreign["detail"].split()[:2] == missing["detail"].split()[:2], (foreign, missing)
    r = other_user.http.patch(f"/v1/reminders/{reminder['id']}", json={"title": "theirs now"})
    problem(r, 404)
    r = other_user.http.post("/v1/reminders", json={"title": "x", "due_at": "2099-01-01T09:00:00Z",
                                                    "file_id": file_id})
    assert problem(r, 404)["detail"] == f"no file {file_id}"
    assert other_user.search("only mine", mode="text") == []
    assert other_user.search("mine", mode="text", cluster=cluster) == []

    # All of it still there, unchanged, for its owner.
    assert user.file(file_id)["id"] == file_id
    assert user.http.get(f"/v1/reminders/{reminder['id']}").json()["title"] == "mine"
    assert token in [d["token"] for d in user.http.get("/v1/devices").json()]


# --- paging and ids out of range ------------------------------------------------------------------

HUGE = str(10**30)  # past what PostgreSQL's bigint holds


@pytest.mark.parametrize("path", ["/v1/files", "/v1/notifications", "/v1/reminders", "/v1/tags",
                                  "/v1/search?q=x&mode=text"])
@pytest.mark.parametrize("param,value", [("limit", "-1"), ("limit", "0"), ("limit", HUGE), ("offset", "-1"),
                                         ("offset", HUGE), ("limit", "ten"), ("offset", "1.5")])
def test_absurd_paging_is_422_naming_the_parameter(user, path, param, value):
    body = problem(user.http.get(f"{path}{'&' if '?' in path else '?'}{param}={value}"), 422)
    assert [e["field"] for e in body["errors"]] == [f"query.{param}"] and param in body["detail"]


@pytest.mark.parametrize("path", ["/v1/reminders/0", "/v1/reminders/-1", f"/v1/reminders/{HUGE}",
                                  f"/v1/clusters/{HUGE}", f"/v1/search?q=x&cluster={HUGE}", "/v1/files/not-a-uuid",
                                  "/v1/clusters?sample=-1"], ids=lambda p: p.replace("/", "_"))
def test_ids_out_of_range_are_422(user, path):
    problem(user.http.get(path), 422)


def test_large_pages_within_the_bounds_are_fine(user):
    assert user.http.get("/v1/files", params={"limit": 500, "offset": 1_000_000}).json() == []
    # A search asking for more than SEARCH_LIMIT_MAX gets at most that many.
    assert user.http.get("/v1/search", params={"q": "x", "limit": 1000}).status_code == 200


# --- search syntax ------------------------------------------------------------------------------

HOSTILE_QUERIES = ["'", "''", "\\", "\\'", "&|!():*", "<->", "a <-> b", "zebra:*", "!zebra", "(zebra", "zebra)",
                   "\"unclosed", "' OR 1=1 --", "'; DROP TABLE chunks; --", "$1", "%s", "%(q)s", "{}", "*",
                   "zebra & | ! marmalade", "-", "OR", "\u202e", "x" * 1000]


def test_sql_and_tsquery_syntax_in_search_is_just_text(user):
    word = f"zebra{uuid.uuid4().hex[:6]}"
    ready = user.wait(user.upload("zoo.md", f"# zoo\n\nThe {word} ate marmalade at noon.".encode()).json()["id"])
    assert ready["status"] == "ready"
    for q in HOSTILE_QUERIES + [f"{word}'", f"{word} & marmalade", f"{word}:*", f"'{word}'", f"{word} <-> ate"]:
        for mode in ("text", "hybrid"):
            r = user.http.get("/v1/search", params={"q": q, "mode": mode})
            assert r.status_code == 200, (q, mode, r.text)
    # Metacharacters around the word do not hide it, and the tables are all still there.
    assert [h["file_id"] for h in user.search(f"{word}' & :* (", mode="text")] == [ready["id"]]
    assert [h["file_id"] for h in user.search(word, mode="text")] == [ready["id"]]


@pytest.mark.parametrize("q", ["x" * 1001, "a\x00b", ""], ids=["too-long", "nul", "empty"])
def test_unusable_queries_are_422(user, q):
    body = problem(user.http.get("/v1/search", params={"q": q}), 422)
    assert [e["field"] for e in body["errors"]] == ["query.q"]


def test_nul_characters_anywhere_are_422_not_a_database_error(user):
    problem(user.http.get("/v1/search", params={"q": "x", "tag": "a\x00"}), 422)
    problem(user.http.get("/v1/tags", params={"kind": "\x00"}), 422)
    r = user.http.post("/v1/reminders", json={"title": "a\x00b", "due_at": "2099-01-01T09:00:00Z"})
    assert "NUL" in problem(r, 422)["errors"][0]["message"]
    problem(user.http.post("/v1/devices", json={"token": "x" * 10 + "\x00", "platform": "web"}), 422)
    problem(user.http.delete("/v1/devices/abc%00def"), 422)


# --- every error is problem details -------------------------------------------------------------

def test_errors_everywhere_are_problem_details(stack, user):
    body = problem(httpx.get(f"{stack.api_url}/no/such/route"), 404)
    assert "/docs" in body["detail"]
    r = user.http.put("/v1/files/" + str(uuid.uuid4()))
    problem(r, 405)
    assert r.headers["allow"] == "DELETE, GET"  # every method the path takes, not just the first route's
    problem(user.http.get("/v1/files", headers={"Authorization": "Basic eA=="}), 401)
    problem(user.http.post("/v1/files", files={"file": ("big.bin", b"x" * (UPLOAD_LIMIT + 1))}), 413)
    problem(user.http.post("/v1/devices", content=b"{not json", headers={"content-type": "application/json"}), 422)
    body = problem(user.http.post("/v1/reminders", json={"title": "", "due_at": "tomorrow"}), 422)
    assert {e["field"] for e in body["errors"]} == {"body.title", "body.due_at"}
    # The functions and the broker answer the same shape.
    problem(httpx.post(f"http://127.0.0.1:{stack.function_ports['extract']}/", content=b"{not json",
                       headers={"content-type": "application/cloudevents+json"}), 400)
    problem(httpx.get(f"http://127.0.0.1:{stack.function_ports['extract']}/"), 405)
    problem(httpx.post(stack.broker_url, content=b"{not json",
                       headers={"content-type": "application/cloudevents+json"}), 400)
    r = httpx.put(stack.broker_url)
    problem(r, 405)
    assert "POST" in r.headers["allow"]


def test_every_answer_carries_safe_headers(stack, user):
    for r in (user.http.get("/v1/files"), user.http.get(f"/v1/files/{uuid.uuid4()}"),
              httpx.get(f"{stack.api_url}/v1/files")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"  # private: never kept by a cache
        assert r.headers["referrer-policy"] == "no-referrer"
    assert httpx.get(f"{stack.api_url}/openapi.json").headers["x-content-type-options"] == "nosniff"


# --- tokens: Firebase verification through the API ------------------------------------------------

def _unsigned(header: dict, claims: dict, signature: bytes = b"") -> str:
    def part(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    return ".".join(part(x) for x in (json.dumps(header).encode(), json.dumps(claims).encode(), signature))


def test_bad_tokens_are_401_with_the_reason(stack, firebase):  # noqa: F811
    auth, token = firebase
    now = int(time.time())
    claims = {"iss": f"https://securetoken.google.com/{PROJECT}", "aud": PROJECT, "sub": "alice",
              "iat": now, "exp": now + 3600, "auth_time": now}
    pem_key, _ = _key_and_cert()
    forged = jwt.encode(crypt.RSASigner.from_string(pem_key, key_id="test-kid"), claims).decode()
    # alg "HS256" keyed with the public certificate: the classic algorithm confusion.
    cert = httpx.get(auth.cfg.firebase_certs_url).json()["test-kid"].encode()
    header = {"alg": "HS256", "kid": "test-kid", "typ": "JWT"}
    signing_input = _unsigned(header, claims).rsplit(".", 1)[0].encode()
    confused = _unsigned(header, claims, hmac.new(cert, signing_input, hashlib.sha256).digest())
    bad = {
        "expired": token(exp=now - 600, iat=now - 4000),
        "forged (another key)": forged,
        "wrong audience": token(aud="another-project"),
        "wrong issuer": token(iss="https://securetoken.google.com/another-project"),
        "alg none": _unsigned({"alg": "none", "kid": "test-kid", "typ": "JWT"}, claims),
        "alg HS256": confused,
        "no subject": token(sub=""),
        "not a JWT": "not.a.jwt",
        "a development token": "dev:alice",
    }
    with in_process(stack, auth_mode="firebase", firebase_project_id=PROJECT,
                    firebase_certs_url=auth.cfg.firebase_certs_url) as client:
        assert client.get("/v1/files", headers={"Authorization": f"Bearer {token('alice')}"}).status_code == 200
        for what, bearer in bad.items():
            r = client.get("/v1/files", headers={"Authorization": f"Bearer {bearer}"})
            body = problem(r, 401)
            assert r.headers["www-authenticate"] == "Bearer" and "ID token" in body["detail"], what
        for header in ("", "Bearer", "Bearer ", "Basic YWxpY2U6c2VjcmV0", token("alice")):
            problem(client.get("/v1/files", headers={"Authorization": header}), 401)


# --- per-user rate limits -----------------------------------------------------------------------

def test_uploads_and_searches_over_the_limit_get_429_with_retry_after(stack):
    with in_process(stack, rate_limit_uploads="2/minute", rate_limit_searches="3/minute") as client:
        alice, bob = ({"Authorization": f"Bearer dev:{name}-{uuid.uuid4().hex[:6]}"} for name in ("alice", "bob"))
        for i in range(2):
            r = client.post("/v1/files", headers=alice, files={"file": (f"n{i}.md", f"note {i} {uuid.uuid4()}")})
            assert r.status_code == 201, r.text
        r = client.post("/v1/files", headers=alice, files={"file": ("n3.md", b"one too many")})
        assert "RATE_LIMIT_UPLOADS" in problem(r, 429)["detail"]
        assert 1 <= int(r.headers["retry-after"]) <= 60  # when the oldest upload leaves the minute's window
        for _ in range(3):
            assert client.get("/v1/search", headers=alice, params={"q": "note", "mode": "text"}).status_code == 200
        r = client.get("/v1/search", headers=alice, params={"q": "note", "mode": "text"})
        assert "RATE_LIMIT_SEARCHES" in problem(r, 429)["detail"] and 1 <= int(r.headers["retry-after"]) <= 60
        # Per user: someone else is not held back, and what is not limited still answers.
        assert client.get("/v1/search", headers=bob, params={"q": "note", "mode": "text"}).status_code == 200
        assert client.post("/v1/files", headers=bob, files={"file": ("b.md", b"bob's")}).status_code == 201
        assert client.get("/v1/files", headers=alice).status_code == 200
        # An unauthenticated request is refused before it counts against anyone.
        problem(client.get("/v1/search", params={"q": "note"}), 401)
