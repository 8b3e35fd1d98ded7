"""What the extract stage used to lose (issue 25), from files the tests make: HTML's hidden text (now unread)
and a price split by comments; DOCX text boxes, footnotes, endnotes, comments and headers, Strict OOXML; ODT;
Word 97-2003 (.doc, read from ../shared/external-corpus/ where present: no tool here writes one); and hostile
variants of each package (an entity bomb, a zip bomb, a broken zip), which end with a clear status."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import office
import pytest

from functions.extract import readers
from shared.errors import Rejected

from conftest import User, text_of

pytestmark = pytest.mark.on_containers  # the extract image reads them as the extract process does
DOC = Path(__file__).resolve().parents[2] / "shared" / "external-corpus" / "files" / "pl__sample.doc"
LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % ("" if i == 1 else i - 1)) * 10}">' for i in range(1, 10)) + "]>")


def swapped(package: bytes, part: str, content: bytes) -> bytes:
    """The package with one part's content replaced, every part stored as it was (an ODT's mimetype uncompressed
    and first, as libmagic looks for it)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, content if info.filename == part else src.read(info))
    return out.getvalue()


def entity_bomb(package: bytes, part: str, root: str) -> bytes:
    return swapped(package, part, (LAUGHS + f"<{root}>&lol9;</{root}>").encode())


def zip_bomb(package: bytes, part: str) -> bytes:
    """A part that inflates past readers.MAX_PART from a few kilobytes."""
    return swapped(package, part, b" " * (readers.MAX_PART + 1))


# The readers alone (no stack).

@pytest.mark.parametrize("strict", [False, True], ids=["transitional", "strict"])
def test_every_part_of_a_docx_is_read_once_in_reading_order(strict):
    text = " ".join(readers.docx_text(office.docx(strict=strict)).split())
    order = [office.DOCX_PARTS[k] for k in ("header", "body", "box", "table", "footnote", "endnote", "comment")]
    assert all(part in text for part in order), text
    assert [text.index(part) for part in order] == sorted(text.index(part) for part in order), text
    assert text.count(office.DOCX_PARTS["box"]) == 1  # the drawing's fallback copy is not read again
    assert "↑" not in text and "[1]" not in text  # mammoth's note links are marks, not words


def test_an_odt_is_read_with_its_notes_after_the_body():
    text = readers.odt_text(office.odt())
    parts = office.ODT_PARTS
    assert all(part in text for part in parts.values()), text
    assert text.index(parts["body"]) < text.index(parts["table"]) < text.index(parts["note"]), text
    assert text.count(parts["note"]) == 1


def test_html_keeps_only_what_a_reader_sees():
    text = readers.html_text(office.html())
    assert office.HTML_VISIBLE in text and office.HTML_PRICE in text, text
    assert not [word for word in office.HTML_HIDDEN if word in text], text


@pytest.mark.skipif(not DOC.exists(), reason=f"{DOC} is absent (the shared folder beside the repository)")
def test_a_word_97_file_is_read_by_catdoc():
    assert "saved in the older .doc format" in readers.doc_text(DOC.read_bytes())


@pytest.mark.parametrize("kind,make", [
    ("docx entity bomb", lambda: entity_bomb(office.docx(), "word/document.xml", "w:document")),
    ("odt entity bomb", lambda: entity_bomb(office.odt(), "content.xml", "office:document-content")),
    ("docx zip bomb", lambda: zip_bomb(office.docx(), "word/document.xml")),
    ("odt zip bomb", lambda: zip_bomb(office.odt(), "content.xml")),
    ("docx broken zip", lambda: office.docx()[:300]),
    ("odt broken zip", lambda: office.odt()[:-200]),
])
def test_hostile_packages_are_refused_with_the_reason(kind, make):
    read = readers.docx_text if kind.startswith("docx") else readers.odt_text
    with pytest.raises(Rejected, match="readable|uncompressed"):
        read(make())


def test_a_corrupt_word_97_file_is_refused():
    with pytest.raises(Rejected, match="Word 97-2003"):
        readers.doc_text(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)


# Through the stack: uploaded, read, found by words only the lost part holds.

@pytest.fixture(scope="module")
def done(stack):
    user = User(stack, "readers-office")
    inputs = {"docx": ("minutes.docx", office.docx()), "strict": ("strict.docx", office.docx(strict=True)),
              "odt": ("allotment.odt", office.odt()), "html": ("cafe.html", office.html()),
              "bomb": ("laughs.odt", entity_bomb(office.odt(), "content.xml", "office:document-content")),
              "zip_bomb": ("big.docx", zip_bomb(office.docx(), "word/document.xml"))}
    if DOC.exists():
        inputs["doc"] = ("sample.doc", DOC.read_bytes())
    return user, user.upload_all(inputs)


def test_docx_parts_are_found_by_search(done, sql):
    user, files = done
    for key in ("docx", "strict"):
        f = files[key]
        assert f["status"] == "ready" and f["extraction"]["method"] == "docx", f
        text = text_of(sql, f["id"])
        assert all(part in text for part in office.DOCX_PARTS.values()), text
    both = {files["docx"]["id"], files["strict"]["id"]}
    hits = [h for h in user.search("kingfisher survey", mode="text")  # only the comment says it
            if h["file_id"] in both]
    # The same document saved as Strict OOXML is a near-duplicate of it: one hit, its copy counted.
    assert len(hits) == 1 and hits[0]["copies"] == 1, hits


def test_odt_and_html_are_read(done, sql):
    user, files = done
    assert files["odt"]["status"] == files["html"]["status"] == "ready", files
    assert office.ODT_PARTS["note"] in text_of(sql, files["odt"]["id"])
    assert office.HTML_PRICE in text_of(sql, files["html"]["id"])
    assert not user.search(" OR ".join(office.HTML_HIDDEN), mode="text")


@pytest.mark.skipif(not DOC.exists(), reason=f"{DOC} is absent (the shared folder beside the repository)")
def test_a_word_97_file_is_read(done, sql):
    f = done[1]["doc"]
    assert f["media_type"] == "application/msword" and f["status"] == "ready", f
    assert "older .doc format" in text_of(sql, f["id"])


def test_bombs_end_failed_with_the_reason(done):
    files = done[1]
    assert files["bomb"]["status"] == "failed" and "not a readable ODT" in files["bomb"]["status_reason"]
    assert files["zip_bomb"]["status"] == "failed" and "uncompressed" in files["zip_bomb"]["status_reason"]
