"""Everything in and out: capture a web page by its URL, import an archive of notes from elsewhere (Google Keep,
a Markdown folder or Obsidian vault, Evernote, a Mindspace export), and export all of one's memory as a zip."""
from __future__ import annotations

import time
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

from local.cli.client import check, client, console
from local.cli.files import stages_line


def add_commands(sub) -> None:
    s = sub.add_parser("capture", help="capture web pages by their URLs (or a shared text holding one)")
    s.add_argument("urls", nargs="+")
    s.add_argument("--no-wait", dest="wait", action="store_false")
    s.add_argument("--timeout", type=float, default=300)
    s.set_defaults(func=cmd_capture)
    s = sub.add_parser("import", help="import a Google Keep export, a Markdown/Obsidian zip, an Evernote .enex or "
                                      "a Mindspace export")
    s.add_argument("archive", type=Path)
    s.add_argument("--no-wait", dest="wait", action="store_false")
    s.set_defaults(func=cmd_import)
    s = sub.add_parser("export", help="export all your files, texts, tags and reminders as one zip")
    s.add_argument("-o", "--output", type=Path, help="where to write it (default: the name the API gives)")
    s.set_defaults(func=cmd_export)


def cmd_capture(args) -> None:
    with client(args) as c:
        ids = []
        for url in args.urls:
            f = check(c.post("/v1/captures", json={"url": url} if "://" in url.split()[0] else {"text": url}))
            console.print(f"{f['id']}  {url}{'  [dim](captured before)[/]' if f.get('duplicate') else ''}")
            ids.append(f["id"])
        deadline = time.monotonic() + args.timeout
        while ids and args.wait and time.monotonic() < deadline:
            for fid in list(ids):
                f = check(c.get(f"/v1/files/{fid}"))
                if f["status"] != "processing":
                    colour = "green" if f["status"] == "ready" else "red"
                    console.print(f"[{colour}]{f['status']}[/] {f['filename']}  {stages_line(f)}"
                                  + (f"\n  {f['status_reason']}" if f["status_reason"] else ""))
                    ids.remove(fid)
            time.sleep(0.5)


def cmd_import(args) -> None:
    size = args.archive.stat().st_size
    with client(args) as c, Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                     TransferSpeedColumn(), console=console) as bar:
        task = bar.add_task(f"sending {args.archive.name}", total=size)

        def chunks():
            with args.archive.open("rb") as fh:
                while chunk := fh.read(1024 * 1024):
                    bar.advance(task, len(chunk))
                    yield chunk
        # A multipart body streamed from the file: httpx sends a generator as it reads it.
        boundary = "mindspace-import-boundary"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{args.archive.name}\""
                "\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def body():
            yield head
            yield from chunks()
            yield tail
        job = check(c.post("/v1/imports", content=body(), timeout=None, headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail))}))
    console.print(f"import {job['id']}: {job['status']}")
    if not args.wait:
        return
    with client(args) as c, Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}"
                                     "/{task.total}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("importing", total=None)
        while job["status"] in ("queued", "running"):
            time.sleep(0.5)
            job = check(c.get(f"/v1/imports/{job['id']}"))
            bar.update(task, total=job["total"] or None, completed=job["done"],
                       description=f"importing {job['format'] or ''}".strip())
    if job["status"] == "done":
        console.print(f"[green]done[/]: {job['total']} notes and attachments read, {job['added']} new files "
                      "(each now goes through the stages: `mindspace files`)")
    else:
        console.print(f"[red]failed[/]: {job['reason']}")
        raise SystemExit(1)


def cmd_export(args) -> None:
    with client(args) as c:
        job = check(c.post("/v1/exports"))
        with c.stream("GET", job["download"], timeout=None) as resp:
            if resp.is_error:
                resp.read()
                check(resp)
            name = resp.headers.get("content-disposition", "").partition('filename="')[2].rstrip('"')
            out = args.output or Path(name or "mindspace-export.zip")
            with out.open("wb") as fh, Progress(TextColumn("{task.description}"), DownloadColumn(),
                                                TransferSpeedColumn(), TimeElapsedColumn(), console=console) as bar:
                task = bar.add_task(f"{job['files']} files", total=None)
                for chunk in resp.iter_bytes():
                    fh.write(chunk)
                    bar.advance(task, len(chunk))
    console.print(f"wrote {out}")
