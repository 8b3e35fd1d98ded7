"""Operator tools, through the API's operators' routes only (/v1/admin; the caller must be an operator:
ADMIN_USERS, which the local stack sets to the CLI's own user, or a Firebase custom claim admin: true):
the jobs view, and the dead letters listed and replayed."""
from __future__ import annotations

import sys
import time

from rich.table import Table

from local.cli.client import check, client, console


def add_commands(sub) -> None:
    s = sub.add_parser("dead-letters", help="operators: list dead-lettered events, or replay them")
    s.add_argument("--replay", nargs="+", metavar="ID", help="replay these dead letters ('all': every unreplayed)")
    s.add_argument("--all", action="store_true", help="list replayed ones too")
    s.add_argument("--stage", help="only those that failed at this stage (embed, tag …)")
    s.set_defaults(func=cmd_dead_letters)
    s = sub.add_parser("jobs", help="operators: deliveries waiting, running, retrying, dead-lettered per stage")
    s.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    s.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (--watch)")
    s.set_defaults(func=cmd_jobs)


def cmd_dead_letters(args) -> None:
    """What the broker gave up on, and replaying it once the cause is fixed (the API's replay)."""
    with client(args) as c:
        if args.replay:
            which = {"all": True} if args.replay == ["all"] else {"ids": ids(args.replay)}
            for r in check(c.post("/v1/admin/dead-letters/replay", json={**which, "stage": args.stage})):
                console.print(f"replayed {r['id']}: {r['event_type']} {r['event_id']}")
            return
        rows = check(c.get("/v1/admin/dead-letters", params={
            "replayed": args.all, "limit": 1000, **({"stage": args.stage} if args.stage else {})}))
    table = Table("id", "stage", "type", "file", "code", "error", "received")
    for r in rows:
        table.add_row(str(r["id"]), r["stage"], r["event_type"].removeprefix("com.mindspace."), r["file_id"] or "",
                      r["error_code"] or "", (r["error_data"] or "")[:80], r["received_at"][:19].replace("T", " "))
    console.print(table if rows else "[dim]no dead letters[/]")


def ids(given: list[str]) -> list[int]:
    if not all(i.isdigit() for i in given):
        sys.exit(f"dead letters are named by their numbers (or 'all'), not {' '.join(given)}")
    return [int(i) for i in given]


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
    """Deliveries per stage (the API's /v1/admin/jobs); --watch refreshes it until Ctrl-C."""
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
