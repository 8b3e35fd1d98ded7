"""Operators' view of the pipeline, as Immich's jobs page and Paperless-ngx's task list give it: per
stage, deliveries waiting, running, retrying and dead-lettered, and the oldest waiting age; the dead
letters themselves, listed and replayed per stage; the AI provider's health. Operators are the users
of ADMIN_USERS, or those whose Firebase token carries the custom claim `admin: true`."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import cache
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict

from api.deps import DB, Api, Runtime, User
from api.errors import problems
from events import routes
from shared import ai, dead_letters, local_queue
from shared.problems import Problem


def is_operator(api: Api, request: Request, user: str) -> bool:
    if user in api.cfg.admins:
        return True
    if api.cfg.auth_mode != "firebase":
        return False
    # The token is verified already (the caller); its claims are read again here, on operators' routes only.
    token = request.headers.get("authorization", "").partition(" ")[2]
    return api.auth._firebase.verify_id_token(token, clock_skew_seconds=5).get("admin") is True


def operator(request: Request, user: User, api: Runtime) -> str:
    if not is_operator(api, request, user):
        raise HTTPException(403, "operators only: a user of ADMIN_USERS, or a Firebase custom claim admin: true")
    return user


Operator = Annotated[str, Depends(operator)]
router = APIRouter(prefix="/v1/admin", tags=["operators"], responses={
    **problems(401, 422, 503), 403: {"model": Problem, "description": "the caller is no operator"}})


class StageJobs(BaseModel):
    stage: str  # the subscriber: a function's name
    waiting: int  # queued, retries included
    running: int  # being delivered now
    retrying: int  # waiting after a failed attempt
    dead_lettered: int  # given up on, not replayed yet
    oldest_waiting_s: float | None  # how long the oldest waiting delivery has been queued


class ProviderHealth(BaseModel):
    """The generative provider as this API replica saw it (shared/ai.py): null under extractive."""
    provider: str
    model: str
    calls: dict[str, int]  # tries by outcome: ok, quota, error, timeout
    last_ok_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None


class Jobs(BaseModel):
    # Whether deliveries were read: the local broker's queue. A Knative broker keeps its own (see its
    # metrics), so on a cluster only the dead letters are counted here.
    queue: bool
    stages: list[StageJobs]
    ai: ProviderHealth | None = None


class DeadLetter(BaseModel):
    id: int
    stage: str
    event_type: str
    event_id: str
    file_id: uuid.UUID | None
    error_code: str | None
    error_data: str | None
    received_at: datetime
    replayed_at: datetime | None


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is a 422, never silently dropped
    ids: list[int] = []  # these dead letters (replayed ones again too) …
    stage: str | None = None  # … or every one not replayed yet of this stage …
    all: bool = False  # … or every one not replayed yet


@cache
def _delivery_routes() -> dict[str, routes.Route]:
    return local_queue.delivery_routes(routes.load())


@router.get("/jobs", response_model=Jobs)
def jobs_view(c: DB, api: Runtime, _: Operator) -> Jobs:
    queue = local_queue.queue(c, _delivery_routes()) if local_queue.has_queue(c) else {}
    dead = dead_letters.counts(c)
    idle = {"waiting": 0, "running": 0, "retrying": 0, "oldest_waiting_s": None}
    return Jobs(queue=bool(queue), stages=[StageJobs(stage=s, **queue.get(s, idle), dead_lettered=dead.get(s, 0))
                                           for s in sorted(queue.keys() | dead.keys())], ai=provider_health(api))


def provider_health(api) -> ProviderHealth | None:
    if (p := ai.provider(api.cfg)) is None:
        return None
    when = {k: v and datetime.fromtimestamp(v, UTC) for k, v in
            (("last_ok_at", p.health.last_ok_at), ("last_error_at", p.health.last_error_at))}
    return ProviderHealth(provider=p.name, model=p.model, calls=p.health.calls, last_error=p.health.last_error, **when)


@router.get("/dead-letters", response_model=list[DeadLetter])
def list_dead_letters(c: DB, _: Operator, stage: str | None = None, replayed: bool = False,
                      limit: int = Query(100, ge=1, le=1000)) -> list[dict]:
    return dead_letters.listed(c, stage=stage, replayed=replayed)[:limit]


@router.post("/dead-letters/replay", response_model=list[DeadLetter])
def replay(body: Replay, c: DB, api: Runtime, _: Operator) -> list[dict]:
    """Reopen each dead letter's file and publish its event again; answers the ones replayed."""
    if not (body.ids or body.stage or body.all):
        raise HTTPException(422, "name the dead letters to replay: ids, a stage, or all")
    if not api.cfg.k_sink:
        raise HTTPException(503, "no broker configured (K_SINK)")
    rows = dead_letters.listed(c, ids=body.ids or None, stage=body.stage)
    for row in rows:
        try:
            dead_letters.replay(c, row, api.cfg.k_sink)
        except httpx.HTTPError as e:
            raise HTTPException(503, f"the broker is not reachable; {len(rows)} dead letters not all replayed") from e
        c.commit()  # each one done stays done, should a later one fail
    return rows
