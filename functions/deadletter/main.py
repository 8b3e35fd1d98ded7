"""deadletter: the dead-letter sink. Records what the broker gave up on, so it can be inspected and
replayed, and ends the file's processing with the reason instead of leaving it waiting."""
from __future__ import annotations

from psycopg.types.json import Jsonb

from events import catalogue, wire
from shared import lifecycle
from shared.dead_letters import REPLAYED
from shared.metrics import DEAD_LETTERED, stage_of
from shared.stage import Context, Rejected, Stage, serve


class DeadLetter(Stage):
    name = "deadletter"
    consumes = None  # any event as it came, malformed data included
    reply_to_sink = True

    def delivery_key(self, event: wire.CloudEvent) -> str:
        # One event can fail at several subscribers: each failure is a dead letter of its own; and again
        # after each replay (which marks the event), else a replayed event failing again would be skipped.
        return f"{event['id']}@{event.get('knativeerrordest', '')}#{event.get(REPLAYED, '')}"

    def handle(self, event: wire.CloudEvent, ctx: Context) -> list:
        if event.get("knativeerrordest") is None:
            raise Rejected("not a dead letter: it carries no knativeerrordest (only the broker sends here)")
        file_id = event.get("subject")
        code, dest = event.get("knativeerrorcode"), event.get("knativeerrordest")
        reason = f"gave up delivering {event['type']} to {dest} (HTTP {code}): {event.get('knativeerrordata', '')}"
        file = ctx.db.execute("SELECT * FROM files WHERE id::text = %s", (file_id,)).fetchone()
        ctx.db.execute(
            """INSERT INTO dead_letters (event_source, event_id, event_type, event, file_id,
                                         error_dest, error_code, error_data)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (event_source, event_id, (coalesce(error_dest, ''))) DO UPDATE
               SET error_code = excluded.error_code, error_data = excluded.error_data,
                   received_at = now(), replayed_at = NULL""",
            (event["source"], event["id"], event["type"], Jsonb(wire.as_dict(event)), file and file["id"], dest,
             code, event.get("knativeerrordata")),
        )
        DEAD_LETTERED.labels(stage_of(dest)).inc()
        if event["type"] == catalogue.ImportRequested.type and isinstance(event.data, dict):  # an import's end
            ctx.db.execute("""UPDATE imports SET status = 'failed', reason = %s, finished_at = now()
                              WHERE id::text = %s AND status IN ('queued', 'running')""",
                           (reason, str(event.data.get("import_id"))))
        if file is None:
            return []
        return catalogue.announce(file, lifecycle.end(ctx.db, file["id"], "failed", reason), reason)


handle = serve(DeadLetter())
