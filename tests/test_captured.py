"""When a thing was captured (issue 21): from what its content says (a photo's EXIF, a PDF's creation date,
a recording's creation_time, an e-mail's Date, which its attachments share), else the upload time; the
search's since/until read it."""
from __future__ import annotations

import io
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from fpdf import FPDF
from PIL import Image

from shared import dates

from media import speech_wav, text_image


def photo(taken: str | None, offset: str | None = None) -> bytes:
    """A photo of text as a phone saves it: EXIF DateTimeOriginal (local time) and OffsetTimeOriginal."""
    exif = Image.Exif()
    if taken:
        sub = exif.get_ifd(0x8769)
        sub[0x9003] = taken
        if offset:
            sub[0x9011] = offset
    out = io.BytesIO()
    text_image(["Ferry to the island", "leaves at seven"]).convert("RGB").save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def pdf_made(when: datetime) -> bytes:
    doc = FPDF()
    doc.set_creation_date(when)
    doc.add_page()
    doc.set_font("helvetica", size=14)
    doc.multi_cell(0, 8, "Minutes of the harbour committee: the pier repairs start in spring.")
    return bytes(doc.output())


def recording_made(when: str) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        wav, m4a = Path(folder) / "memo.wav", Path(folder) / "memo.m4a"
        wav.write_bytes(speech_wav("Remember to water the orchids in the greenhouse."))
        subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(wav), "-c:a", "aac", "-metadata",
                        f"creation_time={when}", str(m4a)], check=True)
        return m4a.read_bytes()


# --- the readers alone -------------------------------------------------------------------------------

def test_dates_as_files_write_them():
    assert dates.exif("2023:07:14 09:30:00", "+02:00", "UTC") == datetime(2023, 7, 14, 7, 30, tzinfo=UTC)
    assert dates.exif("2023:07:14 09:30:00", None, "Europe/Berlin") == datetime(2023, 7, 14, 7, 30, tzinfo=UTC)
    assert dates.exif("0000:00:00 00:00:00", None, "UTC") is None and dates.exif(None, None, "UTC") is None
    assert dates.pdf("D:20230415093000+02'00'", "UTC") == datetime(2023, 4, 15, 7, 30, tzinfo=UTC)
    assert dates.pdf("D:2023", "UTC") == datetime(2023, 1, 1, tzinfo=UTC)
    assert dates.pdf("D:20231345", "UTC") is None and dates.pdf("yesterday", "UTC") is None
    assert dates.iso("2024-06-01T14:03:22.000000Z", "UTC") == datetime(2024, 6, 1, 14, 3, 22, tzinfo=UTC)
    assert dates.iso("2024-06-01T14:03:22", "Europe/Paris").utcoffset() == timedelta(hours=2)
    # Cameras whose clock was never set, and dates from the future, are not capture times.
    assert dates.plausible(datetime(1970, 1, 1, tzinfo=UTC)) is None
    assert dates.plausible(datetime.now(UTC) + timedelta(days=30)) is None
    assert dates.plausible(datetime(2004, 1, 1, tzinfo=UTC)) is not None


# --- through the stack --------------------------------------------------------------------------------

def captured(f: dict) -> datetime:
    return datetime.fromisoformat(f["captured_at"])


@pytest.mark.on_containers
def test_each_kind_is_dated_by_what_it_says_and_searched_by_it(user):
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = "Pier repairs", "ana@example.org", "me@example.org"
    message["Date"] = "Tue, 10 Oct 2023 08:15:00 +0000"
    message.set_content("The pier repairs start in spring; the minutes are attached.")
    message.add_attachment(b"Agenda: pier repairs, the new ferry timetable.", maintype="text", subtype="plain",
                           filename="agenda.txt")
    files = user.upload_all({
        "photo": ("ferry.jpg", photo("2023:07:14 09:30:00", "+02:00")),
        "unset clock": ("old.jpg", photo("1970:01:01 00:00:00")),
        "pdf": ("minutes.pdf", pdf_made(datetime(2022, 3, 4, 5, 6, 7, tzinfo=UTC))),
        "memo": ("orchids.m4a", recording_made("2021-05-01T10:00:00.000000Z")),
        "mail": ("pier.eml", message.as_bytes()),
        "note": ("today.md", b"A note about the ferry written today."),
    })
    assert captured(files["photo"]) == datetime(2023, 7, 14, 7, 30, tzinfo=UTC)
    assert captured(files["pdf"]) == datetime(2022, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert captured(files["memo"]) == datetime(2021, 5, 1, 10, tzinfo=UTC)
    assert captured(files["mail"]) == datetime(2023, 10, 10, 8, 15, tzinfo=UTC)
    (attachment,) = files["mail"]["attachments"]
    assert captured(user.wait(attachment)) == captured(files["mail"])  # captured with its message
    for upload_time in ("unset clock", "note"):  # nothing plausible said: the upload time
        assert captured(files[upload_time]) == datetime.fromisoformat(files[upload_time]["created_at"])
    assert files["photo"]["extraction"]["captured_at"].startswith("2023-07-14T09:30:00+02:00")
    july = user.search("ferry", since="2023-07-01T00:00:00Z", until="2023-08-01T00:00:00Z")
    assert [h["filename"] for h in july] == ["ferry.jpg"]
    assert "today.md" in [h["filename"] for h in user.search("ferry", since="2026-01-01T00:00:00Z")]
