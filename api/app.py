"""The API function: the app's one door, assembled here. Its routes live in routers by subject (files,
browse: search, tags and clusters; reminders; account; admin: operators); here are its lifecycle, its
edge (problem details and safe headers, api/errors.py; the request timer below), and its probes."""
from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import account, admin, ask, browse, captures, errors, exports, files, imports, recall, reminders, uploads
from api.deps import Api, probes
from shared import tracing
from shared.metrics import API_SECONDS


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Knative's lifecycle for the API (shared/runtime.py): start when the server starts, stop when it shuts down."""
    app.state.api = Api()
    app.state.api.runtime.start()
    tracing.instrument_app(app)  # request spans, if a collector is configured
    yield
    app.state.api.runtime.stop()


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class RequestTimer:
    """`api_request_duration_seconds` of every request, by the matched route's template
    (`/v1/files/{file_id}`), never the raw path; requests no route matched share one label value, and
    odd methods another."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began, status = time.perf_counter(), 500  # unless an answer starts: an exception no handler took

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # The router sets it on the same scope; its template as the OpenAPI document names it (no `:int`).
            route = getattr(scope.get("route"), "path_format", "unmatched")
            method = scope["method"] if scope["method"] in _METHODS else "other"
            API_SECONDS.labels(route, method, str(status)).observe(time.perf_counter() - began)


app = FastAPI(
    lifespan=lifespan,
    title="Mindspace API",
    version="0.1.0",
    description="Upload what you capture; search it by meaning and words, browse its tags and clusters. "
    "Authenticate with a Firebase ID token (`Authorization: Bearer <token>`); the local stack also takes "
    "`Bearer dev:<user>`. `POST /v1/ask` answers a question from the caller's files, with citations. Every "
    "error is RFC 9457 problem details (`application/problem+json`). Uploads, searches and questions are "
    "limited per user (RATE_LIMIT_UPLOADS, RATE_LIMIT_SEARCHES, RATE_LIMIT_ASKS): over a limit, 429 with "
    "`Retry-After`.",
)
errors.install(app)
for router in (files.router, captures.router, uploads.router, imports.router, browse.router, recall.router, ask.router,
               reminders.router, account.router, exports.router, admin.router, probes):
    app.include_router(router)
app.add_middleware(RequestTimer)
