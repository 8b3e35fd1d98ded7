"""`mindspace`: run the local stack, or talk to a running API (upload, status, search, files)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from events import wire

console = Console()
STAGE_MARK = {"done": "[green]✓[/]", "running": "[yellow]…[/]", "retrying": "[yellow]↻[/]",
              "failed": "[red]✗[/]", "skipped": "[dim]-[/]"}


def client(args) -> httpx.Client:
    token = args.token or os.environ.get("MINDSPACE_TOKEN") or f"dev:{os.environ.get('MINDSPACE_USER', 'me')}"
    return httpx.Client(base_url=args.api, headers={"Authorization": f"Bearer {token}"}, timeout=120)


def check(resp: httpx.Response) -> dict | list | None:
    if resp.is_error:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        console.print(f"[red]error {resp.status_code}:[/] {detail}")
        sys.exit(1)
    return resp.json() if resp.content else None


def stages_line(f: dict) -> str:
    return "  ".join(f"{STAGE_MARK.get(s['status'], '?')} {name}" for name, s in f["stages"].items())


def cmd_run(args) -> None:
    import logging

    from local.stack import Stack
    from shared.config import settings
    from shared.observability import setup_logging

    setup_logging("stack", "INFO")
    stack = Stack(settings(), port=args.port)
    try:
        stack.start()
    except Exception as e:
        logging.getLogger("mindspace.stack").error("the local stack did not start: %s", e)
        sys.exit(1)
    if not settings().firebase_credentials:
        console.print("[yellow]No FIREBASE_CREDENTIALS:[/] notifications are recorded in your inbox "
                      "([cyan]mindspace notifications[/]), not pushed to phones.")
    console.print(f"\n[bold green]Mindspace is running.[/] API: {stack.api_url}  "
                  f"(OpenAPI: {stack.api_url}/docs)\nTry: [cyan]mindspace upload notes.md[/] then "
                  f"[cyan]mindspace search 'what did I write about…'[/]   Ctrl-C stops it.\n")
    stack.watch()


def cmd_migrate(args) -> None:
    from shared import db
    from shared.config import settings

    url = settings().database_url
    if not url:
        console.print("[red]DATABASE_URL is not set[/]")
        sys.exit(2)
    applied = db.migrate(url)
    console.print(f"applied {', '.join(applied)}" if applied else "the database is up to date")


def cmd_upload(args) -> None:
    with client(args) as c, Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                     TextColumn("{task.fields[stages]}"), TimeElapsedColumn(),
                                     console=console) as bar:
        tasks = {}
        for path in map(Path, args.files):
            task = bar.add_task(path.name, total=None, stages="uploading")
            with path.open("rb") as fh:
                resp = c.post("/v1/files", files={"file": (path.name, fh)})
            if resp.is_error:
                bar.update(task, total=1, completed=1, stages=f"[red]{resp.status_code}: "
                           f"{resp.json().get('detail', resp.text) if resp.content else ''}[/]")
                continue
            f = resp.json()
            tasks[f["id"]] = task
            bar.update(task, description=f"{path.name} [dim]{f['id'][:8]}[/]")
        deadline = time.monotonic() + args.timeout
        while tasks and args.wait and time.monotonic() < deadline:
            for fid, task in list(tasks.items()):
                f = check(c.get(f"/v1/files/{fid}"))
                done = sum(s["status"] == "done" for s in f["stages"].values())
                finished = f["status"] != "processing"
                total = len(f["stages"]) + (0 if finished else 1)
                label = stages_line(f) + ("" if f["status"] in ("processing", "ready") else
                                          f"  [red]{f['status']}: {f['status_reason']}[/]")
                bar.update(task, total=total, completed=total if finished else done, stages=label)
                if finished:
                    del tasks[fid]
            time.sleep(0.5)


def cmd_status(args) -> None:
    with client(args) as c:
        f = check(c.get(f"/v1/files/{args.id}"))
    console.print(f"[bold]{f['filename']}[/] {f['id']}  {f['media_type']} ({f['category']}), "
                  f"{f['size']} bytes  status: [bold]{f['status']}[/] {f['status_reason'] or ''}")
    table = Table("stage", "status", "attempts", "detail", "error")
    for name, s in f["stages"].items():
        detail = ", ".join(f"{k}={v}" for k, v in s["detail"].items())
        table.add_row(name, f"{STAGE_MARK.get(s['status'], '')} {s['status']}", str(s["attempts"]), detail,
                      s["error"] or "")
    console.print(table)


def cmd_files(args) -> None:
    with client(args) as c:
        files = check(c.get("/v1/files", params={"limit": args.limit}))
    table = Table("id", "name", "type", "status", "uploaded")
    for f in files:
        table.add_row(f["id"], f["filename"], f["media_type"], f["status"], str(f["created_at"])[:19])
    console.print(table)


def where_in(locator: dict) -> str:
    """{"page": 3} -> "page 3"; {"start_s": 61.0, "end_s": 118.5} -> "at 1:01-1:58"."""
    if "start_s" in locator:
        return "at " + "-".join(f"{int(locator[k]) // 60}:{int(locator[k]) % 60:02d}" for k in ("start_s", "end_s"))
    return ", ".join(f"{k} {v}" for k, v in locator.items())


def cmd_search(args) -> None:
    params = {"q": " ".join(args.query), "limit": args.limit, "mode": args.mode, "tag": args.tag,
              "cluster": args.cluster, "kind": args.kind}
    with client(args) as c:
        result = check(c.get("/v1/search", params={k: v for k, v in params.items() if v is not None}))
    if not result["hits"]:
        console.print("[dim]nothing found[/]")
    for i, h in enumerate(result["hits"], 1):
        where = where_in(h["locator"])
        console.print(f"[bold]{i}. {h['filename']}[/] [dim]{h['file_id']} score {h['score']:.3f} {where}[/]")
        console.print(f"   {' '.join(h['passage'].split())[:300]}")


def cmd_tags(args) -> None:
    with client(args) as c:
        tags = check(c.get("/v1/tags", params={"limit": args.limit, **({"kind": args.kind} if args.kind else {})}))
    table = Table("tag", "kind", "files")
    for t in tags:
        table.add_row(t["label"], t["kind"], str(t["files"]))
    console.print(table if tags else "[dim]no tags yet[/]")


def cmd_clusters(args) -> None:
    with client(args) as c:
        if args.refresh:
            check(c.post("/v1/clusters/refresh"))
            console.print("re-clustering your files; run `mindspace clusters` again in a moment")
            return
        clusters = check(c.get("/v1/clusters"))
    table = Table("id", "label", "files", "for example")
    for k in clusters:
        table.add_row(str(k["id"]), k["label"], str(k["size"]), ", ".join(f["filename"] for f in k["files"]))
    console.print(table if clusters else "[dim]no clusters yet (they form once a few files are alike)[/]")


def cmd_dead_letters(args) -> None:
    """Operators: what the broker gave up on, and replaying it once the cause is fixed."""
    import psycopg
    from psycopg.rows import dict_row

    from shared import lifecycle
    from shared.config import settings

    cfg = settings()
    running = cfg.data_dir / "stack.json"
    local = json.loads(running.read_text()) if running.exists() else {}
    url = cfg.database_url or local.get("database_url")
    sink = cfg.k_sink or local.get("broker")
    if not url:
        sys.exit("set DATABASE_URL, or start the local stack (mindspace run) in this folder")
    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
        if args.replay and args.replay != ["all"]:
            where = "id = ANY(%(ids)s::bigint[])"
        else:
            where = "true" if args.all and not args.replay else "replayed_at IS NULL"
        rows = conn.execute(f"SELECT * FROM dead_letters WHERE {where} ORDER BY id",  # nosec B608  # fixed fragments
                            {"ids": args.replay}).fetchall()
        if not args.replay:
            table = Table("id", "type", "file", "failed at", "code", "error", "received")
            for r in rows:
                table.add_row(str(r["id"]), r["event_type"].removeprefix("com.mindspace."), str(r["file_id"] or ""),
                              r["error_dest"] or "", r["error_code"] or "", (r["error_data"] or "")[:80],
                              str(r["received_at"])[:19])
            console.print(table if rows else "[dim]no dead letters[/]")
            return
        if not sink:
            sys.exit("set K_SINK to the broker's URL, or start the local stack (mindspace run) in this folder")
        for r in rows:
            event = {k: v for k, v in r["event"].items() if not k.startswith("knativeerror")}
            if r["file_id"]:
                lifecycle.reopen(conn, r["file_id"])
            headers, body = wire.binary(wire.from_json(event))
            httpx.post(sink, headers=headers, content=body, timeout=30).raise_for_status()
            conn.execute("UPDATE dead_letters SET replayed_at = now() WHERE id = %s", (r["id"],))
            console.print(f"replayed {r['id']}: {r['event_type']} {r['event_id']}")


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
    with client(args) as c:
        current = check(c.put("/v1/settings", json=change) if change else c.get("/v1/settings"))
    for k, v in current.items():
        console.print(f"{k:16} {v if v is not None else '[dim]none[/]'}")


def cmd_delete(args) -> None:
    with client(args) as c:
        check(c.delete(f"/v1/files/{args.id}"))
    console.print(f"deleted {args.id}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="mindspace", description=__doc__)
    p.add_argument("--api", default=os.environ.get("MINDSPACE_API", "http://127.0.0.1:8080"),
                   help="the API's URL (MINDSPACE_API)")
    p.add_argument("--token", help="bearer token (MINDSPACE_TOKEN; default dev:$MINDSPACE_USER or dev:me)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("run", help="start the local stack")
    s.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8080)))
    s.set_defaults(func=cmd_run)
    sub.add_parser("broker", help="the local broker (the local stack starts it; see --help)")
    s = sub.add_parser("migrate", help="apply the database migrations")
    s.set_defaults(func=cmd_migrate)
    s = sub.add_parser("upload", help="upload files and follow them through the stages")
    s.add_argument("files", nargs="+")
    s.add_argument("--no-wait", dest="wait", action="store_false")
    s.add_argument("--timeout", type=float, default=600)
    s.set_defaults(func=cmd_upload)
    s = sub.add_parser("status", help="a file's record, stage by stage")
    s.add_argument("id")
    s.set_defaults(func=cmd_status)
    s = sub.add_parser("files", help="list your files")
    s.add_argument("--limit", type=int, default=50)
    s.set_defaults(func=cmd_files)
    s = sub.add_parser("search", help="search your files by meaning and words")
    s.add_argument("query", nargs="+")
    s.add_argument("--limit", type=int, default=10)
    s.add_argument("--mode", choices=["hybrid", "vector", "text"], default="hybrid")
    s.add_argument("--tag", help="only files with this tag")
    s.add_argument("--cluster", type=int, help="only files in this cluster")
    s.add_argument("--kind", choices=["text", "image", "pdf", "audio", "video", "other"])
    s.set_defaults(func=cmd_search)
    s = sub.add_parser("tags", help="your tags, most used first")
    s.add_argument("--kind", help="person, organization, place, date, money, phrase …")
    s.add_argument("--limit", type=int, default=50)
    s.set_defaults(func=cmd_tags)
    s = sub.add_parser("clusters", help="your files grouped by meaning")
    s.add_argument("--refresh", action="store_true", help="re-cluster all your files now")
    s.set_defaults(func=cmd_clusters)
    s = sub.add_parser("dead-letters", help="operators: list dead-lettered events, or replay them")
    s.add_argument("--replay", nargs="+", metavar="ID", help="replay these dead letters ('all': every unreplayed)")
    s.add_argument("--all", action="store_true", help="list replayed ones too")
    s.set_defaults(func=cmd_dead_letters)
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
    s.set_defaults(func=cmd_settings)
    s = sub.add_parser("delete", help="delete a file, its text and its chunks")
    s.add_argument("id")
    s.set_defaults(func=cmd_delete)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["broker"]:  # its options are its own
        from local.broker import main as broker_main

        return broker_main(argv[1:])
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
