"""Every event type of the pipeline, the schema of its data, and the extension attributes Triggers
filter on. Reading this file tells the whole pipeline:

    API ── file.uploaded ──▶ extract (text, other) ── text.extracted ─┬▶ embed ── text.embedded ──▶ cluster
        (category=...)       ocr (image, pdf)          ▲                ├▶ tag ─── file.tagged          │
                             transcribe (audio, video) ┤                └▶ suggest ─ reminders.suggested │
                             fetch (link) ─────────────┘                          file.clustered ◀─────┘
                               (a page that is a PDF or an image: file.uploaded, to ocr)
    API (POST /v1/imports) ── import.requested ──▶ imports ── file.uploaded (a note, an attachment) ──▶ …
    the stage whose outcome completes a file ── file.ready ─┬▶ notify (if the user asked) ──▶ FCM / inbox
    any stage that ends a file, the dead-letter sink ─ file.failed ─┘   └▶ backup (file.ready) ──▶ their GCS bucket
    API (DELETE /v1/files/{id}) ── file.deleted ──▶ backup (deletes the copy)
    PingSource (task=reminders, every minute) ── ping ──▶ remind ── notification.requested ──▶ notify
    PingSource (task=recluster) ── dev.knative.sources.ping ──▶ cluster ── clusters.refresh (per user) ──▶ cluster
    API (POST /v1/clusters/refresh) ── clusters.refresh ──▶ cluster

Events carry references (a file id, a blob URI), never file bytes or whole texts: brokers cap event
size (the claim-check pattern). A stage's reply must not have the type it consumed, or it would loop.
"""
from __future__ import annotations

import re
import uuid
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

SOURCE = "/mindspace"  # a producer's source is SOURCE + "/" + its function name
_EXT_NAME = re.compile(r"^[a-z0-9]{1,20}$")  # the CloudEvents rule for extension names
CATALOGUE: dict[str, type[EventData]] = {}


class Category(StrEnum):
    """The media category of an upload: the API sniffs it, Triggers route on it."""

    text = "text"
    image = "image"
    pdf = "pdf"
    audio = "audio"
    video = "video"
    link = "link"  # a web page captured by its URL: the fetch stage downloads and reads it
    other = "other"


class EventData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: ClassVar[str] = ""
    # Extension attribute name -> data field, so Triggers can filter on it without reading data.
    extensions: ClassVar[dict[str, str]] = {}
    # True for the events that report a stage's outcome for a file: a file is ready once it has them
    # all (see `outcomes`). No stage has to consume them.
    outcome: ClassVar[bool] = False
    # True for the events that announce a file's end (ready, failed): whoever cares subscribes.
    announcement: ClassVar[bool] = False

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if not cls.type:
            return
        if cls.type in CATALOGUE:
            raise TypeError(f"event type {cls.type} is declared twice")
        bad = [n for n in cls.extensions if not _EXT_NAME.match(n)]
        if bad:
            raise TypeError(f"{cls.__name__}: extension names must be 1-20 lowercase letters or digits: {bad}")
        CATALOGUE[cls.type] = cls

    def extension_values(self) -> dict[str, str]:
        return {name: str(getattr(self, field)) for name, field in self.extensions.items()}


class FileEvent(EventData):
    """An event about one file of one user. The CloudEvent `subject` is the file id."""

    file_id: uuid.UUID
    user_id: str = Field(min_length=1, max_length=128)


class FileUploaded(FileEvent):
    type = "com.mindspace.file.uploaded"
    extensions = {"category": "category"}
    blob_uri: str
    filename: str = Field(max_length=1024)
    media_type: str
    category: Category
    size: int = Field(gt=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class TextExtracted(FileEvent):
    type = "com.mindspace.text.extracted"
    # A JSON blob {"text": ..., "segments": [{"start": offset, "end": offset, "locator": {...}}]}
    text_uri: str
    method: str  # how the text was obtained: "text", "text-layer", "ocr", "transcription" …
    chars: int = Field(ge=0)


class TextEmbedded(FileEvent):
    type = "com.mindspace.text.embedded"
    outcome = True
    chunks: int = Field(ge=0)
    model: str


class FileTagged(FileEvent):
    type = "com.mindspace.file.tagged"
    outcome = True
    tags: int = Field(ge=0)


class FileClustered(FileEvent):
    type = "com.mindspace.file.clustered"
    outcome = True
    cluster_id: int | None = None


class RemindersSuggested(FileEvent):
    """The dates and times a file's text holds, proposed as reminders (status `suggested`)."""

    type = "com.mindspace.reminders.suggested"
    outcome = True
    reminders: int = Field(ge=0)


class FileDeleted(EventData):
    """A file is gone (its rows and blobs with it): what was made of it elsewhere goes too. Not a
    FileEvent, since no stage can find the file any more; it carries what they need."""

    type = "com.mindspace.file.deleted"
    file_id: uuid.UUID
    user_id: str = Field(min_length=1, max_length=128)
    backup_uri: str | None = None  # the copy made, if one was recorded
    backup_bucket: str | None = None  # the user's bucket now: a copy may be on its way there


class NotificationKind(StrEnum):
    reminder = "reminder"
    file_ready = "file.ready"
    file_failed = "file.failed"
    digest = "digest"


class NotificationRequested(EventData):
    """Tell a person something: pushed to their devices, or kept in their inbox."""

    type = "com.mindspace.notification.requested"
    user_id: str = Field(min_length=1, max_length=128)
    key: str = Field(min_length=1, max_length=300)  # what it is about: the same key is sent once
    kind: NotificationKind
    title: str = Field(max_length=300)
    body: str = Field(default="", max_length=2000)
    reminder_id: int | None = None
    file_id: uuid.UUID | None = None


class FileAnnouncement(FileEvent):
    """A file's end, announced once by whoever ended it (see `announce`); named, so it can be told."""

    announcement = True
    filename: str = Field(max_length=1024)


class FileReady(FileAnnouncement):
    """A file reached `ready`: emitted once, by the stage whose outcome completed it."""

    type = "com.mindspace.file.ready"


class FileFailed(FileAnnouncement):
    """A file ended as `failed` or `unsupported`, with the reason a person can read."""

    type = "com.mindspace.file.failed"
    status: str
    reason: str = Field(max_length=2000)


class ClustersRefresh(EventData):
    """Re-cluster one user's files in full (the API on request, or the nightly tick fanned out)."""

    type = "com.mindspace.clusters.refresh"
    user_id: str = Field(min_length=1, max_length=128)


class ImportRequested(EventData):
    """An archive of notes from elsewhere (Google Keep, a Markdown vault, Evernote, a Mindspace export),
    stored by the API, to be made into the user's files."""

    type = "com.mindspace.import.requested"
    import_id: uuid.UUID
    user_id: str = Field(min_length=1, max_length=128)
    blob_uri: str


class Task(StrEnum):
    """Scheduled jobs, each a PingSource in knative/base/schedules.yaml."""

    recluster = "recluster"
    reminders = "reminders"


class ScheduledTask(EventData):
    """A PingSource's tick. Knative fixes its type, so the task rides in an extension attribute
    (set by the PingSource's ceOverrides) for Triggers to filter on, and in the data."""

    type = "dev.knative.sources.ping"
    extensions = {"task": "task"}
    task: Task


class UnknownEventType(ValueError):
    pass


def parse(event_type: str, data: object) -> EventData:
    """Validate an event's data against the catalogue (pydantic.ValidationError if it does not fit)."""
    try:
        model = CATALOGUE[event_type]
    except KeyError:
        raise UnknownEventType(f"unknown event type {event_type!r}; known: {sorted(CATALOGUE)}") from None
    return model.model_validate(data)


def outcomes() -> frozenset[str]:
    """The outcome events a file needs to be ready: every stage that applies to a file reports one."""
    return frozenset(t for t, model in CATALOGUE.items() if model.outcome)


def announce(file: dict | None, reached: str | None, reason: str = "") -> list[EventData]:
    """The announcement of a file's transition to `reached` (from shared/lifecycle.py), if any."""
    if file is None or reached is None:
        return []
    ids = {"file_id": file["id"], "user_id": file["user_id"], "filename": file["filename"]}
    if reached == "ready":
        return [FileReady(**ids)]
    return [FileFailed(**ids, status=reached, reason=reason[:2000] or reached)]


def reply_id(consumer: str, source: str, event_id: str) -> str:
    """A deterministic id for a reply, so a replayed reply is recognised downstream as the same event."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{consumer}|{source}|{event_id}"))
