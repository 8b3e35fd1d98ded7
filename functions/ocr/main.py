"""ocr: images and PDFs become text. A PDF page with a text layer is taken as it is; only pages
without one are rendered and read by Tesseract. Page numbers travel with the text."""
from __future__ import annotations

import threading
import warnings

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

    def handle(self, event: FileUploaded, ctx: Context) -> TextExtracted:
        data = ctx.blobs.get(event.blob_uri)
        if event.category == Category.pdf:
            return self.pdf(data, event, ctx)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                reading = ocr.read_file(data, self.languages)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
            raise Rejected(f"the image is too large to read: {e}") from None
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
                return text, page.render(scale=self.dpi / 72, grayscale=True).to_pil()
            finally:
                page.close()

    def read_pdf(self, pdf, event: FileUploaded, ctx: Context) -> TextExtracted:
        doc, layered, scanned, confidences = TextDoc(), [], [], []
        with PDFIUM:
            pages = len(pdf)
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
