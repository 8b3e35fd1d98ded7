"""The API client for the rest of a person's loop: reminders set and suggested, what they were told
(their inbox), and their settings."""
from __future__ import annotations

import argparse
import sys

from rich.table import Table

from local.cli.client import check, client, console


def add_commands(sub) -> None:
    s = sub.add_parser("remind", help="set a reminder: remind 'call the plumber' --at '2026-12-01 09:00'")
    s.add_argument("title")
    s.add_argument("--at", required=True, help="when, in your time zone: '2026-12-01 09:00', 'tomorrow 9am'")
    s.add_argument("--every", metavar="RRULE", help="repeat by an RFC 5545 rule, e.g. FREQ=WEEKLY;BYDAY=MO")
    s.add_argument("--tz", help="an IANA time zone (default: your settings')")
    s.add_argument("--file", help="the file it is about")
    s.set_defaults(func=cmd_remind)
    s = sub.add_parser("reminders", help="your scheduled reminders; --suggested to review suggestions")
    s.add_argument("--suggested", action="store_true", help="reminders suggested from your files' dates")
    s.add_argument("--all", action="store_true", help="every status: suggested, scheduled, done, dismissed")
    s.add_argument("--accept", nargs="+", metavar="ID", help="schedule these suggestions")
    s.add_argument("--dismiss", nargs="+", metavar="ID", help="drop these reminders")
    s.add_argument("--delete", nargs="+", metavar="ID", help="delete these reminders")
    s.set_defaults(func=cmd_reminders)
    s = sub.add_parser("notifications", help="what you were told, newest first")
    s.add_argument("--limit", type=int, default=30)
    s.set_defaults(func=cmd_notifications)
    s = sub.add_parser("settings", help="show or change your settings")
    s.add_argument("--timezone", help="an IANA name, e.g. Europe/Berlin")
    s.add_argument("--notify-on-ready", dest="notify_on_ready", action=argparse.BooleanOptionalAction,
                   help="a push when a file becomes ready or fails")
    s.add_argument("--backup-bucket", help="copy ready files to this Cloud Storage bucket")
    s.add_argument("--no-backup", action="store_true", help="stop backing up")
    s.add_argument("--languages", help="the languages of your files, most used first: en,de,fr")
    s.add_argument("--digest-at", help="the local time of your daily digest, e.g. 07:30; 'off' for none")
    s.set_defaults(func=cmd_settings)


def local_time(text: str, tz: str) -> str:
    """'2026-12-01 09:00', 'tomorrow 9am' or RFC 3339: read in the user's zone, sent with its offset."""
    import dateparser

    when = dateparser.parse(text, languages=["en"], settings={
        "TIMEZONE": tz, "RETURN_AS_TIMEZONE_AWARE": True, "PREFER_DATES_FROM": "future"})
    if when is None:
        console.print(f"[red]cannot read {text!r} as a date and time[/] (try '2026-12-01 09:00' or 'tomorrow 9am')")
        sys.exit(2)
    return when.isoformat()


def in_zone(stamp: str, tz: str) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return f"{datetime.fromisoformat(stamp).astimezone(ZoneInfo(tz)):%a %Y-%m-%d %H:%M}"


def reminder_row(table: Table, r: dict) -> None:
    when = in_zone(r["next_at"] or r["due_at"], r["timezone"])
    table.add_row(str(r["id"]), r["status"], r["title"][:60], when, r["timezone"],
                  r["rrule"] or "", (r["file_id"] or "")[:8])


def cmd_remind(args) -> None:
    with client(args) as c:
        tz = args.tz or check(c.get("/v1/settings"))["timezone"]
        body = {"title": args.title, "due_at": local_time(args.at, tz), "timezone": tz, "rrule": args.every,
                "file_id": args.file}
        r = check(c.post("/v1/reminders", json={k: v for k, v in body.items() if v is not None}))
    console.print(f"reminder {r['id']}: [bold]{r['title']}[/] at {in_zone(r['next_at'], r['timezone'])} "
                  f"({r['timezone']}){' repeating ' + r['rrule'] if r['rrule'] else ''}")


def cmd_reminders(args) -> None:
    with client(args) as c:
        for action, status in (("accept", "scheduled"), ("dismiss", "dismissed")):
            for rid in getattr(args, action) or []:
                r = check(c.patch(f"/v1/reminders/{rid}", json={"status": status}))
                console.print(f"{r['id']}: {r['status']} — {r['title']}")
        for rid in args.delete or []:
            check(c.delete(f"/v1/reminders/{rid}"))
            console.print(f"{rid}: deleted")
        if args.accept or args.dismiss or args.delete:
            return
        status = "suggested" if args.suggested else None if args.all else "scheduled"
        items = check(c.get("/v1/reminders", params={"status": status} if status else {}))
    table = Table("id", "status", "title", "next", "zone", "repeats", "file")
    for r in items:
        reminder_row(table, r)
    console.print(table if items else f"[dim]no {status or ''} reminders[/]")
    if args.suggested and items:
        console.print("accept with [cyan]mindspace reminders --accept ID[/], or [cyan]--dismiss ID[/]")


def cmd_notifications(args) -> None:
    with client(args) as c:
        items = check(c.get("/v1/notifications", params={"limit": args.limit}))
    table = Table("when", "kind", "title", "body", "channel", "status")
    for n in items:
        table.add_row(str(n["created_at"])[:19].replace("T", " "), n["kind"], n["title"][:50], n["body"][:50],
                      n["channel"], n["status"])
    console.print(table if items else "[dim]no notifications yet[/]")


def cmd_settings(args) -> None:
    change = {k: v for k, v in (("timezone", args.timezone), ("notify_on_ready", args.notify_on_ready),
                                ("backup_bucket", args.backup_bucket)) if v is not None}
    if args.no_backup:
        change["backup_bucket"] = None
    if args.languages:
        change["languages"] = [code.strip() for code in args.languages.split(",") if code.strip()]
    if args.digest_at:
        change["digest_at"] = None if args.digest_at == "off" else args.digest_at
    with client(args) as c:
        current = check(c.put("/v1/settings", json=change) if change else c.get("/v1/settings"))
    for k, v in current.items():
        v = ",".join(v) if isinstance(v, list) else v
        console.print(f"{k:16} {v if v is not None else '[dim]none[/]'}")
