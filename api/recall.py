"""What comes back to a person: a file's related files of any kind (a whiteboard photo, the voice memo and
the note of one meeting), near-duplicate groups, and the daily digest. Read from what the stages stored
(vectors, tags, duplicate_of; shared/digest.py composes the digest): no model is called here."""
from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, BeforeValidator

from api import account
from api.browse import not_a_number
from api.deps import DB, User
from api.errors import problems
from shared import digest
from shared.neighbours import related

router = APIRouter(tags=["recall"], responses=problems(401, 503))


class Why(BaseModel):
    similarity: float  # cosine of the passage pair that connects the files
    passage: str  # the file's own passage …
    locator: dict
    related_passage: str  # … and the related file's
    related_locator: dict
    shared_tags: list[str]


class RelatedFile(BaseModel):
    file_id: uuid.UUID
    name: str
    category: str
    captured_at: datetime
    duplicate: bool  # a near-duplicate of the file (or the file's original), not only related
    why: Why


class Related(BaseModel):
    file_id: uuid.UUID
    related: list[RelatedFile]


@router.get("/v1/files/{file_id}/related", response_model=Related, responses=problems(404, 422))
def related_files(file_id: uuid.UUID, user: User, c: DB, limit: int = Query(10, ge=1, le=50)) -> Related:
    if c.execute("SELECT 1 FROM files WHERE id = %s AND user_id = %s", (file_id, user)).fetchone() is None:
        raise HTTPException(404, f"no file {file_id}")
    return Related(file_id=file_id, related=[RelatedFile(**r) for r in related(c, user, file_id, limit)])


class Copy(BaseModel):
    file_id: uuid.UUID
    name: str
    category: str
    created_at: datetime


class DuplicateGroup(BaseModel):
    root: Copy  # the group's earliest file
    copies: list[Copy]  # the near-duplicates of it, oldest first


@router.get("/v1/duplicates", response_model=list[DuplicateGroup], responses=problems(422))
def duplicate_groups(user: User, c: DB, limit: int = Query(50, ge=1, le=500),
                     offset: int = Query(0, ge=0, le=1_000_000)) -> list[DuplicateGroup]:
    """The caller's groups of near-duplicates, largest first."""
    rows = c.execute(
        """SELECT r.id AS file_id, r.filename AS name, r.category, r.created_at,
                  json_agg(json_build_object('file_id', d.id, 'name', d.filename, 'category', d.category,
                                             'created_at', d.created_at) ORDER BY d.created_at, d.id) AS copies
           FROM files d JOIN files r ON r.id = d.duplicate_of
           WHERE d.user_id = %s AND r.user_id = %s
           GROUP BY r.id ORDER BY count(*) DESC, r.created_at LIMIT %s OFFSET %s""",
        (user, user, limit, offset)).fetchall()
    return [DuplicateGroup(root=Copy(**{k: r[k] for k in ("file_id", "name", "category", "created_at")}),
                           copies=[Copy(**d) for d in r["copies"]]) for r in rows]


class DigestFile(BaseModel):
    file_id: uuid.UUID
    name: str
    category: str
    captured_at: datetime
    because_of: str | None = None  # related to yesterday's: which of yesterday's files it relates to
    similarity: float | None = None


class DigestReminder(BaseModel):
    reminder_id: int
    title: str
    due_at: datetime


class Digest(BaseModel):
    day: date
    timezone: str
    sent: bool | None  # whether it was sent that day (false: nothing to say); null: not composed that day
    on_this_day: list[DigestFile]  # captured on this day of the month, in earlier months and years
    related_to_yesterday: list[DigestFile]
    due_today: list[DigestReminder]


@router.get("/v1/digest", response_model=Digest, responses=problems(422))
def day_digest(user: User, c: DB,
               day: Annotated[date | None, BeforeValidator(not_a_number),
                              Query(alias="date", description="YYYY-MM-DD; default: today")] = None) -> Digest:
    """The digest of a day in the caller's time zone: as it was sent, if it was; else as it would be now."""
    zone = account.user_settings(c, user).timezone
    day = day or datetime.now(ZoneInfo(zone)).date()
    row = c.execute("SELECT content, sent FROM digests WHERE user_id = %s AND day = %s", (user, day)).fetchone()
    content = row["content"] if row else digest.compose(c, user, day, zone)
    return Digest(**content | {"sent": row["sent"] if row else None})
