"""A file's lifecycle, owned here once: its status (processing → ready | failed | unsupported), the
record of each stage, and the failures of events. Every write of that state is a function of this
module; the stage adapter and the dead-letter sink call them, nobody else writes these rows.

A file is ready once the outcome events the catalogue declares (`catalogue.outcomes()`) have all been
reported for it. A function returns the status a file reached *by this call* (or None), so that the
caller can announce a transition once.
"""
from __future__ import annotations

import json
from datetime import datetime
from uuid import UUID

from psycopg import Connection
from psycopg.types.json import Jsonb

from events import catalogue
from shared import dates


def owned_file(conn: Connection, file_id: UUID, user_id: str) -> dict | None:
    """The file if it exists *and* belongs to the user: a foreign id is as good as a missing one."""
    return conn.execute(
        "SELECT * FROM files WHERE id = %s AND user_id = %s", (file_id, user_id)
    ).fetchone()


def exists(conn: Connection, file_id: UUID) -> bool:
    return file(conn, file_id) is not None


def file(conn: Connection, file_id: UUID) -> dict | None:
    return conn.execute("SELECT * FROM files WHERE id = %s", (file_id,)).fetchone()


def hold(conn: Connection, file_id: UUID) -> bool:
    """Take the file's row before any other of its rows (FOR KEY SHARE: stages of one file still run side
    by side). Every writer takes the file first, then its stage records, as the API's delete does (FOR
    UPDATE): in any other order a stage finishing and a delete of its file deadlock. False if it is gone."""
    return conn.execute("SELECT 1 FROM files WHERE id = %s FOR KEY SHARE", (file_id,)).fetchone() is not None


def captured(conn: Connection, file_id: UUID, when: datetime) -> bool:
    """When the file's content says it was captured, where that is plausible (dates.plausible); False,
    and the upload time stands, otherwise."""
    if not dates.plausible(when):
        return False
    conn.execute("UPDATE files SET captured_at = %s WHERE id = %s", (when, file_id))
    return True


def stage_started(conn: Connection, file_id: UUID, stage: str) -> None:
    conn.execute(
        """INSERT INTO file_stages (file_id, stage, status) VALUES (%s, %s, 'running')
           ON CONFLICT (file_id, stage) DO UPDATE
           SET status = 'running', attempts = file_stages.attempts + 1, started_at = now(),
               finished_at = NULL""",
        (file_id, stage),
    )


def stage_done(conn: Connection, file_id: UUID, stage: str, detail: dict, emitted: list[str]) -> str | None:
    """Record a stage's success and the events it emitted; 'ready' if this made the file ready."""
    conn.execute(
        # clock_timestamp(), not now(): now() is when the transaction began, which for a stage that opens
        # it early (cluster takes its lock first) is before any of its work.
        """UPDATE file_stages SET status = 'done', detail = %s, emitted = %s, error = NULL,
                                finished_at = clock_timestamp()
           WHERE file_id = %s AND stage = %s""",
        (Jsonb(detail), emitted, file_id, stage),
    )
    outcomes = [t for t in emitted if t in catalogue.outcomes()]
    if outcomes:
        conn.execute(
            """UPDATE files SET outcomes = ARRAY(SELECT DISTINCT unnest(outcomes || %s::text[])),
                                updated_at = now()
               WHERE id = %s""",
            (outcomes, file_id),
        )
    ready = conn.execute(
        """UPDATE files SET status = 'ready', ready_at = clock_timestamp(), status_reason = NULL, updated_at = now()
           WHERE id = %s AND status = 'processing' AND outcomes @> %s::text[] RETURNING id""",
        (file_id, sorted(catalogue.outcomes())),
    ).fetchone()
    return "ready" if ready else None


def stage_failed(conn: Connection, file_id: UUID, stage: str, error: str, *, final: bool,
                 file_status: str = "failed") -> str | None:
    """A failure: `final` ends the file's processing (a poison event), otherwise the broker retries."""
    if not hold(conn, file_id):
        return None
    conn.execute(
        """INSERT INTO file_stages (file_id, stage, status, error, finished_at)
           SELECT %(f)s, %(s)s, %(st)s, %(e)s, now() WHERE EXISTS (SELECT 1 FROM files WHERE id = %(f)s)
           ON CONFLICT (file_id, stage) DO UPDATE
           SET status = %(st)s, error = %(e)s, finished_at = now()""",
        {"f": file_id, "s": stage, "st": "failed" if final else "retrying", "e": error},
    )
    return end(conn, file_id, file_status, f"{stage}: {error}") if final else None


def end(conn: Connection, file_id: UUID, status: str, reason: str) -> str | None:
    """End a file's processing as failed or unsupported, with a reason a person can read; the stages
    still running or retrying end as failed with it. Returns the status if this call ended it."""
    conn.execute(
        """UPDATE file_stages SET status = 'failed', error = coalesce(error, %s), finished_at = now()
           WHERE file_id = %s AND status IN ('running', 'retrying')""", (reason, file_id))
    ended = conn.execute(
        """UPDATE files SET status = %s, status_reason = %s, updated_at = now()
           WHERE id = %s AND status = 'processing' RETURNING id""",
        (status, reason[:2000], file_id),
    ).fetchone()
    return status if ended else None


def reopen(conn: Connection, file_id: UUID | str) -> None:
    """A failed file goes back to processing, as its dead-lettered event is replayed."""
    conn.execute(
        """UPDATE files SET status = 'processing', status_reason = NULL, updated_at = now()
           WHERE id = %s AND status = 'failed'""", (file_id,))


def record_failure(conn: Connection, consumer: str, http_status: int, reason: str, *,
                   event_type: str | None = None, event_id: str | None = None,
                   file_id: UUID | None = None, event: dict | None = None) -> None:
    conn.execute(
        """INSERT INTO event_failures (consumer, event_type, event_id, file_id, http_status, reason, event)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (consumer, event_type, event_id, file_id, http_status, reason[:4000],
         Jsonb(json.loads(json.dumps(event, default=str))) if event is not None else None),
    )
