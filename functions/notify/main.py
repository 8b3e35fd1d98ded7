"""notify: tells a person something. Reminders that fire, and (when the user set `notify_on_ready`)
files that became ready or failed, are pushed with Firebase Cloud Messaging to every device the user
registered, and every notification is recorded, so `GET /v1/notifications` is also their inbox.

A token FCM reports unregistered or invalid is removed; a transient FCM error (unavailable, internal,
quota) answers 5xx so the broker retries with backoff. Without Firebase credentials (the local stack)
notifications are recorded on the `inbox` channel and logged."""
from __future__ import annotations

import logging

from psycopg.types.json import Jsonb

from events.catalogue import FileFailed, FileReady, NotificationKind, NotificationRequested
from functions.notify.fcm import FCM, meaning
from shared.stage import Context, Stage, serve

log = logging.getLogger("mindspace.notify")


class Transient(Exception):
    """FCM could not take the message now; the broker retries the delivery."""


class Notify(Stage):
    name = "notify"
    consumes = (NotificationRequested, FileReady, FileFailed)

    def start(self, cfg) -> None:
        self.fcm = None
        if cfg.firebase_credentials:
            try:  # read now: a missing or placeholder key is said at start, not found at the first push
                self.fcm = FCM(cfg.firebase_credentials, cfg.firebase_project_id, cfg.fcm_url)
                self.fcm.app()
            except Exception as e:
                log.error("the Firebase service account %s cannot be used (%s)", cfg.firebase_credentials, e)
                self.fcm = None
        if self.fcm is None:
            log.warning("no Firebase service account (FIREBASE_CREDENTIALS=%r): notifications are recorded in "
                        "each user's inbox (GET /v1/notifications), not pushed", cfg.firebase_credentials)

    def stop(self) -> None:
        if self.fcm:
            self.fcm.close()

    def handle(self, event, ctx: Context) -> None:
        if isinstance(event, (FileReady, FileFailed)):
            wants = ctx.db.execute("SELECT notify_on_ready FROM user_settings WHERE user_id = %s",
                                   (event.user_id,)).fetchone()
            if not (wants and wants["notify_on_ready"]):
                ctx.detail["skipped"] = "notify_on_ready is off"
                return None
            event = about_file(event)
        # What retrying cannot change ends here as nothing to do: a user deleted meanwhile (their rows went
        # with them), a reminder deleted between its firing and this delivery.
        if not ctx.db.execute("SELECT 1 FROM users WHERE id = %s", (event.user_id,)).fetchone():
            ctx.detail["skipped"] = f"no user {event.user_id}"
            return None
        if event.reminder_id is not None and not ctx.db.execute(
                "SELECT 1 FROM reminders WHERE id = %s AND user_id = %s",
                (event.reminder_id, event.user_id)).fetchone():
            ctx.detail["skipped"] = f"reminder {event.reminder_id} was deleted"
            return None
        # Claim the key first: a concurrent delivery of the same notification waits on this row, then
        # finds it taken (or, if this one fails and rolls back, takes it over).
        claimed = ctx.db.execute(
            """INSERT INTO notifications (user_id, key, kind, title, body, reminder_id, file_id, channel, status)
               VALUES (%s, %s, %s, %s, %s, %s, %s, 'inbox', 'sending') ON CONFLICT (key) DO NOTHING RETURNING id""",
            (event.user_id, event.key, event.kind.value, event.title, event.body, event.reminder_id,
             event.file_id)).fetchone()
        if claimed is None:
            ctx.detail["skipped"] = "already notified"  # the same reminder occurrence or file, told once
            return None
        channel, status, detail = self.deliver(event, ctx) if self.fcm else ("inbox", "recorded", {})
        # Its id, never its title: a suggested reminder's title is a sentence of the user's file.
        log.info("notification %s (%s) to %s: %s, %s", claimed["id"], event.kind, event.user_id, channel, status)
        ctx.db.execute("UPDATE notifications SET channel = %s, status = %s, detail = %s WHERE id = %s",
                       (channel, status, Jsonb(detail), claimed["id"]))
        ctx.detail.update(channel=channel, status=status)
        return None

    def deliver(self, event: NotificationRequested, ctx: Context) -> tuple[str, str, dict]:
        tokens = [r["token"] for r in ctx.db.execute("SELECT token FROM devices WHERE user_id = %s ORDER BY token",
                                                     (event.user_id,))]
        data = {"kind": event.kind.value, **{k: str(v) for k, v in (("reminder_id", event.reminder_id),
                                                                     ("file_id", event.file_id)) if v}}
        sent, removed, errors = [], [], []
        for token in tokens:
            try:
                sent.append(self.fcm.send(token, event.title, event.body, data))
            except Exception as e:  # firebase-admin's and google-auth's errors, sorted by what they mean
                kind = meaning(e)
                if kind == "transient":
                    raise Transient(f"FCM: {type(e).__name__}: {e}") from e
                if kind == "gone":
                    ctx.db.execute("DELETE FROM devices WHERE token = %s", (token,))
                    removed.append(token[:12] + "…")
                errors.append(f"{type(e).__name__}: {e}"[:300])
        status = "sent" if sent else "no devices" if not tokens else "failed"
        return "fcm", status, {"sent": len(sent), "devices": len(tokens), "removed": removed, "errors": errors}


def about_file(event: FileReady | FileFailed) -> NotificationRequested:
    if isinstance(event, FileReady):
        kind, title, body = NotificationKind.file_ready, f"{event.filename} is ready", "Search it, or see its tags."
    else:
        kind, title, body = NotificationKind.file_failed, f"{event.filename} could not be read", event.reason
    return NotificationRequested(user_id=event.user_id, key=f"{kind.value}:{event.file_id}", kind=kind,
                                 title=title[:300], body=body[:2000], file_id=event.file_id)


handle = serve(Notify())
