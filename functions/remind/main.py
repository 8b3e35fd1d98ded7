"""remind: on every tick of the per-minute PingSource, the reminders that are due fire, once each, and the
daily digests whose local time has come are composed (shared/digest.py) and sent, once per user and day.

Rows are claimed with FOR UPDATE SKIP LOCKED inside the event's transaction, so two ticks or two
replicas that overlap never fire one reminder twice; a repeating reminder moves to its first
occurrence after now, so a tick that comes late (or after the stack was stopped for an hour) fires
what fell due meanwhile once, not once per missed minute. A digest's row (user, local day) is inserted
in the same transaction as the event's record: a redelivered tick, or another replica's, finds it and
sends nothing; a day with nothing to say is recorded too, and sends nothing."""
from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from psycopg.types.json import Jsonb

from events.catalogue import NotificationKind, NotificationRequested, ScheduledTask, Task
from shared import digest, schedule
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
        digests = self.digests(ctx, now)
        ctx.detail["digests"] = len(digests)
        return out + digests

    def digests(self, ctx: Context, now: datetime) -> list[NotificationRequested]:
        """The digests whose local time has come today and that were not composed yet, composed and sent."""
        users = ctx.db.execute(
            """SELECT s.user_id, s.timezone FROM user_settings s
               WHERE s.digest_at IS NOT NULL AND (%(now)s AT TIME ZONE s.timezone)::time >= s.digest_at
                 AND NOT EXISTS (SELECT 1 FROM digests d WHERE d.user_id = s.user_id
                                 AND d.day = (%(now)s AT TIME ZONE s.timezone)::date)
               ORDER BY s.user_id LIMIT %(n)s FOR UPDATE OF s SKIP LOCKED""", {"now": now, "n": BATCH}).fetchall()
        out = []
        for u in users:
            day = now.astimezone(ZoneInfo(u["timezone"])).date()
            content = digest.compose(ctx.db, u["user_id"], day, u["timezone"])
            say = not digest.empty(content)
            if ctx.db.execute("""INSERT INTO digests (user_id, day, content, sent) VALUES (%s, %s, %s, %s)
                                 ON CONFLICT DO NOTHING RETURNING day""",
                              (u["user_id"], day, Jsonb(content), say)).fetchone() and say:
                title, body = digest.summary(content)
                out.append(NotificationRequested(user_id=u["user_id"], key=f"digest:{day.isoformat()}",
                                                 kind=NotificationKind.digest, title=title, body=body))
        return out


handle = serve(Remind())
