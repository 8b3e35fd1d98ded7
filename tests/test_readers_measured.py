"""What is read from each kind of real-world-like file (issue 25), measured on a labelled set the tests make:
for every file, the phrases that only its once-lost part holds (and, for HTML, the words no reader sees),
against what the stack read. The table is printed; every phrase is asserted read, every hidden word not."""
from __future__ import annotations

from pathlib import Path

import office
import pytest
import test_languages as languages
import test_readers_mail as mail
import test_readers_pdf as pdf

import media
from conftest import User, text_of

DOC = Path(__file__).resolve().parents[2] / "shared" / "external-corpus" / "files" / "pl__sample.doc"


def labelled() -> list[tuple[str, str, bytes, list[str], list[str]]]:
    """(kind, file name, bytes, phrases only the lost part holds, words that must not be read)."""
    files = [
        ("multi-page TIFF", "fax.tiff", pdf.tiff([media.text_image(lines) for lines in pdf.TIFF_PAGES]),
         ["walrus sanctuary"], []),
        ("form PDF", "application.pdf", pdf.form_pdf("Membership application", {"Applicant": "Ottoline Quillfeather"}),
         ["Applicant: Ottoline Quillfeather"], []),
        ("mixed page", "newsletter.pdf", pdf.mixed_pdf(), ["pelican regatta"], []),
        ("poster page", "poster.pdf", pdf.poster_pdf(), ["parish hall"], []),
        ("prefixed PDF", "gateway.pdf", b"X-Scanner-Job: 4711\r\n\x00\x01" + media.pdf(["Invoice for kayak repair"]),
         ["kayak repair"], []),
        ("hidden-text HTML", "cafe.html", office.html(), [office.HTML_VISIBLE, office.HTML_PRICE], office.HTML_HIDDEN),
        ("DOCX, boxes and notes", "minutes.docx", office.docx(),
         [office.DOCX_PARTS[k] for k in ("box", "footnote", "endnote", "comment", "header")], []),
        ("Strict DOCX", "strict.docx", office.docx(strict=True), [office.DOCX_PARTS["body"]], []),
        ("ODT", "allotment.odt", office.odt(), list(office.ODT_PARTS.values()), []),
        ("EML with attachments", "boiler.eml",
         mail.message(attachments=[("invoice.pdf", mail.PDF, "application/pdf"),
                                   ("certificate.png", mail.PNG, "image/png")]),
         ["booked for the 14th", "flue inspection", "certificate number"], []),
        ("French scan", "lettre.png", languages.png(languages.image_of(languages.FRENCH)), languages.ACCENTED, []),
        ("German memo", "notiz.md", languages.GERMAN_MEMO.encode(), ["Kinder spielten"], []),
    ]
    if DOC.exists():  # no tool here writes one: the corpus's (Paperless-ngx's fixture)
        files.append(("DOC", "sample.doc", DOC.read_bytes(), ["saved in the older .doc format"], []))
    return files


@pytest.fixture
def read(stack, sql):
    user = User(stack, "readers-measured")
    assert user.http.put("/v1/settings", json={"languages": ["en", "de", "fr"]}).status_code == 200
    cases = labelled()
    files = user.upload_all({name: (name, data) for _, name, data, _, _ in cases})
    rows = []
    for kind, name, _, wanted, hidden in cases:
        f = files[name]
        attached = [user.wait(str(a)) for a in f.get("attachments", [])]  # an e-mail's are files of their own
        text = " ".join(" ".join(text_of(sql, x["id"]) for x in [f, *attached]).split())
        rows.append((kind, name, f["status"], [w for w in wanted if w not in text],
                     [w for w in hidden if w in text], len(wanted)))
    return rows


def test_every_kind_of_file_is_read_as_labelled(read, capsys):
    with capsys.disabled():
        print("\nwhat was read per kind of file, against its labels (tests/test_readers_measured.py)")
        print(f"{'kind':24} {'file':18} {'status':8} {'read':>6}  missing / hidden yet read")
        for kind, name, status, missing, seen, total in read:
            print(f"{kind:24} {name:18} {status:8} {total - len(missing):>2} / {total:<2}  "
                  f"{', '.join(missing + seen)[:60]}")
    wrong = [(kind, status, missing, seen) for kind, _, status, missing, seen, _ in read
             if status != "ready" or missing or seen]
    assert not wrong, wrong
