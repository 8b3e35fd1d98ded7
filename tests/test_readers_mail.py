"""E-mail (issue 25): a message's headers and body are its text, each attachment a file of its own linked to
it and read by its own stage (a PDF, a photo of text, a DOCX); an HTML-only body is read as HTML is; a retried
event makes no second attachment; and hostile messages (a thousand attachments, a zip bomb attached, broken
headers) end with a clear status."""
from __future__ import annotations

import email
import email.policy
import io
import zipfile
from email.message import EmailMessage

import httpx
import office
import pytest

from events import catalogue, wire
from events.catalogue import FileUploaded
from functions.extract import mail
from shared.config import Settings

import media
from conftest import User, text_of

pytestmark = pytest.mark.on_containers  # the extract image reads them as the extract process does


def message(body: str = "The boiler service is booked for the 14th.", html: str | None = None,
            attachments: list[tuple[str, bytes, str]] = ()) -> bytes:
    m = EmailMessage()
    m["Subject"], m["From"], m["To"] = "Boiler service", "Hetty Plimsoll <hetty@example.org>", "me@example.org"
    m["Date"] = "Wed, 12 Oct 2022 21:40:43 +0200"
    if html is None:
        m.set_content(body)
    else:
        m.set_content(html, subtype="html")
    for name, data, kind in attachments:
        major, minor = kind.split("/")
        m.add_attachment(data, maintype=major, subtype=minor, filename=name)
    return m.as_bytes()


def zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", b"\0" * (64 << 20))
    return out.getvalue()


PDF = media.pdf(["Invoice for the flue inspection"])
PNG = media.png(media.text_image(["Gas safety certificate number 4471"]))
DOCX = office.docx()


def test_a_message_is_read_with_its_headers_body_and_attachment_names():
    text, attachments, skipped, sent = mail.read(message(attachments=[("invoice.pdf", PDF, "application/pdf")]), 50)
    assert "Subject: Boiler service" in text and "From: Hetty Plimsoll" in text and "booked for the 14th" in text
    assert "Attachments: invoice.pdf" in text
    assert [(a.index, a.filename, a.data) for a in attachments] == [(0, "invoice.pdf", PDF)] and skipped == 0
    assert sent == "2022-10-12T21:40:43+02:00"


def test_an_html_body_is_read_as_a_page_is():
    text, _, _, _ = mail.read(message(html='<p>Visible</p><p style="display:none">tracking pixel</p>'), 50)
    assert "Visible" in text and "tracking" not in text


def test_attachments_past_the_limit_are_counted_not_read():
    many = [(f"n{i}.txt", f"note {i}".encode(), "text/plain") for i in range(1000)]
    _, attachments, skipped, _ = mail.read(message(attachments=many), 50)
    assert len(attachments) == 50 and skipped == 950


def test_broken_headers_and_bytes_cost_only_themselves():
    text, _, _, sent = mail.read(b"Subject: =?utf-8?q?caf=C3=A9?=\nFrom: <<<\nDate: yesterday-ish\n\nbody words\n", 50)
    assert "café" in text and "body words" in text and sent is None


def test_empty_huge_and_nested_messages_are_read_within_limits():
    assert mail.read(b"", 50)[0].strip() == ""  # no text: the stage marks it unsupported ("holds no text")
    text, _, _, _ = mail.read(b"Subject: " + b"x" * 2_000_000 + b"\n\nhi\n", 50)
    assert text.startswith("Subject: xxx") and text.endswith("hi\n")
    inner = message(body="Inner words")
    nested = EmailMessage()
    nested["Subject"] = "Fwd"
    nested.set_content("See below")
    nested.add_attachment(email.message_from_bytes(inner, policy=email.policy.default))
    text, attachments, _, _ = mail.read(nested.as_bytes(), 50)
    assert "See below" in text and len(attachments) == 1 and b"Inner words" in attachments[0].data


@pytest.fixture(scope="module")
def done(stack):
    user = User(stack, "readers-mail")
    inputs = {
        "mail": ("boiler.eml", message(attachments=[("invoice.pdf", PDF, "application/pdf"),
                                                    ("certificate.png", PNG, "image/png"),
                                                    ("minutes.docx", DOCX, "application/vnd.openxmlformats-"
                                                     "officedocument.wordprocessingml.document")])),
        "html": ("newsletter.eml", message(html="<h1>Allotment newsletter</h1><p>Leek competition in May</p>")),
        "many": ("many.eml", message(attachments=[(f"n{i}.txt", f"note number {i}".encode(), "text/plain")
                                                  for i in range(Settings().email_max_attachments + 20)])),
        "bomb": ("bomb.eml", message(attachments=[("zeros.zip", zip_bomb(), "application/zip")])),
    }
    files = user.upload_all(inputs)
    children = {key: [user.wait(str(a)) for a in f.get("attachments", [])] for key, f in files.items()}
    return user, files, children


def test_each_attachment_is_a_file_of_its_own_found_by_its_words(done, sql):
    user, files, children = done
    f = files["mail"]
    assert f["status"] == "ready" and f["extraction"]["method"] == "email", f
    assert f["extraction"]["sent"] == "2022-10-12T21:40:43+02:00", f  # files has no captured_at: kept here
    assert "booked for the 14th" in text_of(sql, f["id"])
    by_name = {c["filename"]: c for c in children["mail"]}
    assert set(by_name) == {"invoice.pdf", "certificate.png", "minutes.docx"}, by_name
    for name, words in (("invoice.pdf", "flue inspection"), ("certificate.png", "certificate number"),
                        ("minutes.docx", "kingfisher survey")):
        child = by_name[name]
        assert child["status"] == "ready" and child["parent_id"] == f["id"], child
        assert words in text_of(sql, child["id"]), name
        assert child["id"] in {h["file_id"] for h in user.search(words, mode="text")}, name


def test_an_html_only_message_is_read(done, sql):
    f = done[1]["html"]
    assert f["status"] == "ready" and "Leek competition" in text_of(sql, f["id"]), f


def test_the_message_read_again_makes_no_second_attachment(stack, done, sql):
    """The upload sent again under a new event id (as the API resends a file that never reached a stage): the
    extract stage reads the message once more, and finds each attachment already there."""
    f = done[1]["mail"]
    row = sql("SELECT * FROM files WHERE id = %s", f["id"])[0]
    event = FileUploaded(file_id=f["id"], user_id=row["user_id"], blob_uri=row["blob_uri"], filename=row["filename"],
                         media_type=row["media_type"], category=row["category"], size=row["size"],
                         sha256=row["sha256"])
    headers, body = wire.binary(wire.make(event, "api", id=catalogue.reply_id("api", "again", f["id"])))
    r = httpx.post(f"http://127.0.0.1:{stack.function_ports['extract']}/", headers=headers, content=body, timeout=120)
    assert r.status_code == 200, r.text  # its text.extracted alone: no attachment is uploaded again
    assert sql("SELECT count(*) AS n FROM files WHERE parent_id = %s", f["id"])[0]["n"] == 3


def test_hostile_messages_end_with_a_clear_status(done):
    _, files, children = done
    limit = Settings().email_max_attachments
    assert files["many"]["status"] == "ready" and len(children["many"]) == limit
    assert files["many"]["extraction"]["attachments_skipped"] == 20
    bomb = children["bomb"]
    assert len(bomb) == 1 and bomb[0]["status"] == "unsupported" and "zip" in bomb[0]["status_reason"], bomb
