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
        rows = conn.execute(f"SELECT * FROM dead_letters WHERE {where} ORDER BY id", {"ids": args.replay}).fetchall()
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
