"""RFC 9457 problem details: the one body of every error that the API, the functions and the local
broker answer, so that a client reads any failure the same way. `type` is `about:blank` (the status
says what kind of problem it is, RFC 9457 section 4.2.1), `title` the status's phrase, `detail` what
happened to this request and what to do about it."""
from __future__ import annotations

import json
from http import HTTPStatus

from pydantic import BaseModel, Field

MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    field: str = Field(description="where in the request: query.limit, body.due_at, path.file_id …")
    message: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details."""

    type: str = "about:blank"
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["no file 0b4f9a7e-5c1d-4f8e-9a55-8a1f3b0c2d11"])
    errors: list[FieldError] | None = Field(None, description="for a request that fails validation: each field's fault")


def problem(status: int, detail: str, **extra) -> dict:
    return {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail, **extra}


def problem_json(status: int, detail: str, **extra) -> str:
    return json.dumps(problem(status, detail, **extra))
