"""The API as a function: the runtime every function has (shared/runtime.py: start and stop, the
settings, the database pool, the blob store, /healthz, /readyz, /metrics, posting to K_SINK) hosts
it, as it hosts each stage. Its own `start` builds what its routes need besides (the authenticator,
the query embedder, the rate limits) when the server starts, not at import; its own `stop` lets go
of the model. Routes reach it through the dependencies below."""
from __future__ import annotations

import logging
import math
import time
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from api.auth import Authenticator
from events import wire
from shared import tracing
from shared.blobs import BlobStore
from shared.config import Settings
from shared.models import ModelHolder, embedder
from shared.runtime import NoSink
from shared.runtime import Runtime as FunctionRuntime

log = logging.getLogger("mindspace.api")


class Api:
    name = "api"
    auth: Authenticator
    embedder: ModelHolder

    def __init__(self):
        self.runtime = FunctionRuntime(self)  # the lifespan starts and stops it

    def start(self, cfg: Settings) -> None:
        self.auth = Authenticator(cfg)
        # Queries through ONNX Runtime, whatever EMBED_RUNTIME the embed stage uses: the API never loads
        # torch (595 MiB and 5 s to a first search with it), and the float graph gives torch's vectors.
        self.embedder = embedder(cfg.embed_model, "cpu", cfg.embed_batch_size, cfg.model_idle_seconds,
                                 "onnx", cfg.embed_onnx_path)
        # Per user and per replica (in this process's memory): N replicas admit up to N times the limit.
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.limits: dict[str, RateLimitItem] = {
            "uploads": parse(cfg.rate_limit_uploads), "searches": parse(cfg.rate_limit_searches),
            "asks": parse(cfg.rate_limit_asks)}

    def stop(self) -> None:
        self.embedder.unload()

    @property
    def cfg(self) -> Settings:
        return self.runtime.cfg

    @property
    def pool(self):
        return self.runtime.pool

    @property
    def blobs(self) -> BlobStore:
        return self.runtime.blobs

    def throttle(self, kind: str, user: str) -> None:
        """Count one `kind` request of `user`; over the limit, 429 with the seconds until the window frees."""
        limit = self.limits[kind]
        if not self.limiter.hit(limit, kind, user):
            wait = max(1, math.ceil(self.limiter.get_window_stats(limit, kind, user).reset_time - time.time()))
            raise HTTPException(429, f"too many {kind}: the limit is {limit} per user (RATE_LIMIT_{kind.upper()}); "
                                f"try again in {wait} s", headers={"Retry-After": str(wait)})

    def emit(self, event: wire.CloudEvent, unreachable: str) -> None:
        """Put an event on the broker (K_SINK, from the API's SinkBinding); 503 if it cannot be reached."""
        try:
            self.runtime.emit(tracing.inject(event), timeout=10)  # the request's trace goes on with it
        except NoSink as e:
            raise HTTPException(503, f"no broker configured (K_SINK); {unreachable}") from e
        except httpx.HTTPError as e:
            log.error("could not emit %s: %s", event["type"], e)
            raise HTTPException(503, f"the pipeline is not reachable; {unreachable}") from e


def runtime(request: Request) -> Api:
    return request.app.state.api


# The runtime's answers, at the paths the Knative Services probe and Prometheus scrapes.
probes = APIRouter(include_in_schema=False)


@probes.get("/healthz")
@probes.get("/readyz")
@probes.get("/metrics")
def probe(request: Request) -> Response:
    status, body, content_type = runtime(request).runtime.answer(request.url.path)
    return Response(body, status, media_type=content_type)


# Declares the scheme in the OpenAPI document; the Authenticator reads and checks the header itself.
bearer = HTTPBearer(auto_error=False, description="a Firebase ID token; the local stack takes `dev:<user>`")


def caller(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    return runtime(request).auth.user(request)


def uploader(request: Request, user: Annotated[str, Depends(caller)]) -> str:
    runtime(request).throttle("uploads", user)
    return user


def searcher(request: Request, user: Annotated[str, Depends(caller)]) -> str:
    runtime(request).throttle("searches", user)
    return user


def conn(request: Request):
    with runtime(request).pool.connection() as c:
        yield c


Runtime = Annotated[Api, Depends(runtime)]
User = Annotated[str, Depends(caller)]
Uploader = Annotated[str, Depends(uploader)]  # the caller, counted against their upload limit
Searcher = Annotated[str, Depends(searcher)]  # … against their search limit
DB = Annotated[Any, Depends(conn)]
# Numbers within what PostgreSQL's bigint holds, so a larger one is a 422 and never a database error.
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="items to skip")]
