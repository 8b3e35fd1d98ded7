"""ocr: images and PDFs become text. A PDF page with a text layer is taken as it is; only pages
without one are rendered and read by Tesseract. Page numbers travel with the text."""
from __future__ import annotations

import threading

import pypdfium2 as pdfium
from PIL import Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

from events.catalogue import Category, FileUploaded, TextExtracted
from functions.ocr import reading as ocr
from shared.stage import Context, Rejected, Stage, Unsupported, serve
from shared.textdoc import TextDoc

register_heif_opener()  # HEIC/HEIF, as iPhones save photos
PDFIUM = threading.Lock()  # PDFium is not thread-safe; Tesseract runs outside the lock
MIN_LAYER_CHARS = 20  # fewer characters than this on a page: a scan with stray marks, so OCR it


class OCR(Stage):
    name = "ocr"
    consumes = (FileUploaded,)

    def start(self, cfg) -> None:
        ocr.single_threaded()
        ocr.check_languages(cfg.ocr_languages)
        self.languages, self.dpi, self.max_pages = cfg.ocr_languages, cfg.ocr_dpi, cfg.pdf_max_pages
        self.page_limit, self.max_pixels = cfg.pdf_page_limit, cfg.image_max_pixels
        # read_file checks IMAGE_MAX_PIXELS from the header itself; Pillow's own check (a warning below twice
        # its limit, an error above) would only say the same thing in other words.
        Image.MAX_IMAGE_PIXELS = None

    def handle(self, event: FileUploaded, ctx: Context) -> TextExtracted:
        data = ctx.blobs.get(event.blob_uri)
        if event.category == Category.pdf:
            return self.pdf(data, event, ctx)
        try:
            reading = ocr.read_file(data, self.languages, self.max_pixels)
        except ocr.TooLarge as e:
            raise Rejected(str(e)) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise Rejected(f"not a readable image ({event.media_type}): {e}") from None
        doc = TextDoc()
        doc.add(reading.text)
        if not doc.segments:
            raise Unsupported("no text found in the image")
        ctx.detail.update(method="ocr", confidence=reading.confidence, words=reading.words,
                          rotated=reading.rotated, chars=len(doc.text))
        return doc.save(ctx.blobs, event, "ocr")

    def pdf(self, data: bytes, event: FileUploaded, ctx: Context) -> TextExtracted:
        with PDFIUM:
            try:
                pdf = pdfium.PdfDocument(data)
            except pdfium.PdfiumError as e:
                if "password" in str(e).lower():
                    raise Rejected("the PDF is password-protected") from None
                raise Rejected(f"not a readable PDF: {e}") from None
        try:  # the document is closed on every path, a failing page or Tesseract included
            return self.read_pdf(pdf, event, ctx)
        finally:
            with PDFIUM:
                pdf.close()

    def page_text(self, pdf, number: int) -> tuple[str, Image.Image | None]:
        """A page's text layer, and its rendering when the layer is too thin to be the page's text."""
        with PDFIUM:
            page = pdf[number - 1]
            try:
                textpage = page.get_textpage()
                try:
                    text = textpage.get_text_bounded()
                finally:
                    textpage.close()
                if len(text.strip()) >= MIN_LAYER_CHARS:
                    return text, None
                # A poster-sized page (PDF allows 200 x 200 inches: 3.6 G pixels at 300 dpi) is rendered
                # no larger than Tesseract is given any image: its long side at most reading.MAX_SIDE.
                scale = min(self.dpi / 72, ocr.MAX_SIDE / max(1.0, *page.get_size()))
                return text, page.render(scale=scale, grayscale=True).to_pil()
            finally:
                page.close()

    def read_pdf(self, pdf, event: FileUploaded, ctx: Context) -> TextExtracted:
        doc, layered, scanned, confidences = TextDoc(), [], [], []
        with PDFIUM:
            pages = len(pdf)  # PDFium counts the page tree's leaves, whatever its /Count claims
        if pages > self.page_limit:
            raise Rejected(f"the PDF has {pages} pages; PDFs of more than {self.page_limit} pages are not read "
                           f"(PDF_PAGE_LIMIT)")
        for number in range(1, min(pages, self.max_pages) + 1):
            text, image = self.page_text(pdf, number)
            if image is not None:  # Tesseract runs outside the lock
                reading = ocr.read_upright(image, self.languages)
                text = reading.text
                scanned.append(number)
                confidences.append(reading.confidence)
            else:
                layered.append(number)
            doc.add(text, page=number)
        if not doc.segments:
            raise Unsupported(f"no text found on any of the {pages} pages")
        method = "+".join(m for m, used in (("text-layer", layered), ("ocr", scanned)) if used)
        ctx.detail.update(method=method, pages=pages, text_layer_pages=layered, ocr_pages=scanned,
                          chars=len(doc.text), skipped_pages=max(0, pages - self.max_pages))
        if confidences:
            ctx.detail["confidence"] = round(sum(confidences) / len(confidences), 1)
        return doc.save(ctx.blobs, event, method)


handle = serve(OCR())
