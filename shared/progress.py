"""The record of what happened to a file: its status and one row per stage (SQL lives here, once)."""
from __future__ import annotations

import json
from uuid import UUID

from psycopg import Connection
from psycopg.types.json import Jsonb


def owned_file(conn: Connection, file_id: UUID, user_id: str) -> dict | None:
    """The file if it exists *and* belongs to the user: a foreign id is as good as a missing one."""
    return conn.execute(
        "SELECT * FROM files WHERE id = %s AND user_id = %s", (file_id, user_id)
    ).fetchone()


def stage_started(conn: Connection, file_id: UUID, stage: str) -> None:
    conn.execute(
        """INSERT INTO file_stages (file_id, stage, status) VALUES (%s, %s, 'running')
           ON CONFLICT (file_id, stage) DO UPDATE
           SET status = 'running', attempts = file_stages.attempts + 1, started_at = now(),
               finished_at = NULL""",
        (file_id, stage),
    )


def stage_done(conn: Connection, file_id: UUID, stage: str, detail: dict, outcome: str | None,
               ready_after: list[str]) -> None:
    conn.execute(
        """UPDATE file_stages SET status = 'done', detail = %s, error = NULL, finished_at = now()
           WHERE file_id = %s AND stage = %s""",
        (Jsonb(detail), file_id, stage),
    )
    if outcome:
        conn.execute(
            """UPDATE files SET outcomes = ARRAY(SELECT DISTINCT unnest(outcomes || %s::text)),
                                updated_at = now()
               WHERE id = %s""",
            (outcome, file_id),
        )
    conn.execute(
        """UPDATE files SET status = 'ready', ready_at = now(), status_reason = NULL, updated_at = now()
           WHERE id = %s AND status = 'processing' AND outcomes @> %s::text[]""",
        (file_id, ready_after),
    )


def stage_failed(conn: Connection, file_id: UUID, stage: str, error: str, *, final: bool,
                 file_status: str = "failed") -> None:
    """A failure: `final` ends the file's processing (a poison event), otherwise the broker retries."""
    conn.execute(
        """INSERT INTO file_stages (file_id, stage, status, error, finished_at)
           SELECT %(f)s, %(s)s, %(st)s, %(e)s, now() WHERE EXISTS (SELECT 1 FROM files WHERE id = %(f)s)
           ON CONFLICT (file_id, stage) DO UPDATE
           SET status = %(st)s, error = %(e)s, finished_at = now()""",
        {"f": file_id, "s": stage, "st": "failed" if final else "retrying", "e": error},
    )
    if final:
        conn.execute(
            """UPDATE files SET status = %s, status_reason = %s, updated_at = now()
               WHERE id = %s AND status = 'processing'""",
            (file_status, f"{stage}: {error}", file_id),
        )


def record_failure(conn: Connection, consumer: str, http_status: int, reason: str, *,
                   event_type: str | None = None, event_id: str | None = None,
                   file_id: UUID | None = None, event: dict | None = None) -> None:
    conn.execute(
        """INSERT INTO event_failures (consumer, event_type, event_id, file_id, http_status, reason, event)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (consumer, event_type, event_id, file_id, http_status, reason[:4000],
         Jsonb(json.loads(json.dumps(event, default=str))) if event is not None else None),
    )


def reopen(conn: Connection, file_id: UUID | str) -> None:
    """A failed file goes back to processing, as its dead-lettered event is replayed."""
    conn.execute(
        """UPDATE files SET status = 'processing', status_reason = NULL, updated_at = now()
           WHERE id = %s AND status = 'failed'""", (file_id,))
