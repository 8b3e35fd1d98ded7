"""The API function's lifecycle, as a stage's: `start` builds what every route needs (settings, the
authenticator, the blob store, the database pool, the query embedder) when the server starts, not at
import; `stop` closes the pools on scale-down. Routes reach it through the dependencies below."""
from __future__ import annotations

import logging
from typing import Annotated, Any

import httpx
from fastapi import Depends, HTTPException, Request

from api.auth import Authenticator
from events import wire
from shared import db
from shared.blobs import BlobStore, blob_store
from shared.config import Settings, settings
from shared.models import Embedder, embedder
from shared.observability import setup_logging

log = logging.getLogger("mindspace.api")


class Api:
    cfg: Settings
    auth: Authenticator
    blobs: BlobStore
    embedder: Embedder

    def start(self, cfg: Settings | None = None) -> None:
        self.cfg = cfg or settings()
        setup_logging("api", self.cfg.log_level)
        self.auth = Authenticator(self.cfg)
        self.blobs = blob_store(self.cfg)
        self.embedder = embedder(self.cfg.embed_model, self.cfg.embed_device, self.cfg.embed_batch_size,
                                 self.cfg.model_idle_seconds)

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

    def emit(self, event: wire.CloudEvent, unreachable: str) -> None:
        """Put an event on the broker (K_SINK, from the API's SinkBinding); 503 if it cannot be reached."""
        if not self.cfg.k_sink:
            raise HTTPException(503, f"no broker configured (K_SINK); {unreachable}")
        headers, body = wire.binary(event)
        try:
            httpx.post(self.cfg.k_sink, headers=headers, content=body, timeout=10).raise_for_status()
        except httpx.HTTPError as e:
            log.error("could not emit %s: %s", event["type"], e)
            raise HTTPException(503, f"the pipeline is not reachable; {unreachable}") from e


def runtime(request: Request) -> Api:
    return request.app.state.api


def caller(request: Request) -> str:
    return runtime(request).auth.user(request)


def conn(request: Request):
    with runtime(request).pool.connection() as c:
        yield c


Runtime = Annotated[Api, Depends(runtime)]
User = Annotated[str, Depends(caller)]
DB = Annotated[Any, Depends(conn)]
