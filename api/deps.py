"""What every route of the API needs: settings, the caller, a database connection, the blob store,
and a way to put an event on the broker."""
from __future__ import annotations

import logging
from typing import Annotated, Any

import httpx
from fastapi import Depends, HTTPException

from api.auth import Authenticator
from events import wire
from shared import db
from shared.blobs import blob_store
from shared.config import settings
from shared.observability import setup_logging

log = logging.getLogger("mindspace.api")
cfg = settings()
setup_logging("api", cfg.log_level)
auth = Authenticator(cfg)
blobs = blob_store(cfg)
User = Annotated[str, Depends(auth.user)]


def conn():
    with db.pool(cfg.database_url, cfg.db_pool_size).connection() as c:
        yield c


DB = Annotated[Any, Depends(conn)]


def emit(event: wire.CloudEvent, unreachable: str) -> None:
    if not cfg.k_sink:
        raise HTTPException(503, f"no broker configured (K_SINK); {unreachable}")
    headers, body = wire.binary(event)
    try:
        httpx.post(cfg.k_sink, headers=headers, content=body, timeout=10).raise_for_status()
    except httpx.HTTPError as e:
        log.error("could not emit %s: %s", event["type"], e)
        raise HTTPException(503, f"the pipeline is not reachable; {unreachable}") from e
