"""remind: on every tick of the per-minute PingSource, the reminders that are due fire, once each.

Rows are claimed with FOR UPDATE SKIP LOCKED inside the event's transaction, so two ticks or two
replicas that overlap never fire one reminder twice; a repeating reminder moves to its first
occurrence after now, so a tick that comes late (or after the stack was stopped for an hour) fires
what fell due meanwhile once, not once per missed minute."""
from __future__ import annotations

import logging
from datetime import UTC, datetime

from events.catalogue import NotificationKind, NotificationRequested, ScheduledTask, Task
from shared import schedule
from shared.stage import Context, Rejected, Stage, serve

BATCH = 500  # reminders fired per tick at most; the rest fire on the next one
log = logging.getLogger("mindspace.remind")


class Remind(Stage):
    name = "remind"
    consumes = (ScheduledTask,)

    def handle(self, event: ScheduledTask, ctx: Context) -> list[NotificationRequested]:
        if event.task != Task.reminders:
            raise Rejected(f"remind runs the {Task.reminders} task, not {event.task}")
        now = datetime.now(UTC)
        due = ctx.db.execute(
            """SELECT * FROM reminders WHERE status = 'scheduled' AND next_at <= %s
               ORDER BY next_at LIMIT %s FOR UPDATE SKIP LOCKED""", (now, BATCH)).fetchall()
        out = []
        for r in due:
            try:  # one reminder whose rule cannot be expanded must not hold up everyone else's
                following = schedule.next_after(r["due_at"], r["next_at"], r["timezone"], r["rrule"], now)
            except Exception as e:
                log.error("reminder %s: its rule %r cannot be expanded (%s); it fires once more, then ends",
                          r["id"], r["rrule"], e)
                following = None
            ctx.db.execute(
                """UPDATE reminders SET next_at = %s, status = %s, fired = fired + 1, last_fired_at = now(),
                                        updated_at = now() WHERE id = %s""",
                (following, "scheduled" if following else "done", r["id"]))
            local = r["next_at"].astimezone(schedule.zone(r["timezone"]))
            out.append(NotificationRequested(
                user_id=r["user_id"], key=f"reminder:{r['id']}:{r['next_at'].isoformat()}",
                kind=NotificationKind.reminder, title=r["title"][:300],
                body=f"due {local:%a %d %b %H:%M} ({r['timezone']})", reminder_id=r["id"], file_id=r["file_id"]))
        ctx.detail["fired"] = len(out)
        return out


handle = serve(Remind())
