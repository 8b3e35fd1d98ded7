"""The API client for one's files: upload (following each file through the stages), status, list, search,
tags, clusters, delete."""
from __future__ import annotations

import os
import time
from pathlib import Path

from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from local.cli.client import check, client, console

STAGE_MARK = {"done": "[green]✓[/]", "running": "[yellow]…[/]", "retrying": "[yellow]↻[/]",
              "failed": "[red]✗[/]", "skipped": "[dim]-[/]"}


def add_commands(sub) -> None:
    s = sub.add_parser("upload", help="upload files and follow them through the stages")
    s.add_argument("files", nargs="+")
    s.add_argument("--no-wait", dest="wait", action="store_false")
    s.add_argument("--timeout", type=float, default=600)
    s.add_argument("--resumable-above", type=int, default=8 * 1024 * 1024, metavar="BYTES",
                   help="larger files go up resumably (tus), and a cut upload resumes when run again")
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
    s.add_argument("--kind", choices=["text", "image", "pdf", "audio", "video", "link", "other"])
    s.set_defaults(func=cmd_search)
    s = sub.add_parser("tags", help="your tags, most used first")
    s.add_argument("--kind", help="person, organization, place, date, money, phrase …")
    s.add_argument("--limit", type=int, default=50)
    s.set_defaults(func=cmd_tags)
    s = sub.add_parser("clusters", help="your files grouped by meaning")
    s.add_argument("--refresh", action="store_true", help="re-cluster all your files now")
    s.set_defaults(func=cmd_clusters)
    s = sub.add_parser("delete", help="delete a file, its text and its chunks")
    s.add_argument("id")
    s.set_defaults(func=cmd_delete)


def stages_line(f: dict) -> str:
    return "  ".join(f"{STAGE_MARK.get(s['status'], '?')} {name}" for name, s in f["stages"].items())


def cmd_upload(args) -> None:
    with client(args) as c, Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                     TextColumn("{task.fields[stages]}"), TimeElapsedColumn(),
                                     console=console) as bar:
        tasks = {}
        for path in map(Path, args.files):
            task = bar.add_task(path.name, total=None, stages="uploading")
            if path.stat().st_size > args.resumable_above:
                try:
                    file_id = resumable(args, c, path, lambda sent, size, t=task: bar.update(
                        t, total=size, completed=sent, stages=f"uploading {sent * 100 // size}%"))
                except Exception as e:  # noqa: BLE001 - tuspy's errors; the next run resumes
                    bar.update(task, total=1, completed=1, stages=f"[red]cut: {e}; run it again to resume[/]")
                    continue
                tasks[file_id] = task
                bar.update(task, description=f"{path.name} [dim]{file_id[:8]}[/]")
                continue
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


def resumable(args, c, path: Path, progress) -> str:
    """A large file through tus (POST /v1/uploads) with tuspy, the tus project's client: its upload URL is
    kept in the user's cache, so a run cut short resumes from where the server says it stands."""
    from tusclient import client as tus
    from tusclient.exceptions import TusCommunicationError
    from tusclient.fingerprint.fingerprint import Fingerprint
    from tusclient.storage.filestorage import FileStorage

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mindspace"
    cache.mkdir(parents=True, exist_ok=True)
    storage = FileStorage(str(cache / "uploads.json"))
    server = tus.TusClient(f"{args.api}/v1/uploads", headers={"Authorization": c.headers["authorization"]})

    def uploader():
        return server.uploader(str(path), chunk_size=8 * 1024 * 1024, metadata={"filename": path.name},
                               store_url=True, url_storage=storage, retries=3, retry_delay=2)
    try:
        up = uploader()
    except TusCommunicationError:  # the stored upload expired or was ended: start again
        with path.open("rb") as fh:
            storage.remove_item(Fingerprint().get_fingerprint(fh))
        up = uploader()
    while up.offset < up.get_file_size():
        up.upload_chunk()
        progress(up.offset, up.get_file_size())
    if up.request is None:  # it was whole already: the server knows its file
        return c.head(up.url, headers={"Tus-Resumable": "1.0.0"}).headers["mindspace-file-id"]
    return up.request.response_headers["mindspace-file-id"]


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
        table.add_row(escape(t["label"]), t["kind"], str(t["files"]))  # people's words, not rich markup
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
        table.add_row(str(k["id"]), escape(k["label"]), str(k["size"]),
                      escape(", ".join(f["filename"] for f in k["files"])))
    console.print(table if clusters else "[dim]no clusters yet (they form once a few files are alike)[/]")


def cmd_delete(args) -> None:
    with client(args) as c:
        check(c.delete(f"/v1/files/{args.id}"))
    console.print(f"deleted {args.id}")
