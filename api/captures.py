"""Web capture: POST /v1/captures takes a URL (or a text shared from a phone that holds one) and makes a file of
kind `link`, as an upload makes one (same quota, same dedupe: the same address twice is one file); the fetch
stage downloads and reads the page. Nothing is fetched here: the API never connects to a user's address."""
from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.deps import Runtime, Uploader
from api.errors import problems
from api.files import File, by_id, store
from events.catalogue import Category
from shared.media import safe_name

router = APIRouter(tags=["files"])
MAX_URL = 2048  # what browsers and servers reliably carry
# A URL in a shared text ("Look at this: https://…"): up to a space, minus the punctuation that ends a sentence.
IN_TEXT = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)


class Capture(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, description="the page's address (http or https)")
    text: str | None = Field(None, max_length=10_000, description="a shared text: its first http(s) URL is captured")


def address(capture: Capture) -> str:
    if (capture.url is None) == (capture.text is None):
        raise HTTPException(422, "send either `url` or a shared `text` that holds one")
    url = capture.url
    if url is None:
        found = IN_TEXT.search(capture.text or "")
        if found is None:
            raise HTTPException(422, "the shared text holds no http or https URL")
        url = found.group(0).rstrip(".,;:!?)]}")
    url = url.strip()
    if len(url) > MAX_URL:
        raise HTTPException(422, f"the URL is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is no number
    except ValueError as e:
        raise HTTPException(422, f"not a URL: {e}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise HTTPException(422, "only http and https URLs with a host are captured")
    if parts.username or parts.password:
        raise HTTPException(422, "a URL with credentials in it is not captured")
    return parts._replace(fragment="").geturl()


@router.post("/v1/captures", status_code=201, response_model=File, responses={
    201: by_id("/id"),
    200: {"model": File, "description": "the same address was captured before: that file, with `duplicate` true",
          **by_id("/id")},
    **problems(401, 413, 422, 429, 503)})
async def capture(body: Capture, user: Uploader, api: Runtime, response: Response) -> File:
    url = address(body)
    data = url.encode()
    return await run_in_threadpool(store, api, user, safe_name(url), hashlib.sha256(data).hexdigest(), len(data),
                                   "text/uri-list", Category.link, response,
                                   lambda key: api.blobs.put(key, data, "text/uri-list"), source_url=url)
