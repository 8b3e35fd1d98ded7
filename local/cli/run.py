"""Starting the stack: `mindspace run` (every option of the local stack is parsed here), and `mindspace
broker`, the local broker's own process, which the stack starts with options of its own."""
from __future__ import annotations

import logging
import os
import sys

from local.cli.client import console


def add_commands(sub) -> None:
    s = sub.add_parser("run", help="start the local stack")
    s.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8080)))
    s.add_argument("--containers", action="store_true",
                   help="run every function from its image (make images), as Knative runs it")
    s.add_argument("--no-reload", dest="reload", action="store_false",
                   help="do not restart a function when its code is saved")
    s.set_defaults(func=cmd_run)
    sub.add_parser("broker", help="the local broker (the local stack starts it; see --help)")


def cmd_run(args) -> None:
    from local.stack import Stack
    from shared.config import settings
    from shared.observability import setup_logging

    setup_logging("stack", "INFO", "console")  # the terminal of `make run`; its processes log likewise
    stack = Stack(settings(), port=args.port, containers=args.containers, reload=args.reload)
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
                  f"[cyan]mindspace search 'what did I write about…'[/]   Ctrl-C stops it.")
    if stack.reload:
        console.print("Saving a file under functions/, shared/, events/ or api/ restarts the functions that run it.")
    console.print()
    stack.watch()


def broker(argv: list[str]) -> None:
    from local.broker import main

    main(argv)
