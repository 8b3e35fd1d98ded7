"""ocr: images and PDFs become text. A PDF page with a text layer is taken as it is; only pages
without one are rendered and read by Tesseract. Page numbers travel with the text. When the file says it
was made (a photo's EXIF DateTimeOriginal, a PDF's CreationDate), that becomes its capture time."""
from __future__ import annotations

import io
import threading

import pypdfium2 as pdfium
from PIL import Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

from events.catalogue import Category, FileUploaded, TextExtracted
from functions.ocr import pages as pdfpage
from functions.ocr import reading as ocr
from shared import dates, languages
from shared.stage import Context, Rejected, Stage, Unsupported, serve
from shared.textdoc import TextDoc

register_heif_opener()  # HEIC/HEIF, as iPhones save photos
PDFIUM = threading.Lock()  # PDFium is not thread-safe; Tesseract runs outside the lock


class OCR(Stage):
    name = "ocr"
    consumes = (FileUploaded,)

    def start(self, cfg) -> None:
        ocr.single_threaded()
        ocr.check_languages(cfg.ocr_languages)
        self.languages, self.dpi, self.max_pages = cfg.ocr_languages, cfg.ocr_dpi, cfg.pdf_max_pages
        self.page_limit, self.max_pixels = cfg.pdf_page_limit, cfg.image_max_pixels
        self.installed = ocr.installed()
        # read_file checks IMAGE_MAX_PIXELS from the header itself; Pillow's own check (a warning below twice
        # its limit, an error above) would only say the same thing in other words.
        Image.MAX_IMAGE_PIXELS = None

    def user_settings(self, event: FileUploaded, ctx: Context) -> tuple[str, str]:
        """Tesseract's packs for the user's languages (settings), those installed (OCR_LANGUAGES when they
        chose none, or none of theirs is installed; recorded in the file's stage detail), and their time
        zone, which a photo's EXIF time is in."""
        row = ctx.read("SELECT languages, timezone FROM user_settings WHERE user_id = %s", (event.user_id,))
        chosen, missing = languages.tesseract((row and row["languages"]) or [], self.installed)
        if missing:
            ctx.detail["missing_languages"] = missing  # no pack installed here: read without them
        ctx.detail["ocr_languages"] = chosen or self.languages
        return chosen or self.languages, (row and row["timezone"]) or "UTC"

    def handle(self, event: FileUploaded, ctx: Context) -> TextExtracted:
        return self.read(event, ctx, *self.user_settings(event, ctx))

    def read(self, event: FileUploaded, ctx: Context, lang: str, zone: str = "UTC") -> TextExtracted:
        """The upload read with Tesseract's packs `lang` ("eng+deu"); its EXIF or PDF time taken in `zone`."""
        data = ctx.blobs.get(event.blob_uri)
        if event.category == Category.pdf:
            return self.pdf(data, event, ctx, lang, zone)
        try:
            readings = ocr.read_pages(data, lang, self.max_pixels, self.max_pages, self.page_limit, self.installed)
        except ocr.TooLarge as e:
            raise Rejected(str(e)) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise Rejected(f"not a readable image ({event.media_type}): {e}") from None
        # Only once its header passed the size checks above: opening a pixel bomb for its EXIF may decode it.
        ctx.captured_at = taken(data, zone)
        doc = TextDoc()
        for number, reading in enumerate(readings, 1):  # a one-page image has no page locators
            doc.add(reading.text, **({"page": number} if len(readings) > 1 else {}))
        if not doc.segments:
            raise Unsupported("no text found in the image")
        words = sum(r.words for r in readings)
        ctx.detail.update(method="ocr", words=words, rotated=readings[0].rotated, chars=len(doc.text),
                          confidence=round(sum(r.confidence * r.words for r in readings) / max(1, words), 1))
        if len(readings) > 1:
            ctx.detail.update(pages=len(readings), ocr_pages=list(range(1, len(readings) + 1)))
        if scripts := sorted({r.script for r in readings if r.script}):
            ctx.detail["scripts"] = scripts
        return doc.save(ctx.blobs, event, "ocr")

    def pdf(self, data: bytes, event: FileUploaded, ctx: Context, lang: str, zone: str) -> TextExtracted:
        with PDFIUM:
            try:
                pdf = pdfium.PdfDocument(data)
                pdf.init_forms()  # before any page loads, so that form fields' values can be read
                ctx.captured_at = dates.pdf(pdf.get_metadata_dict().get("CreationDate"), zone)
            except pdfium.PdfiumError as e:
                if "password" in str(e).lower():
                    raise Rejected("the PDF is password-protected") from None
                raise Rejected(f"not a readable PDF: {e}") from None
        try:  # the document is closed on every path, a failing page or Tesseract included
            return self.read_pdf(pdf, event, ctx, lang)
        finally:
            with PDFIUM:
                pdf.close()

    def read_pdf(self, pdf, event: FileUploaded, ctx: Context, lang: str) -> TextExtracted:
        doc, layered, scanned, confidences, scripts = TextDoc(), [], [], [], set()
        with PDFIUM:
            pages = len(pdf)  # PDFium counts the page tree's leaves, whatever its /Count claims
        if pages > self.page_limit:
            raise Rejected(f"the PDF has {pages} pages; PDFs of more than {self.page_limit} pages are not read "
                           f"(PDF_PAGE_LIMIT)")
        for number in range(1, min(pages, self.max_pages) + 1):
            with PDFIUM:
                page = pdf[number - 1]
                try:
                    parts = pdfpage.parts(pdf, page, self.dpi, self.max_pixels)
                finally:
                    page.close()
            for part in parts:  # Tesseract runs outside the lock
                if isinstance(part, Image.Image):
                    reading = ocr.read_upright(part, lang, installed=self.installed)
                    part = reading.text
                    scripts |= {reading.script} - {""}
                    scanned.append(number)
                    confidences.append(reading.confidence)
                elif part.strip():
                    layered.append(number)
                doc.add(part, page=number)
        layered, scanned = sorted(set(layered)), sorted(set(scanned))
        if not doc.segments:
            raise Unsupported(f"no text found on any of the {pages} pages")
        method = "+".join(m for m, used in (("text-layer", layered), ("ocr", scanned)) if used)
        ctx.detail.update(method=method, pages=pages, text_layer_pages=layered, ocr_pages=scanned,
                          chars=len(doc.text), skipped_pages=max(0, pages - self.max_pages))
        if confidences:
            ctx.detail["confidence"] = round(sum(confidences) / len(confidences), 1)
        if scripts:
            ctx.detail["scripts"] = sorted(scripts)
        return doc.save(ctx.blobs, event, method)


def taken(data: bytes, zone: str):
    """When a photo was taken: EXIF DateTimeOriginal (else DateTimeDigitized, else DateTime) with the
    offset the camera wrote beside it, else in the user's zone; None when it says nothing."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
    except Exception:  # noqa: BLE001 - the reading above says what is wrong with the image itself
        return None
    sub = exif.get_ifd(0x8769)  # the Exif IFD
    for tag, offset in ((0x9003, 0x9011), (0x9004, 0x9012), (0x0132, 0x9010)):
        if when := dates.exif(sub.get(tag) or exif.get(tag), sub.get(offset), zone):
            return when
    return None


handle = serve(OCR())
