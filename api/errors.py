"""The API's edge: every error as RFC 9457 problem details (shared/problems.py), the statuses each
route declares in the OpenAPI document and the links between its routes, and the headers every answer
carries."""
from __future__ import annotations

import logging
import re
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from psycopg_pool import PoolTimeout
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.routing import Match

from shared.problems import MEDIA_TYPE, Problem, problem

log = logging.getLogger("mindspace.api")

# PostgreSQL's text holds no NUL character: the document says so (a pattern), and such a text is a 422.
NO_NUL = r"^[^\x00]*$"
_WHY = {
    400: "the body cannot be parsed (not JSON, or not multipart form data)",
    409: "the request conflicts with the resource's state",
    412: "a precondition failed (a resumable upload's Tus-Resumable: 1.0.0)",
    415: "the body's Content-Type is not the one this route takes",
    401: "send 'Authorization: Bearer <Firebase ID token>'",
    404: "no such resource, or it is not yours",
    413: "the request is over the size limit",
    422: "the request is not valid; see errors",
    429: "too many requests; wait for Retry-After seconds",
    503: "unavailable for a moment; try again after Retry-After seconds",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "seconds until the limit frees", "schema": {"type": "integer"}}},
    503: {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error statuses a route answers, for `responses=`: each a Problem (its media type is set in
    `openapi` below)."""
    return {s: {"model": Problem, "description": _WHY[s]} | ({"headers": _HEADERS[s]} if s in _HEADERS else {})
            for s in statuses}


def link(method: str, path: str, pointer: str) -> dict[str, Any]:
    """An OpenAPI link to the operation `method path`, whose path parameter is taken from the answer's body
    at `pointer` (`/id`, `/0/id` in a list): how a client, or a fuzzer's stateful phase, goes from the route
    that makes or lists a resource to the routes that take its id."""
    (parameter,) = re.findall(r"{(\w+)}", path)
    escaped = path.replace("~", "~0").replace("/", "~1")  # a JSON pointer's escaping (RFC 6901)
    return {"operationRef": f"#/paths/{escaped}/{method.lower()}",
            "parameters": {parameter: f"$response.body#{pointer}"}}


def answer(status: int, detail: str, headers: dict | None = None, **extra) -> JSONResponse:
    return JSONResponse(problem(status, detail, **extra), status_code=status, headers=headers,
                        media_type=MEDIA_TYPE)


def _allowed(request: Request) -> str:
    """Every method the path takes, in every router the app includes: FastAPI makes one route per method,
    and Starlette's own 405 names only the first route whose path matched."""
    methods = {m for r in iter_route_contexts(request.app.router.routes)
               if r.methods and r.matches(request.scope)[0] != Match.NONE for m in r.methods}
    return ", ".join(sorted(methods))


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    headers = dict(exc.headers or {})
    detail = exc.detail
    if exc.status_code == 404 and detail == "Not Found":  # no route: Starlette's own
        detail = f"no route {request.url.path}; the routes are listed at /docs"
    elif exc.status_code == 405:
        headers["Allow"] = _allowed(request)
        detail = f"{request.method} is not allowed on {request.url.path}; it takes {headers['Allow']}"
    return answer(exc.status_code, str(detail), headers)


def _message(error: dict) -> str:
    if error.get("ctx", {}).get("pattern") == NO_NUL:
        return "must not contain a NUL character"
    return error["msg"].removeprefix("Value error, ")  # a validator's "Value error, <why>": the why


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"field": ".".join(map(str, e["loc"])), "message": _message(e)} for e in exc.errors()]
    return answer(422, "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """PostgreSQL down or restarting: a clear 503 the app can retry, instead of a hang or a 500."""
    log.warning("%s %s: the database is unavailable: %s", request.method, request.url.path, exc)
    return answer(503, "the database is unavailable for a moment; try again shortly", {"Retry-After": "5"})


async def unstorable(request: Request, exc: psycopg.DataError) -> JSONResponse:
    """A value PostgreSQL cannot hold or compare (a NUL byte in a text, a number out of range): the
    request's fault, whichever field carried it."""
    log.info("%s %s: %s", request.method, request.url.path, exc)
    reason = str(exc).partition("\n")[0]
    return answer(422, f"the request holds a value that cannot be stored: {reason}")


async def fault(request: Request, exc: Exception) -> JSONResponse:
    # Starlette logs the exception itself; the caller learns nothing of the internals.
    return answer(500, "an internal error; it was logged, and retrying may help")


class SafeHeaders:
    """Headers a careful API sends with every answer: no MIME sniffing, no referrer, no framing, and
    for the private routes no caching anywhere and no active content (an ASGI middleware, so that a
    streamed answer passes through untouched)."""

    ALWAYS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
    PRIVATE = {"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        private = scope["path"].startswith("/v1/") or any(k == b"authorization" for k, _ in scope["headers"])

        async def send_safely(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in (self.ALWAYS | (self.PRIVATE if private else {})).items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_safely)


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(psycopg.OperationalError, database_unavailable)
    app.add_exception_handler(PoolTimeout, database_unavailable)
    app.add_exception_handler(psycopg.DataError, unstorable)
    app.add_exception_handler(Exception, fault)
    app.add_middleware(SafeHeaders)
    generate = app.openapi

    def openapi() -> dict:
        """FastAPI writes every declared body as application/json, gives a route with parameters but no
        declared 422 its own validation-error schema, and answers 400 to a body it cannot parse without
        declaring it: here every error is problem details, and declared."""
        doc = generate()

        def problem_content() -> dict:
            return {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}

        for operation in (op for path in doc["paths"].values() for op in path.values()):
            if "requestBody" in operation:
                operation["responses"].setdefault("400", {"description": _WHY[400], "content": problem_content()})
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    content[MEDIA_TYPE] = content.pop("application/json")
                if status == "422":
                    response["content"] = problem_content()
        for unused in ("HTTPValidationError", "ValidationError"):
            doc["components"]["schemas"].pop(unused, None)
        return doc

    app.openapi = openapi
