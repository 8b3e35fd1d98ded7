"""POST /v1/ask: a question answered from the caller's own files, with the passages it came from.

Retrieval is the hybrid search's, per passage (api/answers.py); the answer is extractive (the sentences
that answer, ranked by the embedding model the API already holds) or written by a provider (shared/ai.py:
Gemini, or any OpenAI-compatible server) from the passages alone. `Accept: text/event-stream` streams it:
the citations first, then the answer as it is written. A provider's tokens count against the user's daily
budget (ASK_DAILY_TOKENS); a provider that fails after its retries is a 503 that names it."""
from __future__ import annotations

import json
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api import answers
from api.account import ensure_user
from api.browse import Moment
from api.deps import Runtime, caller, runtime
from api.errors import NO_NUL, answer, problems
from events.catalogue import Category
from shared import ai, languages
from shared.metrics import ASK_SECONDS

router = APIRouter(tags=["ask"], responses=problems(401, 503))


def asker(request: Request, user: Annotated[str, Depends(caller)]) -> str:
    runtime(request).throttle("asks", user)
    return user


Asker = Annotated[str, Depends(asker)]


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: str | None = Field(None, max_length=200, pattern=NO_NUL)
    cluster: int | None = Field(None, ge=1, le=2**53 - 1)  # what a JSON number holds exactly
    kind: Category | None = None
    since: Moment = None
    until: Moment = None


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(..., min_length=1, max_length=2000, pattern=NO_NUL)
    filters: Filters = Filters()


class Citation(BaseModel):
    n: int  # the number the answer cites it by: [n]
    file_id: uuid.UUID
    name: str
    passage: str
    locator: dict  # {"page": 3} in a PDF, {"start_s": …, "end_s": …} in a recording
    score: float  # the fused reciprocal-rank score of the retrieval


class Answer(BaseModel):
    answer: str
    citations: list[Citation]
    provider: str  # extractive, gemini or openai
    model: str
    usage: dict  # prompt_tokens, completion_tokens, total_tokens, daily_tokens_left (null: no limit)


STREAM = {"text/event-stream": {"schema": {"type": "string"},
                                "description": "events: citations (first), answer (each piece), done, error"}}


@router.post("/v1/ask", response_model=Answer, responses=problems(422, 429) | {200: {"content": STREAM}})
def ask(body: Question, request: Request, user: Asker, api: Runtime):
    cfg, provider = api.cfg, ai.provider(api.cfg)
    name, model = (provider.name, provider.model) if provider else ("extractive", cfg.embed_model or "all-MiniLM-L6-v2")
    left = None
    with api.pool.connection() as c:
        if provider and cfg.ask_daily_tokens:
            left = cfg.ask_daily_tokens - used_today(c, user)
            if left <= 0:
                return over_budget(cfg.ask_daily_tokens)
    began = time.perf_counter()
    vector = api.embedder.run([body.question])[0]
    filters = body.filters.model_dump() | {"kind": body.filters.kind and body.filters.kind.value}
    with api.pool.connection() as c:  # taken after the embedding: a question waiting for the model holds none
        found = answers.retrieve(c, user, body.question, vector, filters, cfg.ask_passages, flag_spec=cfg.flags,
                                 default_languages=languages.from_tesseract(cfg.ocr_languages))
    citations = [p | {"n": n} for n, p in enumerate(answers.pack(found, cfg.ask_context_tokens), 1)]
    ASK_SECONDS.labels("retrieval").observe(time.perf_counter() - began)
    began = time.perf_counter()
    usage = ai.Usage()
    if not answers.relevant(citations, cfg.ask_min_similarity):
        citations, pieces = [], iter([answers.NOTHING])
    elif provider is None:
        chosen = answers.extract(body.question, vector, citations, api.embedder.run, cfg.ask_min_similarity)
        citations, text = answers.cited_first(citations, chosen) if chosen else ([], answers.NOTHING)
        pieces = iter([text])
    else:
        try:  # the first piece is waited for here: a provider that fails before it is a 503, not a broken stream
            pieces = provider.stream(answers.SYSTEM, answers.prompt(body.question, citations),
                                     cfg.ask_max_answer_tokens, usage)
        except ai.ProviderError as e:
            return unavailable(e, left)
        pieces = filtered(pieces, {c["n"] for c in citations})
    head = {"citations": [Citation(**c).model_dump(mode="json") for c in citations], "provider": name, "model": model}

    def finish(text: str) -> dict:
        ASK_SECONDS.labels("generation").observe(time.perf_counter() - began)
        spent = usage.prompt + usage.completion
        if spent:
            with api.pool.connection() as c:
                add_usage(c, user, spent)
        return usage.as_dict() | {"daily_tokens_left": None if left is None else max(0, left - spent)}

    if "text/event-stream" not in request.headers.get("accept", ""):
        try:
            text = "".join(pieces)
        except ai.ProviderError as e:
            return unavailable(e, left)
        return Answer(answer=text, usage=finish(text), **head)

    def events():
        yield sse("citations", head)
        text = ""
        try:
            for piece in pieces:
                text += piece
                yield sse("answer", {"text": piece})
        except ai.ProviderError as e:  # mid-answer: the status is sent; what was written stands, marked
            yield sse("error", {"status": 503, "detail": provider_detail(e, left)})
        yield sse("done", {"answer": text, "usage": finish(text)})

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


def filtered(pieces, numbers: set[int]):
    keep = answers.Citations(numbers)
    for piece in pieces:
        if out := keep.feed(piece):
            yield out
    if out := keep.flush():
        yield out


def sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


# --- the daily budget --------------------------------------------------------------------------------

def used_today(c, user: str) -> int:
    row = c.execute("SELECT tokens FROM ask_usage WHERE user_id = %s AND day = (now() AT TIME ZONE 'UTC')::date",
                    (user,)).fetchone()
    return row["tokens"] if row else 0


def add_usage(c, user: str, tokens: int) -> None:
    ensure_user(c, user)
    c.execute("""INSERT INTO ask_usage (user_id, day, tokens) VALUES (%s, (now() AT TIME ZONE 'UTC')::date, %s)
                 ON CONFLICT (user_id, day) DO UPDATE SET tokens = ask_usage.tokens + EXCLUDED.tokens""",
              (user, tokens))


def until_midnight() -> int:
    now = datetime.now(UTC)
    return max(1, math.ceil((datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
                             - now).total_seconds()))


def over_budget(limit: int) -> JSONResponse:
    wait = until_midnight()
    return answer(429, f"your answers used today's budget of {limit} tokens (ASK_DAILY_TOKENS); 0 left; it renews "
                  f"at 00:00 UTC, in {wait} s", {"Retry-After": str(wait)}, daily_tokens=limit, daily_tokens_left=0)


def provider_detail(e: ai.ProviderError, left: int | None) -> str:
    budget = "" if left is None else f" Your own daily budget is untouched: {left} tokens left."
    if e.quota:
        return (f"the AI provider {e.provider} refused for its quota ({e}). That is this deployment's quota with "
                f"{e.provider}, not something you did.{budget} Try again later.")
    return f"the AI provider {e.provider} is unavailable ({e}); try again shortly.{budget}"


def unavailable(e: ai.ProviderError, left: int | None) -> JSONResponse:
    return answer(503, provider_detail(e, left), {"Retry-After": "30"}, provider=e.provider)
