"""The person's side of the loop: their account (what they store against their quota; deleting it with
everything of theirs), their settings, the devices their phone registered for push notifications, and
the notifications they were sent (their inbox). Every route is the caller's own."""
from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from api.deps import DB, Offset, Runtime, User, log
from api.errors import NO_NUL, link, problems
from shared import languages, quota, schedule

router = APIRouter(tags=["account"], responses=problems(401, 503))
# Cloud Storage's bucket naming rules (dots allowed, 3-63 characters, no "goog" prefix).
HOUR_MINUTE = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"  # the digest's local time: a wall clock's minute
BUCKET = re.compile(r"^(?!goog)[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")


def ensure_user(c, user: str) -> None:
    c.execute("INSERT INTO users (id) VALUES (%s) ON CONFLICT DO NOTHING", (user,))


class Settings(BaseModel):
    timezone: str = "UTC"
    notify_on_ready: bool = False
    backup_bucket: str | None = None
    # ISO 639-1 codes: Tesseract's packs for their images and PDFs, the stemmers their searches use.
    languages: list[str] | None = Field(None, description="null: the deployment's OCR_LANGUAGES")
    # The local time (timezone's) the daily digest comes at; null: no digest (GET /v1/digest shows it anyway).
    digest_at: str | None = Field(None, pattern=HOUR_MINUTE)


class SettingsChange(BaseModel):
    """Only the fields sent change."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field is a 422, never silently dropped
    # Optional, but never null (only backup_bucket can be: null stops backups).
    timezone: str = Field(None, examples=["Europe/Berlin"])
    notify_on_ready: StrictBool = None
    backup_bucket: str | None = Field(None, examples=["my-mindspace-backup"], description="null: no backup")
    languages: list[str] | None = Field(None, max_length=10, examples=[["en", "de", "fr"]],
                                        description="ISO 639-1 codes, first the most used; null: the deployment's")
    digest_at: str | None = Field(None, pattern=HOUR_MINUTE, examples=["07:30"],
                                  description="HH:MM, the local time of the daily digest; null: off")

    @field_validator("timezone")
    @classmethod
    def known_zone(cls, v):
        if v is not None:
            try:
                schedule.zone(v)
            except schedule.BadSchedule as e:
                raise ValueError(str(e)) from None
        return v

    @field_validator("backup_bucket")
    @classmethod
    def bucket_name(cls, v):
        if v is not None and not BUCKET.match(v):
            raise ValueError(f"{v!r} is not a Cloud Storage bucket name (3-63 lowercase letters, digits, . _ -)")
        return v

    @field_validator("languages")
    @classmethod
    def known_languages(cls, v):
        if v is not None:
            v = languages.check(v)  # UnknownLanguage is a ValueError: a 422 naming the code and the known ones
            if not v:
                raise ValueError("name at least one language, or null for the deployment's")
        return v


def user_settings(c, user: str) -> Settings:
    row = c.execute("SELECT timezone, notify_on_ready, backup_bucket, languages, digest_at FROM user_settings"
                    " WHERE user_id = %s", (user,)).fetchone()
    if row is None:
        return Settings()
    return Settings(**row | {"digest_at": row["digest_at"] and f"{row['digest_at']:%H:%M}"})


@router.get("/v1/settings", response_model=Settings)
def get_settings(user: User, c: DB) -> Settings:
    return user_settings(c, user)


@router.put("/v1/settings", response_model=Settings, responses=problems(422))
def put_settings(change: SettingsChange, user: User, c: DB) -> Settings:
    merged = user_settings(c, user).model_copy(update={k: getattr(change, k) for k in change.model_fields_set})
    ensure_user(c, user)
    c.execute(
        """INSERT INTO user_settings (user_id, timezone, notify_on_ready, backup_bucket, languages, digest_at)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (user_id) DO UPDATE SET timezone = excluded.timezone,
               notify_on_ready = excluded.notify_on_ready, backup_bucket = excluded.backup_bucket,
               languages = excluded.languages, digest_at = excluded.digest_at, updated_at = now()""",
        (user, merged.timezone, merged.notify_on_ready, merged.backup_bucket, merged.languages, merged.digest_at))
    c.commit()
    return merged


class Device(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=10, max_length=4096, pattern=NO_NUL, description="the FCM registration token")
    platform: Literal["android", "ios", "web"]


@router.post("/v1/devices", status_code=201, response_model=Device, responses={
    201: {"links": {"ForgetDevice": link("DELETE", "/v1/devices/{token}", "/token")}},
    **problems(422)})
def register_device(device: Device, user: User, c: DB) -> Device:
    """Register a device for push notifications; a token seen before moves to the caller (a phone that
    changed hands, or an app reinstalled under another account)."""
    ensure_user(c, user)
    c.execute("""INSERT INTO devices (token, user_id, platform) VALUES (%s, %s, %s)
                 ON CONFLICT (token) DO UPDATE SET user_id = excluded.user_id, platform = excluded.platform""",
              (device.token, user, device.platform))
    c.commit()
    return device


@router.get("/v1/devices", response_model=list[Device])
def list_devices(user: User, c: DB) -> list[Device]:
    return [Device(**r) for r in c.execute("SELECT token, platform FROM devices WHERE user_id = %s ORDER BY created_at",
                                           (user,)).fetchall()]


@router.delete("/v1/devices/{token}", status_code=204, responses=problems(404))
def forget_device(token: Annotated[str, Path(pattern=NO_NUL)], user: User, c: DB) -> Response:
    row = c.execute("DELETE FROM devices WHERE token = %s AND user_id = %s RETURNING token", (token, user)).fetchone()
    c.commit()
    if row is None:
        raise HTTPException(404, "no such device")
    return Response(status_code=204)


class Notification(BaseModel):
    id: int
    kind: str  # reminder, file.ready, file.failed
    title: str
    body: str
    reminder_id: int | None
    file_id: uuid.UUID | None
    channel: str  # fcm (pushed) or inbox (recorded only: no Firebase credentials)
    status: str  # sent, no devices, failed (every token refused), recorded
    created_at: datetime


@router.get("/v1/notifications", response_model=list[Notification], responses=problems(422))
def notifications(user: User, c: DB, limit: int = Query(50, ge=1, le=500),
                  offset: Offset = 0) -> list[Notification]:
    """The caller's notifications, newest first."""
    return [Notification(**r) for r in c.execute(
        "SELECT * FROM notifications WHERE user_id = %s ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s",
        (user, limit, offset)).fetchall()]


class Usage(BaseModel):
    bytes: int  # of every file the user holds, e-mail attachments included
    files: int


class Quota(BaseModel):
    bytes: int | None  # null: no limit (QUOTA_BYTES 0)
    files: int | None


class Account(BaseModel):
    user: str
    usage: Usage
    quota: Quota


@router.get("/v1/account", response_model=Account)
def get_account(user: User, c: DB, api: Runtime) -> Account:
    return Account(user=user, usage=Usage(**quota.usage(c, user)),
                   quota=Quota(bytes=api.cfg.quota_bytes or None, files=api.cfg.quota_files or None))


class Deleted(BaseModel):
    files: int
    kept: str  # what stays: the copies in the user's own backup bucket


@router.delete("/v1/account", response_model=Deleted)
def delete_account(user: User, c: DB, api: Runtime) -> Deleted:
    """Everything of the caller: every row (files, texts, vectors, tags, clusters, reminders, devices,
    notifications, settings, usage, digests) and every blob of theirs, here or in BLOB_BUCKET. Events still
    on their way to a stage find their file gone and end as nothing to do. Copies in the user's own backup
    bucket are theirs and stay."""
    bucket = user_settings(c, user).backup_bucket
    # The files first, before the cascades from users reach them: a file's row, then its stage records, as
    # every stage takes them (shared/lifecycle.py's hold).
    ids = [r["id"] for r in c.execute("SELECT id FROM files WHERE user_id = %s ORDER BY id FOR UPDATE",
                                      (user,)).fetchall()]
    # The pipeline's own records of their events: failures, dead letters, and the replies kept for redelivery.
    c.execute("DELETE FROM event_failures WHERE file_id = ANY(%s) OR event -> 'data' ->> 'user_id' = %s", (ids, user))
    c.execute("DELETE FROM dead_letters WHERE file_id = ANY(%s) OR event -> 'data' ->> 'user_id' = %s", (ids, user))
    c.execute("""DELETE FROM consumed_events WHERE jsonb_path_exists(reply, '$[*].data.user_id ? (@ == $u)',
                                                                       jsonb_build_object('u', %s::text))""", (user,))
    c.execute("DELETE FROM users WHERE id = %s", (user,))  # every table of theirs cascades from it
    c.commit()
    if user.strip("."):  # a development user named "." or ".." has no folder of its own to remove
        api.blobs.delete_prefix(f"users/{user}/")
    log.info("user %s deleted their account: %d files", user, len(ids))
    return Deleted(files=len(ids), kept=f"copies in your backup bucket {bucket} are yours and stay" if bucket
                   else "nothing: no backup bucket was set")
