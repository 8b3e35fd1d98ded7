"""deadletter: the dead-letter sink. Records what the broker gave up on, so it can be inspected and
replayed, and ends the file's processing with the reason instead of leaving it waiting."""
from __future__ import annotations

from psycopg.types.json import Jsonb

from events import wire
from shared.stage import Context, Stage, serve


class DeadLetter(Stage):
    name = "deadletter"
    consumes = None  # any event as it came, malformed data included

    def delivery_key(self, event: wire.CloudEvent) -> str:
        # One event can fail at several subscribers: each failure is a dead letter of its own.
        return f"{event['id']}@{event.get('knativeerrordest', '')}"

    def handle(self, event: wire.CloudEvent, ctx: Context) -> None:
        file_id = event.get("subject")
        code, dest = event.get("knativeerrorcode"), event.get("knativeerrordest")
        reason = f"gave up delivering {event['type']} to {dest} (HTTP {code}): {event.get('knativeerrordata', '')}"
        with ctx.pool.connection() as conn, conn.transaction():
            conn.execute(
                """INSERT INTO dead_letters (event_source, event_id, event_type, event, file_id,
                                             error_dest, error_code, error_data)
                   VALUES (%s, %s, %s, %s, (SELECT id FROM files WHERE id::text = %s), %s, %s, %s)
                   ON CONFLICT (event_source, event_id, (coalesce(error_dest, ''))) DO UPDATE
                   SET error_code = excluded.error_code, error_data = excluded.error_data,
                       received_at = now(), replayed_at = NULL""",
                (event["source"], event["id"], event["type"], Jsonb(wire.as_dict(event)), file_id, dest, code,
                 event.get("knativeerrordata")),
            )
            conn.execute(
                """UPDATE file_stages SET status = 'failed', error = coalesce(error, %s), finished_at = now()
                   WHERE file_id::text = %s AND status IN ('running', 'retrying')""", (reason, file_id))
            conn.execute(
                """UPDATE files SET status = 'failed', status_reason = %s, updated_at = now()
                   WHERE id::text = %s AND status = 'processing'""", (reason[:2000], file_id))
        return None


handle = serve(DeadLetter())
