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
    """Until a stop signal: SIGTERM, SIGINT (Ctrl-C) or SIGHUP at any moment stops whatever was started, in
    order, and the command exits with 128 + the signal (143, 130, 129), as a shell reports a command it ended."""
    import signal

    from local.stack import Stack
    from shared.config import settings
    from shared.observability import setup_logging

    setup_logging("stack", "INFO", "console")  # the terminal of `make run`; its processes log likewise
    log = logging.getLogger("mindspace.stack")
    stack = Stack(settings(), port=args.port, containers=args.containers, reload=args.reload)
    stack.stop_on_signals()  # before anything is started
    started = False
    try:
        stack.start()  # a signal or a failure stops what it started, then raises
        started = True
        _banner(stack, settings())  # fails once the terminal is gone (SIGHUP): stopped all the same
        stack.watch()
    except BaseException as e:
        if stack.stop_signal is None:  # a failure, not a stop
            if not isinstance(e, Exception):
                raise
            log.error("the local stack %s: %s", "failed" if started else "did not start", e)
            sys.exit(1)
    finally:
        if started:
            stack.stop()
    status = 128 + stack.stop_signal
    log.info("the local stack stopped on %s; exiting with %d", signal.Signals(stack.stop_signal).name, status)
    sys.exit(status)


def _banner(stack, cfg) -> None:
    if not cfg.firebase_credentials:
        console.print("[yellow]No FIREBASE_CREDENTIALS:[/] notifications are recorded in your inbox "
                      "([cyan]mindspace notifications[/]), not pushed to phones.")
    console.print(f"\n[bold green]Mindspace is running.[/] API: {stack.api_url}  "
                  f"(OpenAPI: {stack.api_url}/docs)\nTry: [cyan]mindspace upload notes.md[/] then "
                  f"[cyan]mindspace search 'what did I write about…'[/]   Ctrl-C stops it.")
    if stack.reload:
        console.print("Saving a file under functions/, shared/, events/ or api/ restarts the functions that run it.")
    console.print()


def broker(argv: list[str]) -> None:
    from local.broker import main

    main(argv)
