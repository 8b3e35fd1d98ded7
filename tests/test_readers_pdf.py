"""What the ocr stage used to lose (issue 25), read through the running stack from files the tests make:
every page of a multi-page TIFF, a PDF's form field values, a poster-sized scanned page, an image of
text on a page that has a text layer, a PDF with bytes before its header; and a TIFF of more pages than
PDF_PAGE_LIMIT ends with a clear status. Each asserts words only the previously lost part holds."""
from __future__ import annotations

import io

import hostile
import pypdfium2 as pdfium
import pytest
from fpdf import FPDF
from PIL import Image

from functions.ocr import pages, reading
from shared.config import Settings

import media
from conftest import User, text_of

pytestmark = pytest.mark.on_containers  # the ocr image reads them as the ocr process does

TIFF_PAGES = [["Fax cover sheet", "Urgent for the clinic"], ["Second page of the fax"],
              ["Third page mentions the walrus sanctuary"]]
MIXED = ("Quarterly newsletter of the rowing club.", ["Screenshot: pelican regatta moved"],
         "Membership fees are due in March.")
POSTER = ["Jumble sale in the parish hall", "Bring porcelain teapots"]


def tiff(pages: list[Image.Image]) -> bytes:
    out = io.BytesIO()
    pages[0].save(out, "TIFF", save_all=True, append_images=pages[1:], compression="tiff_deflate")
    return out.getvalue()


def form_pdf(text: str, fields: dict[str, str]) -> bytes:
    """A one-page PDF with a text layer and filled AcroForm text fields, written by hand: fpdf2 makes no forms."""
    widgets = [f"<< /Type /Annot /Subtype /Widget /FT /Tx /T ({name}) /V ({value}) /P 3 0 R "
               f"/Rect [72 {600 - 40 * i} 400 {625 - 40 * i}] >>" for i, (name, value) in enumerate(fields.items())]
    refs = " ".join(f"{6 + i} 0 R" for i in range(len(widgets)))
    content = f"BT /F1 14 Tf 72 700 Td ({text}) Tj ET".encode()
    objects = [f"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [{refs}] >> >>".encode(),
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Annots [{refs}] "
               f"/Resources << /Font << /F1 5 0 R >> >> >>".encode(),
               b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"] + [w.encode() for w in widgets]
    return hostile._pdf(objects)


def mixed_pdf() -> bytes:
    """Text layer above and below an image of text: a newsletter with a screenshot."""
    doc = FPDF()
    doc.set_font("helvetica", size=14)
    doc.add_page()
    doc.multi_cell(0, 8, MIXED[0])
    doc.image(media.text_image(MIXED[1]), x=10, y=40, w=190)
    doc.set_y(80)
    doc.multi_cell(0, 8, MIXED[2])
    return bytes(doc.output())


def poster_pdf() -> bytes:
    """A 200 x 200 inch scanned page (the most PDF allows) with its text in a 10-inch corner: rendered whole at
    5000 pixels a side, its letters were 8 pixels high and unread."""
    doc = FPDF(unit="in", format=(200, 200))
    doc.add_page()
    doc.image(media.text_image(POSTER, width=1400), x=1, y=1, w=10)
    return bytes(doc.output())


def many_pages_tiff(pages: int) -> bytes:
    blank = Image.new("1", (8, 8), 1)
    return tiff([blank] * pages)


@pytest.fixture(scope="module")
def done(stack):
    user = User(stack, "readers-pdf")
    inputs = {
        "tiff": ("fax.tiff", tiff([media.text_image(lines) for lines in TIFF_PAGES])),
        "form": ("application.pdf", form_pdf("Membership application", {"Applicant": "Ottoline Quillfeather",
                                                                        "Town": "Bexhill"})),
        "mixed": ("newsletter.pdf", mixed_pdf()),
        "poster": ("poster.pdf", poster_pdf()),
        "prefixed": ("gateway.pdf", b"X-Scanner-Job: 4711\r\n\x00\x01\x02" + media.pdf(["Invoice for kayak repair"])),
        "tiff_pages": ("endless.tiff", many_pages_tiff(Settings().pdf_page_limit + 1)),
    }
    return user, user.upload_all(inputs)


def test_every_page_of_a_tiff_is_read_with_its_page(done, sql):
    user, files = done
    f = files["tiff"]
    assert f["status"] == "ready" and f["extraction"]["pages"] == 3, f
    assert "walrus sanctuary" in text_of(sql, f["id"])
    hit = next(h for h in user.search("walrus sanctuary", limit=20) if h["file_id"] == f["id"])
    assert hit["locator"] == {"page": 3}


def test_form_field_values_follow_the_page_text(done, sql):
    f = done[1]["form"]
    assert f["status"] == "ready", f
    text = text_of(sql, f["id"])
    assert text.index("Membership application") < text.index("Applicant: Ottoline Quillfeather")
    assert "Town: Bexhill" in text


def test_an_image_of_text_on_a_layered_page_is_read_in_reading_order(done, sql):
    f = done[1]["mixed"]
    assert f["status"] == "ready" and f["extraction"]["method"] == "text-layer+ocr", f
    text = text_of(sql, f["id"])
    assert text.index("rowing club") < text.index("pelican regatta") < text.index("fees are due"), text


def test_a_poster_sized_page_is_read(done, sql):
    f = done[1]["poster"]
    assert f["status"] == "ready", f
    assert media.similarity(" ".join(POSTER), text_of(sql, f["id"])) > 0.8


def test_a_pdf_with_bytes_before_its_header_is_read(done, sql):
    f = done[1]["prefixed"]
    assert f["media_type"] == "application/pdf" and f["status"] == "ready", f
    assert "kayak repair" in text_of(sql, f["id"])


def test_a_tiff_of_too_many_pages_ends_with_a_clear_status(done):
    f = done[1]["tiff_pages"]
    assert f["status"] == "failed" and "PDF_PAGE_LIMIT" in f["status_reason"], f


def test_text_beside_an_image_of_text_is_kept_in_reading_order():
    """A column that wraps around a screenshot: its lines lie in the image's band, neither above nor below it."""
    doc = FPDF()
    doc.set_font("helvetica", size=14)
    doc.add_page()
    doc.multi_cell(0, 8, MIXED[0])
    doc.image(media.text_image(MIXED[1]), x=10, y=40, w=100)
    doc.set_xy(120, 45)
    doc.multi_cell(80, 8, "Sidebar about otters")
    doc.set_xy(10, 120)
    doc.multi_cell(0, 8, MIXED[2])
    pdf = pdfium.PdfDocument(bytes(doc.output()))
    try:
        found = pages.parts(pdf, pdf[0], 300, Settings().image_max_pixels)
    finally:
        pdf.close()
    text = " ".join(p if isinstance(p, str) else reading.read_upright(p, "eng").text for p in found)
    assert text.index("rowing club") < text.index("Sidebar about otters") < text.index("fees are due"), text
    assert "pelican regatta" in text, text
