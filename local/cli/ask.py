"""`mindspace ask "…"`: a question answered from one's files, printed as it is written (the API's
text/event-stream), with the passages it cites below."""
from __future__ import annotations

import json
import sys

from rich.markup import escape

from local.cli.client import check, client, console
from local.cli.files import where_in


def add_commands(sub) -> None:
    s = sub.add_parser("ask", help="ask your files a question; the answer cites where it came from")
    s.add_argument("question", nargs="+")
    s.add_argument("--tag", help="only files with this tag")
    s.add_argument("--cluster", type=int, help="only files in this cluster")
    s.add_argument("--kind", choices=["text", "image", "pdf", "audio", "video", "other"])
    s.set_defaults(func=cmd_ask)


def events(resp):
    """(event, data) of a text/event-stream, as the API writes it."""
    event = None
    for line in resp.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:])


def cmd_ask(args) -> None:
    filters = {k: v for k in ("tag", "cluster", "kind") if (v := getattr(args, k)) is not None}
    body = {"question": " ".join(args.question), "filters": filters}
    head, done = {"citations": []}, {}
    with client(args) as c, c.stream("POST", "/v1/ask", json=body, headers={"Accept": "text/event-stream"}) as resp:
        if resp.is_error:
            resp.read()
            check(resp)
        for event, data in events(resp):
            if event == "citations":
                head = data
            elif event == "answer":
                sys.stdout.write(data["text"])
                sys.stdout.flush()
            elif event == "error":
                console.print(f"\n[red]error {data['status']}:[/] {data['detail']}")
            elif event == "done":
                done = data
    print()
    for cite in head["citations"]:
        where = where_in(cite["locator"])
        console.print(f"[bold][{cite['n']}] {escape(cite['name'])}[/] [dim]{cite['file_id']} {where}[/]")
        console.print(f"    {escape(' '.join(cite['passage'].split())[:300])}")
    usage = done.get("usage") or {}
    console.print(f"[dim]{head.get('provider', '?')} ({head.get('model', '?')}); "
                  f"{usage.get('total_tokens', 0)} tokens[/]")
