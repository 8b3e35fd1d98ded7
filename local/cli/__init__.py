"""`mindspace`: run the local stack, or talk to a running API (upload, status, search, files).

One module per job, each adding its own commands: the stack (run.py: `run`, and the local broker's
`broker`), the API client (files.py, moving.py, ask.py, recall.py, reminders.py: what a person does), operator tools
that go through the API (operators.py: `jobs`, `dead-letters`), and the database tools (database.py:
`migrate`, `backup-db`, `restore-db`)."""
from __future__ import annotations

import argparse
import os
import sys

from local.cli import ask, database, files, moving, operators, recall, reminders, run
from local.cli.client import console

__all__ = ["console", "main"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mindspace", description=__doc__.partition("\n")[0])
    p.add_argument("--api", default=os.environ.get("MINDSPACE_API", "http://127.0.0.1:8080"),
                   help="the API's URL (MINDSPACE_API)")
    p.add_argument("--token", help="bearer token (MINDSPACE_TOKEN; default dev:$MINDSPACE_USER or dev:me)")
    sub = p.add_subparsers(dest="command", required=True)
    for job in (run, files, moving, ask, recall, reminders, operators, database):
        job.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["broker"]:  # its options are its own
        return run.broker(argv[1:])
    args = parser().parse_args(argv)
    args.func(args)
