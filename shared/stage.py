"""The one adapter between HTTP + CloudEvents and a stage. Stages never touch HTTP, SQL connection
handling or retries; they implement `Stage` and the adapter does the rest:

- decode the CloudEvent (binary or structured mode) and validate its data against the catalogue;
- skip an event it has already consumed (keyed by source and id), replaying the reply it gave then;
- keep the file's per-stage record (running, retrying, done, failed) through shared/lifecycle.py;
- hand the stage a transaction (`ctx.db`, opened on first use, so a stage that reads a model for a
  minute holds no connection meanwhile) and commit it together with the stage's record and the mark
  that the event was consumed: a retried event changes nothing twice;
- announce a file's transition (`file.ready`, `file.failed`) once, beside the stage's own reply;
- answer 400 to a malformed event and 422 to a poison one (Knative does not retry those; the event
  goes to the dead-letter sink), 500 to a fault inside the stage (the broker retries), 200 with the
  next event as the reply, or 202 when there is none (several events go to K_SINK instead).

The lifecycle (start, stop), the probes (/healthz, /readyz), /metrics and posting to K_SINK are the
runtime's, the same for every function (shared/runtime.py).

Served as functions-framework's app (`create_app(target='handle', source='functions/NAME/main.py',
signature_type='http')`) under gunicorn, by shared/serve.sh, locally and in the container alike.
"""
from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

import httpx
from flask import Request, Response
from psycopg.errors import ForeignKeyViolation
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from events import catalogue, wire
from events.catalogue import EventData, FileEvent
from shared import lifecycle, problems, tracing
from shared.blobs import BlobNotFound, BlobStore, file_key
from shared.config import Settings
from shared.errors import Rejected, Unsupported  # what a stage raises: its own, beside Stage and Context
from shared.metrics import JOB_SECONDS, JOBS
from shared.observability import bound
from shared.runtime import Answer, NoSink, Runtime, Stopping

log = logging.getLogger("mindspace.stage")


class FileGone(Exception):
    """The event's file was deleted between the adapter's check and the stage's effects."""


class AlreadyConsumed(Exception):
    """Another delivery of the same event committed while this one ran: roll back, replay its reply."""

    def __init__(self, reply: list[dict]):
        self.reply = reply


class Context:
    """What a stage gets beside the event: settings, blobs, the file's row, a transaction, `detail`,
    which lands in the file's stage record, and `captured_at`, when the content says it was captured
    (a photo's EXIF, a PDF's creation date), which becomes the file's where plausible."""

    def __init__(self, cfg: Settings, blobs: BlobStore, pool: Any, event: wire.CloudEvent | None,
                 file: dict | None = None, key: tuple | None = None):
        self.cfg, self.blobs, self.event, self.file = cfg, blobs, event, file
        self.detail: dict = {}
        self.captured_at: datetime | None = None
        self._pool, self._conn, self._scope, self._key = pool, None, ExitStack(), key

    def transaction(self) -> ExitStack:
        """The scope of the event's transaction: whatever `db` opened inside it commits or rolls back."""
        return self._scope

    def read(self, sql: str, params: tuple = ()) -> dict | None:
        """One row, read on a connection held only for it, outside the event's transaction: what a long stage
        needs before its work (a user's setting), without holding a connection through that work. A context
        made without a database (a stage driven by hand, as bench/common.py does) reads nothing: None."""
        if self._pool is None:
            return None
        with self._pool.connection() as conn:
            return conn.execute(sql, params).fetchone()

    def side(self, sql: str, params: tuple = ()) -> None:
        """A write committed at once, outside the event's transaction: progress that others see while the stage
        works, or a failure's record that the event's rollback must not take with it."""
        if self._pool is not None:
            with self._pool.connection() as conn:
                conn.execute(sql, params)

    @property
    def db(self):
        """The event's transaction, begun on first use; the adapter commits it with the stage's record."""
        if self._conn is None:
            self._conn = self._scope.enter_context(self._pool.connection())
            self._scope.enter_context(self._conn.transaction())
            # Effects start here, so the duplicate check is made again, now under the key's lock.
            if self._key and (reply := consumed_reply(self._conn, self._key)) is not None:
                raise AlreadyConsumed(reply)
            if self.file is not None and not lifecycle.hold(self._conn, self.file["id"]):
                raise FileGone()
        return self._conn


class Stage:
    """A stage's lifecycle, as in Knative's function templates: start, handle, ready, alive, stop.
    `ready` and `alive` answer a bool or (bool, reason), as func-python takes them."""

    name: ClassVar[str]
    # The event types it takes; None takes any CloudEvent as it came (the dead-letter sink does).
    consumes: ClassVar[tuple[type[EventData], ...] | None]

    def start(self, cfg: Settings) -> None:
        pass

    def handle(self, event: EventData, ctx: Context) -> EventData | list[EventData] | None:
        raise NotImplementedError

    def ready(self) -> Answer:
        return True

    def alive(self) -> Answer:
        return True

    def stop(self) -> None:
        pass

    # Knative drops what a dead-letter sink answers, so such a stage posts its events to K_SINK.
    reply_to_sink: ClassVar[bool] = False

    def delivery_key(self, event: wire.CloudEvent) -> str:
        """What makes a delivery the same as an earlier one: the event's id (with its source)."""
        return event["id"]


def _json(code: int, **body) -> Response:
    return Response(json.dumps(body), status=code, mimetype="application/json")


def _problem(code: int, detail: str, **headers) -> Response:
    return Response(problems.problem_json(code, detail), status=code, mimetype=problems.MEDIA_TYPE, headers=headers)


class _Adapter:
    """HTTP + CloudEvents to a stage's `handle` and back; the runtime does the rest."""

    def __init__(self, stage: Stage):
        self.stage = stage
        self.runtime = Runtime(stage)

    def __call__(self, request: Request) -> Response:
        if (probe := self.runtime.answer(request.path)) is not None:
            status, body, content_type = probe
            return Response(body, status=status, content_type=content_type)
        if request.method != "POST":
            return _problem(405, "POST a CloudEvent to this function", Allow="POST")
        self.runtime.start()
        try:
            with self.runtime.work():
                return self.timed(request)
        except Stopping as e:  # the broker retries it, and another instance takes it
            return _problem(503, str(e), **{"Retry-After": "1"})

    def timed(self, request: Request) -> Response:
        began = time.perf_counter()
        try:
            return self.consume(request)
        except Exception:
            JOBS.labels(self.stage.name, "failed").inc()  # e.g. the broker did not take the replies: a 500
            raise
        finally:
            JOB_SECONDS.labels(self.stage.name).observe(time.perf_counter() - began)

    def refuse(self, status: int, reason: str, event=None, file_id=None) -> Response:
        """Record a refused or failed event; nothing fails in silence."""
        with self.runtime.pool.connection() as conn:
            lifecycle.record_failure(
                conn, self.stage.name, status, reason,
                event_type=event["type"] if event else None, event_id=event["id"] if event else None,
                file_id=file_id, event=wire.as_dict(event) if event else None,
            )
        JOBS.labels(self.stage.name, "failed" if status >= 500 else "rejected").inc()
        log.warning("%s %s: %s", status, event["id"] if event else "(no event)", reason)
        return _problem(status, reason)

    def consume(self, request: Request) -> Response:
        name = self.stage.name
        cap = self.runtime.cfg.max_event_bytes
        if (request.content_length or 0) > cap or len(body := request.get_data()) > cap:
            return self.refuse(413, f"events are capped at {cap} bytes (MAX_EVENT_BYTES): send a reference")
        try:
            event = wire.decode(request.headers, body)
        except wire.MalformedEvent as e:
            return self.refuse(400, str(e))
        with tracing.stage_span(name, event) as span, bound(event):  # its logs and events carry its ids
            response = self.process(event)
            span.set_attribute("http.response.status_code", response.status_code)
            return response

    def process(self, event: wire.CloudEvent) -> Response:
        name = self.stage.name
        file_id = _uuid(event.get("subject"))
        consumes = self.stage.consumes
        if consumes is not None and event["type"] not in {c.type for c in consumes}:
            return self.refuse(400, f"{name} does not consume {event['type']}", event, file_id)
        try:
            data = event if consumes is None else catalogue.parse(event["type"], event.data)
        except ValidationError as e:
            reason = f"invalid {event['type']} data: {_errors(e)}"
            claimed = event.data.get("user_id") if isinstance(event.data, dict) else None
            with self.runtime.pool.connection() as conn:  # only its owner's file fails: a forged event fails none
                file = file_id and lifecycle.owned_file(conn, file_id, str(claimed))
                reached = file and lifecycle.stage_failed(conn, file_id, name, reason, final=True)
                file = file and lifecycle.file(conn, file_id)
            if file:
                self.post(catalogue.announce(file, reached, reason), (name, event["source"], event["id"]))
            return self.refuse(400, reason, event, file and file_id)

        key = (name, event["source"], self.stage.delivery_key(event))
        ctx = Context(self.runtime.cfg, self.runtime.blobs, self.runtime.pool, event, key=key)
        if consumes is None:
            file_id = None  # a raw consumer keeps its own records
        with self.runtime.pool.connection() as conn:  # one transaction: the check and the record under the key's lock
            if (seen := consumed_reply(conn, key)) is not None:
                return self.duplicate(event, seen)
            if isinstance(data, FileEvent):
                file_id = data.file_id
                ctx.file = lifecycle.owned_file(conn, data.file_id, data.user_id)
                if ctx.file is None and not lifecycle.exists(conn, data.file_id):
                    return self.outcome(key, event, f"file {data.file_id} was deleted meanwhile; nothing to do")
                if ctx.file is None:  # someone else's file: refused, and no hint that it exists
                    return self.refuse(422, f"no file {data.file_id} for user {data.user_id}", event)
                try:
                    with conn.transaction():  # a savepoint: the deletion below leaves the rest intact
                        lifecycle.stage_started(conn, file_id, name)
                except ForeignKeyViolation:  # deleted between the check and the record: retrying cannot help
                    return self.outcome(key, event, f"file {data.file_id} was deleted meanwhile; nothing to do")
        try:
            with ctx.transaction():  # committed with the stage's record, or rolled back
                if isinstance(data, FileEvent):
                    own_blobs_only(data, self.runtime.blobs)
                out = self.stage.handle(data, ctx)
                replies = out if isinstance(out, list) else [out] if out is not None else []
                if file_id:
                    if ctx.captured_at and lifecycle.captured(ctx.db, file_id, ctx.captured_at):
                        ctx.detail["captured_at"] = ctx.captured_at.isoformat()
                    reached = lifecycle.stage_done(ctx.db, file_id, name, ctx.detail, [r.type for r in replies])
                    replies += catalogue.announce(ctx.file, reached)
                ces = [wire.as_dict(tracing.inject(wire.make(r, name, catalogue.reply_id(f"{name}#{i}", *key[1:]))))
                       for i, r in enumerate(replies)]
                consumed(ctx.db, key, ces)
        except AlreadyConsumed as e:  # a concurrent delivery of this event committed first; ours rolled back
            return self.duplicate(event, e.reply)
        except FileGone:
            return self.outcome(key, event, f"file {file_id} was deleted meanwhile; nothing to do")
        except (Rejected, BlobNotFound) as e:
            with self.runtime.pool.connection() as conn:
                if file_id and not lifecycle.exists(conn, file_id):  # its blobs went with it
                    return self.outcome(key, event, f"file {file_id} was deleted meanwhile; nothing to do")
                # A missing blob will not appear by retrying (GCS is strongly consistent): poison.
                e = e if isinstance(e, Rejected) else Rejected(f"the blob it refers to is gone: {e}")
                if file_id and ctx.captured_at and isinstance(e, Unsupported):  # a photo with no text was taken too
                    lifecycle.captured(conn, file_id, ctx.captured_at)
                reached = file_id and lifecycle.stage_failed(conn, file_id, name, str(e), final=True,
                                                             file_status=e.file_status)
            self.post(catalogue.announce(ctx.file, reached, str(e)), key)
            if isinstance(e, Unsupported):  # an outcome for the file, not a failure to replay
                return self.outcome(key, event, str(e))
            return self.refuse(422, str(e), event, file_id)
        except Exception as e:
            if file_id and isinstance(e, ForeignKeyViolation):  # a row of its file, deleted mid-work
                with self.runtime.pool.connection() as conn:
                    if not lifecycle.exists(conn, file_id):
                        return self.outcome(key, event, f"file {file_id} was deleted meanwhile; nothing to do")
            log.exception("%s failed on %s %s", name, event["type"], event["id"])
            if file_id:
                with self.runtime.pool.connection() as conn:
                    lifecycle.stage_failed(conn, file_id, name, f"{type(e).__name__}: {e}", final=False)
            return self.refuse(500, f"{type(e).__name__}: {e}", event, file_id)
        response = self.reply(ces)  # a broker that cannot take the events makes this a 500, retried
        JOBS.labels(name, "ok").inc()
        return response

    def duplicate(self, event: wire.CloudEvent, reply: list[dict]) -> Response:
        log.info("already consumed %s %s; replaying its reply", event["type"], event["id"])
        JOBS.labels(self.stage.name, "duplicate").inc()
        return self.reply(reply)

    def outcome(self, key: tuple, event: wire.CloudEvent, reason: str) -> Response:
        """An event that ends in nothing to do (a file deleted meanwhile, a type no stage reads): consumed,
        answered 202, never retried and never a dead letter, which should hold only what a replay fixes."""
        with self.runtime.pool.connection() as conn:
            consumed(conn, key, [])
        JOBS.labels(self.stage.name, "outcome").inc()
        log.info("%s %s: %s", event["type"], event["id"], reason)
        return _json(202, outcome=reason)

    def post(self, events: list[EventData], key: tuple) -> None:
        """Announce a file's end beside a refusal (which carries no reply); the dead-letter sink would
        not be told what the file's owner should hear."""
        for i, data in enumerate(events):
            try:
                self.send(tracing.inject(wire.make(data, self.stage.name,
                                                   catalogue.reply_id(f"{self.stage.name}!{i}", *key[1:]))))
            except (httpx.HTTPError, NoSink) as e:
                log.error("could not announce %s for %s: %s", data.type, getattr(data, "file_id", ""), e)

    def reply(self, ces: list[dict]) -> Response:
        """One event goes back as the Knative reply; several are posted to the broker (K_SINK), which
        Knative's SinkBinding gives every function that may emit more than one."""
        if len(ces) == 1 and not self.stage.reply_to_sink:
            headers, body = wire.binary(wire.from_json(ces[0]))
            return Response(body, status=200, headers=headers)
        for ce in ces:
            self.send(wire.from_json(ce))
        return Response(status=202)

    def send(self, event: wire.CloudEvent) -> None:
        """Post one event to the broker (K_SINK, from the function's SinkBinding)."""
        self.runtime.emit(event)


def consumed_reply(conn, key: tuple) -> list[dict] | None:
    """The reply an event got if it was consumed, else None, read under a transaction-level lock on its
    delivery key: a timed-out delivery can resume beside its retry, and of two deliveries of one event
    the second waits here until the first commits (or rolls back), then sees what it did."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("\x1f".join(key),))
    seen = conn.execute("SELECT reply FROM consumed_events WHERE consumer = %s AND source = %s AND id = %s",
                        key).fetchone()
    return seen["reply"] if seen else None


def consumed(conn, key: tuple, ces: list[dict]) -> None:
    """Mark an event consumed with the reply it got, replayed if the same event comes again."""
    conn.execute("INSERT INTO consumed_events (consumer, source, id, reply) VALUES (%s, %s, %s, %s)"
                 " ON CONFLICT DO NOTHING", (*key, Jsonb(ces)))


def own_blobs_only(data: FileEvent, blobs: BlobStore) -> None:
    """An event may point only at its own file's blobs: a forged one must not read another user's."""
    own = file_key(data.user_id, data.file_id, "")
    for field in ("blob_uri", "text_uri"):
        uri = getattr(data, field, None)
        if uri and not blobs.key_of(uri).startswith(own):
            raise Rejected(f"{field} names a blob outside file {data.file_id}")


def _uuid(value) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None


def _errors(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or 'data'}: {err['msg']}" for err in e.errors())


def serve(stage: Stage):
    """The functions-framework target for a stage (signature type http; it must be a function)."""
    adapter = _Adapter(stage)

    def handle(request: Request) -> Response:
        return adapter(request)

    handle.stage = stage  # for tests and benchmarks that call the stage in-process
    return handle
