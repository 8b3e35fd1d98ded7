"""The API function's lifecycle, as a stage's: `start` builds what every route needs (settings, the
authenticator, the blob store, the database pool, the query embedder) when the server starts, not at
import; `stop` closes the pools on scale-down. Routes reach it through the dependencies below."""
from __future__ import annotations

import logging
import math
import time
from typing import Annotated, Any

import httpx
from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from api.auth import Authenticator
from events import wire
from shared import db, tracing
from shared.blobs import BlobStore, blob_store
from shared.config import Settings, settings
from shared.models import ModelHolder, embedder
from shared.observability import setup_logging

log = logging.getLogger("mindspace.api")


class Api:
    cfg: Settings
    auth: Authenticator
    blobs: BlobStore
    embedder: ModelHolder

    def start(self, cfg: Settings | None = None) -> None:
        self.cfg = cfg or settings()
        setup_logging("api", self.cfg.log_level)
        tracing.setup_tracing("api", self.cfg)
        self.auth = Authenticator(self.cfg)
        self.blobs = blob_store(self.cfg)
        # Queries through ONNX Runtime, whatever EMBED_RUNTIME the embed stage uses: the API never loads
        # torch (595 MiB and 5 s to a first search with it), and the float graph gives torch's vectors.
        self.embedder = embedder(self.cfg.embed_model, "cpu", self.cfg.embed_batch_size, self.cfg.model_idle_seconds,
                                 "onnx", self.cfg.embed_onnx_path)
        # Per user and per replica (in this process's memory): N replicas admit up to N times the limit.
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.limits: dict[str, RateLimitItem] = {
            "uploads": parse(self.cfg.rate_limit_uploads), "searches": parse(self.cfg.rate_limit_searches)}

    @property
    def pool(self):
        return db.pool(self.cfg.database_url, self.cfg.db_pool_size)

    def ready(self) -> bool:
        with self.pool.connection() as c:
            c.execute("SELECT 1")
        return True

    def stop(self) -> None:
        self.embedder.unload()
        db.close_pools()

    def throttle(self, kind: str, user: str) -> None:
        """Count one `kind` request of `user`; over the limit, 429 with the seconds until the window frees."""
        limit = self.limits[kind]
        if not self.limiter.hit(limit, kind, user):
            wait = max(1, math.ceil(self.limiter.get_window_stats(limit, kind, user).reset_time - time.time()))
            raise HTTPException(429, f"too many {kind}: the limit is {limit} per user (RATE_LIMIT_{kind.upper()}); "
                                f"try again in {wait} s", headers={"Retry-After": str(wait)})

    def emit(self, event: wire.CloudEvent, unreachable: str) -> None:
        """Put an event on the broker (K_SINK, from the API's SinkBinding); 503 if it cannot be reached."""
        if not self.cfg.k_sink:
            raise HTTPException(503, f"no broker configured (K_SINK); {unreachable}")
        try:
            wire.send(self.cfg.k_sink, tracing.inject(event), timeout=10)  # the request's trace goes on with it
        except httpx.HTTPError as e:
            log.error("could not emit %s: %s", event["type"], e)
            raise HTTPException(503, f"the pipeline is not reachable; {unreachable}") from e


def runtime(request: Request) -> Api:
    return request.app.state.api


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
