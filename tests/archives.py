"""Archives to import, made here as their programs write them: a Google Keep export (Takeout), a Markdown folder /
Obsidian vault, an Evernote .enex; and hostile ones (a zip bomb, names that climb out, a member that claims to be
huge, a billion laughs)."""
from __future__ import annotations

import base64
import io
import json
import struct
import zipfile

from media import png, text_image

PHOTO = png(text_image(["Seed order: 3 packets of", "Genovese basil"], width=900))


def zipped(members: dict[str, bytes | str], compression=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def keep_note(title: str, text: str = "", *, labels=(), items=(), created_usec: int, trashed=False,
              attachments=()) -> str:
    note = {"color": "DEFAULT", "isTrashed": trashed, "isPinned": False, "isArchived": False, "title": title,
            "userEditedTimestampUsec": created_usec + 60_000_000, "createdTimestampUsec": created_usec,
            "labels": [{"name": n} for n in labels],
            "attachments": [{"filePath": a, "mimetype": "image/png"} for a in attachments]}
    if items:
        note["listContent"] = [{"text": t, "isChecked": done} for t, done in items]
    else:
        note["textContent"] = text
    return json.dumps(note)


def keep_export() -> bytes:
    return zipped({
        "Takeout/archive_browser.html": "<html>Takeout</html>",
        "Takeout/Keep/Garden plan.json": keep_note(
            "Garden plan", "Sow the basil indoors in March and move the tomatoes out after the last frost.",
            labels=("Garden", "Spring"), created_usec=1_709_290_800_000_000, attachments=("seeds.png",)),
        "Takeout/Keep/seeds.png": PHOTO,
        "Takeout/Keep/Garden plan.html": "<html>the same note as HTML</html>",
        "Takeout/Keep/Hardware store.json": keep_note(
            "Hardware store", items=[("wood screws 4x40", False), ("wall plugs", True)], labels=("Errands",),
            created_usec=1_711_962_000_000_000),
        "Takeout/Keep/Old idea.json": keep_note("Old idea", "thrown away", created_usec=1_600_000_000_000_000,
                                                trashed=True),
    })


def vault() -> bytes:
    return zipped({
        "vault/Recipes/Pesto.md": "---\ntags: [cooking, basil]\ncreated: 2024-06-02T18:30:00Z\n---\n# Pesto\n\n"
                                  "Blend basil, pine nuts and parmesan; see [[Garden plan]] for the basil.\n\n"
                                  "![[pesto.png]]\n",
        "vault/attachments/pesto.png": PHOTO,
        "vault/Daily/2024-06-03.md": "Walked to the bakery by the river. #journal\n",
        "vault/.obsidian/app.json": "{}",
        "vault/.trash/old.md": "deleted note",
    })


def enex() -> bytes:
    photo = base64.b64encode(PHOTO).decode()
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE en-export SYSTEM "http://xml.evernote.com/pub/evernote-export4.dtd">
<en-export export-date="20240701T120000Z" application="Evernote" version="10.0">
  <note>
    <title>Bike repair</title>
    <created>20231105T101500Z</created>
    <tag>bike</tag><tag>errands</tag>
    <content><![CDATA[<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE en-note SYSTEM "http://xml.evernote.com/pub/enml2.dtd">
<en-note><div>The rear brake pads of the blue bicycle need replacing before winter.</div>
<en-media type="image/png" hash="x"/></en-note>]]></content>
    <resource><data encoding="base64">{photo}</data><mime>image/png</mime>
      <resource-attributes><file-name>brake.png</file-name></resource-attributes></resource>
  </note>
  <note>
    <title>Library</title>
    <created>20240110T090000Z</created>
    <content><![CDATA[<en-note><p>Return the atlas of mountain lakes to the library by Friday.</p>
</en-note>]]></content>
  </note>
</en-export>""".encode()


def bomb() -> bytes:
    """3 MiB of zeros packed into a few kilobytes: under the member cap, far over the ratio."""
    return zipped({"notes/a.md": "fine", "notes/zeros.md": b"\0" * (3 * 1024 * 1024)})


def claiming(size: int) -> bytes:
    """A zip whose central directory says its member unpacks to `size` bytes (what a 4 GB member says)."""
    data = bytearray(zipped({"notes/huge.md": "small really"}))
    at = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, at + 24, size)
    return bytes(data)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<en-export><note><title>&lol3;</title><content>x</content></note></en-export>"""
