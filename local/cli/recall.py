"""What comes back: `mindspace related ID` (a file's related files of any kind, and why),
`mindspace duplicates` (groups of near-duplicates), `mindspace digest [--date D]` (a day's digest)."""
from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from local.cli.client import check, client, console


def add_commands(sub) -> None:
    s = sub.add_parser("related", help="a file's related files, of any kind, and what connects them")
    s.add_argument("id")
    s.add_argument("--limit", type=int, default=10)
    s.set_defaults(func=cmd_related)
    s = sub.add_parser("duplicates", help="your groups of near-duplicates (a note edited, a photo re-encoded)")
    s.set_defaults(func=cmd_duplicates)
    s = sub.add_parser("digest", help="a day's digest: on this day, related to yesterday, due today")
    s.add_argument("--date", help="YYYY-MM-DD (default: today, in your time zone)")
    s.set_defaults(func=cmd_digest)


def cmd_related(args) -> None:
    with client(args) as c:
        found = check(c.get(f"/v1/files/{args.id}/related", params={"limit": args.limit}))["related"]
    table = Table("file", "kind", "similarity", "because", "shared tags")
    for r in found:
        why = r["why"]
        table.add_row(escape(r["name"]) + (" [yellow](copy)[/]" if r["duplicate"] else ""), r["category"],
                      f"{why['similarity']:.2f}", escape(" ".join(why["related_passage"].split())[:90]),
                      escape(", ".join(why["shared_tags"])))
    console.print(table if found else "[dim]nothing related yet[/]")


def cmd_duplicates(args) -> None:
    with client(args) as c:
        groups = check(c.get("/v1/duplicates"))
    table = Table("original", "copies")
    for g in groups:
        table.add_row(escape(g["root"]["name"]), escape(", ".join(d["name"] for d in g["copies"])))
    console.print(table if groups else "[dim]no near-duplicates[/]")


def cmd_digest(args) -> None:
    with client(args) as c:
        d = check(c.get("/v1/digest", params={"date": args.date} if args.date else {}))
    console.print(f"[bold]{d['day']}[/] ({d['timezone']})" + ("" if d["sent"] is None else
                                                               f", {'sent' if d['sent'] else 'nothing to say'}"))
    for title, files in (("On this day", d["on_this_day"]), ("Related to yesterday", d["related_to_yesterday"])):
        if files:
            console.print(f"[bold]{title}[/]")
            for f in files:
                console.print(f"  {escape(f['name'])} [dim]{f['captured_at'][:10]} {f['file_id']}[/]")
    if d["due_today"]:
        console.print("[bold]Due today[/]")
        for r in d["due_today"]:
            console.print(f"  {r['due_at'][11:16]} {escape(r['title'])}")
