"""The archives an import reads, each made into notes (`Item`s, attachments beside them): a Google Keep export
(Takeout's Keep folder: one JSON per note), a Markdown folder or Obsidian vault as a zip (front matter's tags
kept as labels, wiki-links as text), an Evernote .enex, and Mindspace's own export (api/exports.py). A zip is
checked whole before anything is read (`members`): a zip bomb, a name that climbs out of its folder or a member
too big to hold is refused, so nothing is half-imported."""
from __future__ import annotations

import base64
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import PurePosixPath

from shared import dates
from shared.errors import Rejected
from shared.media import safe_name

MiB = 1024 * 1024


@dataclass
class Item:
    key: str  # what names it within its archive (a member's path, a note's place)
    filename: str
    read: Callable[[], bytes]
    captured_at: datetime | None = None
    labels: list[str] = field(default_factory=list)
    attachments: list[Item] = field(default_factory=list)
    # Mindspace's own export only: what the file was (its id there, a link's address, its media type).
    old_id: str | None = None
    source_url: str | None = None
    media_type: str | None = None


@dataclass
class Archive:
    format: str
    items: list[Item]
    reminders: list[dict] = field(default_factory=list)  # Mindspace's own export: its reminders


def members(archive: zipfile.ZipFile, cfg) -> dict[str, zipfile.ZipInfo]:
    """Every member by name, once all passed the checks; else Rejected naming the first that did not."""
    infos = archive.infolist()
    if len(infos) > cfg.import_max_members:
        raise Rejected(f"the archive holds {len(infos)} members, over IMPORT_MAX_MEMBERS ({cfg.import_max_members})")
    total = 0
    for info in infos:
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", info.filename):
            raise Rejected(f"the archive names a member outside its folder: {info.filename!r}")
        if info.file_size > cfg.import_max_member_bytes:
            raise Rejected(f"member {info.filename!r} unpacks to {info.file_size} bytes, over "
                           f"IMPORT_MAX_MEMBER_BYTES ({cfg.import_max_member_bytes})")
        if info.file_size > MiB and info.file_size > cfg.import_max_ratio * max(info.compress_size, 1):
            raise Rejected(f"member {info.filename!r} unpacks {info.file_size // max(info.compress_size, 1)} times "
                           f"its packed size (over IMPORT_MAX_RATIO, {cfg.import_max_ratio}): a zip bomb")
        total += info.file_size
    if total > cfg.max_import_bytes:
        raise Rejected(f"the archive unpacks to {total} bytes, over MAX_IMPORT_BYTES ({cfg.max_import_bytes})")
    return {i.filename: i for i in infos if not i.is_dir()}


def reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    def read() -> bytes:
        try:  # zipfile reads no more than the size the member declares, and checks its CRC
            return archive.read(info)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise Rejected(f"member {info.filename!r} is damaged: {e}") from None
    return read


def when(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if hasattr(value, "isoformat"):  # a date (YAML reads `created: 2024-05-01` as one)
        return datetime.fromisoformat(value.isoformat()).replace(tzinfo=UTC)
    return dates.iso(str(value), "UTC")


def open_zip(fileobj, cfg) -> Archive:
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise Rejected(f"not a zip archive nor an Evernote .enex: {e}") from None
    found = members(archive, cfg)
    if "index.json" in found:
        return mindspace(archive, found)
    if any(re.search(r"(^|/)Keep/[^/]+\.json$", name) for name in found):
        return keep(archive, found)
    if any(name.lower().endswith((".md", ".markdown")) for name in found):
        return markdown(archive, found)
    raise Rejected("the zip holds no notes: expected a Google Keep export (Takeout/Keep/*.json), Markdown files "
                   "(*.md, an Obsidian vault) or a Mindspace export (index.json)")


def _json(data: bytes, name: str):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise Rejected(f"{name} is not JSON: {e}") from None


def _attachment(archive, found, folder: PurePosixPath, ref: str, key: str) -> Item | None:
    path = str(folder / ref) if str(folder) != "." else ref
    info = found.get(path) or found.get(ref)
    return info and Item(key=f"{key}/{info.filename}", filename=safe_name(PurePosixPath(ref).name),
                         read=reader(archive, info))


def keep(archive, found) -> Archive:
    items = []
    for name, info in sorted(found.items()):
        if not re.search(r"(^|/)Keep/[^/]+\.json$", name):
            continue
        note = _json(reader(archive, info)(), name)
        if not isinstance(note, dict) or note.get("isTrashed"):
            continue
        lines = [f"# {note['title']}", ""] if note.get("title") else []
        if note.get("textContent"):
            lines.append(str(note["textContent"]))
        for entry in note.get("listContent") or []:
            lines.append(f"- [{'x' if entry.get('isChecked') else ' '}] {entry.get('text', '')}")
        for link in note.get("annotations") or []:
            if link.get("url"):
                lines.append(f"\n{link.get('title') or ''} {link['url']}".rstrip())
        text = "\n".join(lines).strip()
        created = str(note.get("createdTimestampUsec") or note.get("userEditedTimestampUsec") or "")
        item = Item(key=name, filename=safe_name(f"{note.get('title') or PurePosixPath(name).stem}.md"),
                    read=lambda t=text: t.encode(),
                    captured_at=datetime.fromtimestamp(int(created) / 1e6, UTC) if created.isdigit() else None,
                    labels=[str(label["name"]) for label in note.get("labels") or [] if label.get("name")])
        folder = PurePosixPath(name).parent
        item.attachments = [a for ref in note.get("attachments") or [] if ref.get("filePath")
                            and (a := _attachment(archive, found, folder, ref["filePath"], name))]
        if text or item.attachments:
            items.append(item)
    return Archive("keep", items)


EMBED = re.compile(r"!\[\[([^\]|#]+)(?:[|#][^\]]*)?\]\]|!\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def markdown(archive, found) -> Archive:
    import frontmatter  # python-frontmatter: YAML front matter, read with yaml's safe loader

    items = []
    for name, info in sorted(found.items()):
        path = PurePosixPath(name)
        if not name.lower().endswith((".md", ".markdown")) or any(p.startswith(".") for p in path.parts):
            continue  # .obsidian/, .trash/: the vault's own settings and bin
        data = reader(archive, info)()
        try:
            meta = frontmatter.loads(data.decode("utf-8", errors="replace")).metadata
        except Exception:  # noqa: BLE001 - broken front matter costs its labels, not the note
            meta = {}
        tags = meta.get("tags") or meta.get("tag") or []
        tags = re.split(r"[,\s]+", tags) if isinstance(tags, str) else tags if isinstance(tags, list) else []
        created = meta.get("created") or meta.get("date")
        try:
            captured = when(created) if created else datetime(*info.date_time, tzinfo=UTC)
        except (TypeError, ValueError):
            captured = None
        item = Item(key=name, filename=safe_name(path.name), read=lambda d=data: d, captured_at=captured,
                    labels=[str(t).lstrip("#") for t in tags if str(t).strip("# ")])
        refs = dict.fromkeys(a or b for a, b in EMBED.findall(data.decode("utf-8", errors="replace")))
        for ref in refs:
            if "://" in ref:
                continue
            attachment = _attachment(archive, found, path.parent, ref, name) or next(
                (_attachment(archive, found, PurePosixPath("."), n, name) for n in found
                 if PurePosixPath(n).name == PurePosixPath(ref).name), None)  # Obsidian finds by name anywhere
            if attachment:
                item.attachments.append(attachment)
        items.append(item)
    return Archive("markdown", items)


def mindspace(archive, found) -> Archive:
    index = _json(reader(archive, found["index.json"])(), "index.json")
    if not isinstance(index, dict) or index.get("format") != "mindspace-export":
        raise Rejected("index.json is not a Mindspace export's index (format: mindspace-export)")
    if index.get("version") != 1:
        raise Rejected(f"a Mindspace export of version {index.get('version')} is not read here (version 1 is)")
    items: dict[str, Item] = {}
    for f in index.get("files") or []:
        info = found.get(f.get("original", ""))
        if info is None:  # deleted while the export was made: the index lists it, the zip does not hold it
            continue
        items[str(f["id"])] = Item(
            key=f["original"], filename=safe_name(f.get("filename")), read=reader(archive, info),
            captured_at=when(f.get("captured_at")), old_id=str(f["id"]), source_url=f.get("source_url"),
            media_type=f.get("media_type") if f.get("category") == "link" else None,
            labels=[t["label"] for t in f.get("tags") or [] if t.get("kind") == "label"])
    roots = []
    for f in index.get("files") or []:
        item = items.get(str(f["id"]))
        parent = items.get(str(f.get("parent_id")))
        if item is not None:
            (parent.attachments if parent is not None else roots).append(item)
    return Archive("mindspace", roots, index.get("reminders") or [])


def enex(stream, cfg) -> Archive:
    from defusedxml.common import DefusedXmlException
    from defusedxml.ElementTree import iterparse  # no entities expanded, no DTD fetched: a billion laughs is refused

    items = []
    try:
        for _, element in iterparse(stream, events=("end",)):
            if element.tag != "note":
                continue
            items.append(_enex_note(element, len(items)))
            element.clear()
            if len(items) > cfg.import_max_members:
                raise Rejected(f"the .enex holds over IMPORT_MAX_MEMBERS ({cfg.import_max_members}) notes")
    except (DefusedXmlException, SyntaxError) as e:  # ParseError is a SyntaxError
        raise Rejected(f"not a readable Evernote .enex: {e}") from None
    if not items:
        raise Rejected("the .enex holds no notes")
    return Archive("enex", items)


def _enex_note(note, index: int) -> Item:
    title = (note.findtext("title") or "").strip() or f"note {index + 1}"
    content = note.findtext("content") or ""
    body = re.sub(r"(?s)^.*?<en-note[^>]*>|</en-note>\s*$", "", content)  # ENML is XHTML inside <en-note>
    html = f"<html><head><title>{escape(title)}</title></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    created = note.findtext("created")  # 20231105T101500Z
    try:
        captured = datetime.strptime(created, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) if created else None
    except ValueError:
        captured = None
    item = Item(key=f"note {index}", filename=safe_name(f"{title}.html"), read=lambda h=html: h.encode(),
                captured_at=captured, labels=[t.text.strip() for t in note.findall("tag") if (t.text or "").strip()])
    for n, resource in enumerate(note.findall("resource")):
        encoded = resource.findtext("data") or ""
        name = resource.findtext("resource-attributes/file-name") or f"attachment-{n + 1}"
        try:
            data = base64.b64decode(encoded, validate=False)
        except ValueError:
            continue
        if data:
            item.attachments.append(Item(key=f"note {index}/{n}", filename=safe_name(name), read=lambda d=data: d))
    return item


def walk(items: list[Item]) -> Iterator[tuple[Item, Item | None]]:
    """Every item with its note (None for a note)."""
    for item in items:
        yield item, None
        for attachment in item.attachments:
            yield attachment, item
