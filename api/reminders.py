"""Reminders: set by hand, or suggested from the dates in what the person captured. A repeat rule is an
RFC 5545 RRULE kept in the reminder's time zone (shared/schedule.py); the remind stage fires them."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.account import ensure_user, user_settings
from api.deps import DB, Id, Offset, User
from api.errors import NO_NUL, link, problems
from shared import schedule

router = APIRouter(tags=["reminders"], responses=problems(401, 503))
Status = Literal["suggested", "scheduled", "done", "dismissed"]


class ReminderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is a 422, never silently dropped
    title: str = Field(min_length=1, max_length=300, pattern=NO_NUL)
    due_at: AwareDatetime = Field(description="RFC 3339 with an offset, in the future",
                                  examples=["2099-12-01T09:00:00+01:00"])
    timezone: str | None = Field(None, description="IANA name; default: the caller's setting",
                                 examples=["Europe/Berlin"])
    rrule: str | None = Field(None, max_length=500, description="RFC 5545 RRULE without DTSTART",
                              examples=["FREQ=WEEKLY;BYDAY=MO"])
    file_id: uuid.UUID | None = None


class ReminderChange(BaseModel):
    """Only the fields sent change. `status`: `scheduled` accepts a suggestion, `dismissed` drops it."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=300, pattern=NO_NUL)
    due_at: AwareDatetime | None = None
    timezone: str | None = None
    rrule: str | None = Field(None, max_length=500)
    status: Literal["scheduled", "dismissed"] | None = None


class Reminder(BaseModel):
    id: int
    title: str
    status: Status
    due_at: datetime
    next_at: datetime | None
    timezone: str
    rrule: str | None
    file_id: uuid.UUID | None
    passage: str | None  # the sentence a suggestion came from
    locator: dict | None
    fired: int
    last_fired_at: datetime | None
    created_at: datetime


def checked(due_at: datetime, tz: str, rule: str | None) -> datetime:
    try:
        return schedule.first(due_at, tz, rule or None, datetime.now(UTC))
    except schedule.BadSchedule as e:
        raise HTTPException(422, str(e)) from None


def owned(c, user: str, reminder_id: int, lock: bool = False) -> dict:
    row = c.execute("SELECT * FROM reminders WHERE id = %s AND user_id = %s" + (" FOR UPDATE" if lock else ""),  # nosec B608
                    (reminder_id, user)).fetchone()
    if row is None:
        raise HTTPException(404, f"no reminder {reminder_id}")
    return row


def by_id(pointer: str) -> dict:
    """The routes that take a reminder's id, as OpenAPI links from an answer that carries one at `pointer`."""
    return {"links": {name: link(method, "/v1/reminders/{reminder_id}", pointer)
                      for name, method in (("GetReminder", "GET"), ("ChangeReminder", "PATCH"),
                                           ("DeleteReminder", "DELETE"))}}


@router.post("/v1/reminders", status_code=201, response_model=Reminder,
             responses={201: by_id("/id"), **problems(404, 422)})
def create(body: ReminderIn, user: User, c: DB) -> Reminder:
    tz = body.timezone or user_settings(c, user).timezone
    due = checked(body.due_at, tz, body.rrule)
    if body.file_id and not c.execute("SELECT 1 FROM files WHERE id = %s AND user_id = %s",
                                      (body.file_id, user)).fetchone():
        raise HTTPException(404, f"no file {body.file_id}")
    ensure_user(c, user)
    row = c.execute(
        """INSERT INTO reminders (user_id, title, due_at, timezone, rrule, next_at, status, file_id)
           VALUES (%s, %s, %s, %s, %s, %s, 'scheduled', %s) RETURNING *""",
        (user, body.title, due, tz, schedule.normalise(body.rrule) if body.rrule else None, due,
         body.file_id)).fetchone()
    c.commit()
    return Reminder(**row)


@router.get("/v1/reminders", response_model=list[Reminder], responses={200: by_id("/0/id"), **problems(422)})
def list_reminders(user: User, c: DB, status: Status | None = None, limit: int = Query(100, ge=1, le=500),
                   offset: Offset = 0) -> list[Reminder]:
    return [Reminder(**r) for r in c.execute(
        """SELECT * FROM reminders WHERE user_id = %s AND (%s::text IS NULL OR status = %s)
           ORDER BY next_at NULLS LAST, id LIMIT %s OFFSET %s""", (user, status, status, limit, offset)).fetchall()]


@router.get("/v1/reminders/{reminder_id}", response_model=Reminder, responses=problems(404, 422))
def get_reminder(reminder_id: Id, user: User, c: DB) -> Reminder:
    return Reminder(**owned(c, user, reminder_id))


@router.patch("/v1/reminders/{reminder_id}", response_model=Reminder, responses=problems(404, 409, 422))
def change(reminder_id: Id, body: ReminderChange, user: User, c: DB) -> Reminder:
    row = owned(c, user, reminder_id, lock=True)  # the remind stage may be firing it right now
    sent = {k: getattr(body, k) for k in body.model_fields_set}
    new = row | {k: v for k, v in sent.items() if v is not None or k == "rrule"}
    new["rrule"] = schedule.normalise(new["rrule"]) if new["rrule"] else None
    now = datetime.now(UTC)
    try:  # a zone or rule is checked whatever else changes
        schedule.zone(new["timezone"])
        if new["rrule"]:
            schedule.parse_rule(new["rrule"], now)
    except schedule.BadSchedule as e:
        raise HTTPException(422, str(e)) from None
    accepting = body.status == "scheduled" and row["status"] != "scheduled"
    if sent.keys() & {"due_at", "timezone", "rrule"} or accepting:
        if new["status"] in ("done", "dismissed"):
            raise HTTPException(409, f"the reminder is {new['status']}: send status scheduled to use it again")
        # Without a new due time, the schedule continues from its next occurrence (an accepted
        # suggestion from its own time); one whose time has passed needs a new due_at.
        upcoming = row["next_at"] if row["next_at"] and row["next_at"] > now else None
        anchor = new["due_at"] if "due_at" in sent or row["status"] == "suggested" else upcoming
        if anchor is None:
            raise HTTPException(409, "its last occurrence has passed: send a new due_at")
        new["due_at"] = new["next_at"] = checked(anchor, new["timezone"], new["rrule"])
    if new["status"] == "dismissed":
        new["next_at"] = None
    updated = c.execute(
        """UPDATE reminders SET title = %(title)s, due_at = %(due_at)s, timezone = %(timezone)s, rrule = %(rrule)s,
                                next_at = %(next_at)s, status = %(status)s, updated_at = now()
           WHERE id = %(id)s RETURNING *""", new).fetchone()
    c.commit()
    return Reminder(**updated)


@router.delete("/v1/reminders/{reminder_id}", status_code=204, responses=problems(404, 422))
def delete(reminder_id: Id, user: User, c: DB) -> Response:
    owned(c, user, reminder_id, lock=True)
    c.execute("DELETE FROM reminders WHERE id = %s", (reminder_id,))
    c.commit()
    return Response(status_code=204)
