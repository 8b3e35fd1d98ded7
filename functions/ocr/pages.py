"""What of a PDF page is read, in reading order: its text layer, split around the images of text it lacks;
the page rendered (tiled when it is poster-sized) when the layer is too thin; then its form fields' values.
Every function here runs under the caller's PDFium lock; Tesseract reads the images after it."""
from __future__ import annotations

import ctypes

import pypdfium2 as pdfium
import pypdfium2.raw as raw
from PIL import Image

from functions.ocr import reading
from shared.languages import layer_weight

MIN_LAYER_CHARS = 20  # fewer characters than this on a page: a scan with stray marks, so OCR it
# (counted in Latin letters' worth: 5 Han characters or 10 Arabic letters are a real layer, shared/languages.py)
# An image on a page with a text layer is OCRed when it covers this share of the page (a line of text across a
# letter page: 4 %) and no text layer lies over it (an OCRed scan has one), as OCRmyPDF's --redo-ocr reads what
# the layer lacks; icons and rules below the share would cost a pass for nothing.
MIN_IMAGE_SHARE = 0.01
TYPED_FIELDS = (raw.FPDF_FORMFIELD_TEXTFIELD, raw.FPDF_FORMFIELD_COMBOBOX, raw.FPDF_FORMFIELD_LISTBOX)


def parts(pdf: pdfium.PdfDocument, page: pdfium.PdfPage, dpi: int, max_pixels: int) -> list[str | Image.Image]:
    width, height = page.get_size()
    textpage = page.get_textpage()
    try:
        if layer_weight(textpage.get_text_bounded()) < MIN_LAYER_CHARS:
            found: list[str | Image.Image] = render(page, (0, 0, width, height), dpi, max_pixels)
        else:
            found, top = [], height  # `top`: how far down the page has been read
            for box in text_images(page, textpage):
                if box[3] < top:  # the text above the image
                    found.append(textpage.get_text_bounded(top=top, bottom=box[3]))
                    top = box[3]
                if box[1] < top:  # the text beside it (a figure a column wraps around), then its own words
                    found.append(textpage.get_text_bounded(top=top, bottom=box[1]))
                    top = box[1]
                found += render(page, box, dpi, max_pixels)
            found.append(textpage.get_text_bounded(top=top))
    finally:
        textpage.close()
    return found + form_values(pdf, page)


def text_images(page: pdfium.PdfPage, textpage: pdfium.PdfTextPage) -> list[tuple[float, ...]]:
    """The boxes (left, bottom, right, top) of the page's images worth reading, top first."""
    width, height = page.get_size()
    boxes = []
    for image in page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE]):
        left, bottom, right, top = image.get_bounds()
        left, bottom, right, top = max(0, left), max(0, bottom), min(width, right), min(height, top)
        if (right - left) * (top - bottom) < MIN_IMAGE_SHARE * width * height:
            continue
        if layer_weight(textpage.get_text_bounded(left, bottom, right, top)) < MIN_LAYER_CHARS:
            boxes.append((left, bottom, right, top))
    return sorted(boxes, key=lambda box: -box[3])


def render(page: pdfium.PdfPage, box: tuple[float, ...], dpi: int, max_pixels: int) -> list[Image.Image]:
    """A region at `dpi`, or less where that makes more than max_pixels (PDF allows 200 x 200 inch pages:
    3.6 G pixels at 300 dpi), in tiles of at most reading.MAX_SIDE a side: a poster's text stays large enough
    to read, and the tiles together hold at most max_pixels (one byte each, grayscale)."""
    width, height = page.get_size()
    left, bottom, right, top = box
    scale = min(dpi / 72, (max_pixels / max(1.0, (right - left) * (top - bottom))) ** 0.5)
    step = reading.MAX_SIDE / scale  # points a tile's side covers
    tiles, y = [], top
    while y - bottom > 1:
        x = left
        while right - x > 1:
            crop = (x, max(bottom, y - step), width - min(right, x + step), height - y)
            tiles.append(page.render(scale=scale, grayscale=True, crop=crop).to_pil())
            x += step
        y -= step
    return tiles


def form_values(pdf: pdfium.PdfDocument, page: pdfium.PdfPage) -> list[str]:
    """What a person typed or chose in the page's form fields (AcroForm), as `name: value` lines."""
    if pdf.formenv is None:
        return []
    lines = []
    for index in range(raw.FPDFPage_GetAnnotCount(page.raw)):
        annot = raw.FPDFPage_GetAnnot(page.raw, index)
        try:
            if raw.FPDFAnnot_GetSubtype(annot) != raw.FPDF_ANNOT_WIDGET or \
                    raw.FPDFAnnot_GetFormFieldType(pdf.formenv.raw, annot) not in TYPED_FIELDS:
                continue
            value = _utf16(raw.FPDFAnnot_GetFormFieldValue, pdf.formenv.raw, annot).strip()
            name = _utf16(raw.FPDFAnnot_GetFormFieldName, pdf.formenv.raw, annot).strip()
            if value:
                lines.append(f"{name}: {value}" if name else value)
        finally:
            raw.FPDFPage_CloseAnnot(annot)
    return ["\n".join(lines)] if lines else []


def _utf16(getter, *args) -> str:
    """PDFium's string getters: asked for the size first, then filled as UTF-16LE ending in a NUL."""
    size = getter(*args, None, 0)
    if size <= 2:
        return ""
    buffer = ctypes.create_string_buffer(size)
    getter(*args, ctypes.cast(buffer, ctypes.POINTER(raw.FPDF_WCHAR)), size)
    return buffer.raw[: size - 2].decode("utf-16-le", errors="replace")
