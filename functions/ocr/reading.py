"""Tesseract as the stages use it: an image made upright and legible, read with its confidence.

One Tesseract pass per image (image_to_data gives the words and their confidences together); the
orientation check (OSD) runs only when that pass reads badly, since it costs a second pass.
"""
from __future__ import annotations

import io
import logging
import tempfile
from dataclasses import dataclass

import pytesseract
from PIL import Image, ImageOps

from shared import languages as langs
from shared.config import library_env

log = logging.getLogger(__name__)
# Tesseract reads best at roughly 300 dpi, i.e. capitals 20-30 px high: phone photos mostly are;
# screenshots and thumbnails get scaled up, and giant scans down (time grows with pixels).
MIN_SIDE, MAX_SIDE = 1600, 5000
LOW_CONFIDENCE = 60.0


class TooLarge(ValueError):
    """An image that declares more pixels than the cap: refused from its header, never decoded."""


@dataclass
class Reading:
    text: str
    confidence: float  # mean word confidence, 0-100
    words: int
    rotated: int = 0  # degrees turned clockwise by orientation detection
    script: str = ""  # the script OSD named, when its pack read the image better (Arabic, Han …)


def prepare(image: Image.Image) -> Image.Image:
    image = ImageOps.exif_transpose(image)  # phones store the turn in EXIF, not in the pixels
    side = max(image.size)
    if side < MIN_SIDE or side > MAX_SIDE:
        factor = (MIN_SIDE if side < MIN_SIDE else MAX_SIDE) / side
        if factor < 1 or factor >= 1.25:  # a side never below one pixel (a 1 x 60000 strip)
            image = image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                                 Image.Resampling.LANCZOS)
    return image if image.mode in ("L", "RGB") else image.convert("RGB")


def read_file(data: bytes, languages: str, max_pixels: int, installed: frozenset = frozenset()) -> Reading:
    """Read an image file; Tesseract gets the very bytes when they need no change (re-encoding a
    300 dpi page as PNG costs more than a tenth of reading it). Its size is checked from the header
    (Image.open decodes nothing) before a pixel is decoded."""
    image = Image.open(io.BytesIO(data))
    width, height = image.size
    if width * height > max_pixels:
        raise TooLarge(f"the image declares {width} x {height} pixels ({width * height / 1e6:.0f} M); the limit "
                       f"is {max_pixels / 1e6:.0f} M (IMAGE_MAX_PIXELS)")
    image.load()
    ready = prepare(image)
    if ready is image and image.format in ("PNG", "JPEG", "TIFF"):
        with tempfile.NamedTemporaryFile(suffix="." + image.format.lower()) as f:
            f.write(data)
            f.flush()
            return read_upright(image, languages, source=f.name, installed=installed)
    return read_upright(ready, languages, installed=installed)


def read_pages(data: bytes, languages: str, max_pixels: int, max_pages: int, page_limit: int,
               installed: frozenset = frozenset()) -> list[Reading]:
    """Every page of a multi-page image (a fax's or a scanner's TIFF), as PDF pages are read: more than
    page_limit pages are refused, counted by walking at most page_limit + 1 of them (a TIFF may chain a
    million), and only the first max_pages are read. A one-page image is read_file's."""
    image = Image.open(io.BytesIO(data))
    count = 1
    # Only a TIFF's frames are pages; an animation's are not, and seeking a GIF decodes the frames before.
    while image.format == "TIFF" and count <= page_limit:
        try:
            image.seek(count)
        except EOFError:
            break
        count += 1
    if count > page_limit:
        raise TooLarge(f"the image has more than {page_limit} pages; longer ones are not read (PDF_PAGE_LIMIT)")
    if count == 1:
        return [read_file(data, languages, max_pixels, installed)]
    readings = []
    for number in range(min(count, max_pages)):
        image.seek(number)
        width, height = image.size
        if width * height > max_pixels:
            raise TooLarge(f"page {number + 1} declares {width} x {height} pixels; the limit is "
                           f"{max_pixels / 1e6:.0f} M (IMAGE_MAX_PIXELS)")
        image.load()
        readings.append(read_upright(prepare(image.copy()), languages, installed=installed))
    return readings


def read(image: Image.Image | str, languages: str) -> Reading:
    data = pytesseract.image_to_data(image, lang=languages, output_type=pytesseract.Output.DICT)
    lines: dict[tuple, list[str]] = {}
    confidences = []
    for i, word in enumerate(data["text"]):
        conf = float(data["conf"][i])
        if conf < 0 or not word.strip():
            continue
        confidences.append(conf)
        lines.setdefault((data["block_num"][i], data["par_num"][i], data["line_num"][i]), []).append(word)
    text, last = [], None
    for (block, par, _), words in lines.items():
        if last is not None and (block, par) != last:
            text.append("")  # a blank line between paragraphs keeps them apart for the chunker
        text.append(" ".join(words))
        last = (block, par)
    mean = sum(confidences) / len(confidences) if confidences else 0.0
    return Reading("\n".join(text), round(mean, 1), len(confidences))


def read_upright(image: Image.Image, languages: str, source: str | None = None,
                 installed: frozenset = frozenset()) -> Reading:
    """Read; if that reads badly, ask Tesseract's orientation and script detection (OSD) and keep the better
    reading: turned upright, and with the installed pack of the script it names where that is not Latin
    and not among `languages` (an Arabic or Chinese page of a user who named only Latin-script languages)."""
    first = read(source or image, languages)
    if first.confidence >= LOW_CONFIDENCE and first.words:
        return first
    try:
        osd = pytesseract.image_to_osd(image, output_type=pytesseract.Output.DICT)
    except pytesseract.TesseractError as e:  # too few characters to tell
        log.debug("no orientation: %s", e)
        return first
    turn, script = int(osd["rotate"]), str(osd.get("script", ""))
    pack = langs.script_pack(script, installed)
    pack = pack if pack and pack not in languages.split("+") else None
    if turn == 0 and not pack:
        return first
    second = read(image.rotate(-turn, expand=True) if turn else image, f"{pack}+{languages}" if pack else languages)
    second.rotated, second.script = turn, script if pack else ""
    return second if second.confidence > first.confidence else first


def single_threaded() -> None:
    """Tesseract's OpenMP threads spin on a small CPU share: one thread read pages 2.8x faster here
    (bench/bench_ocr.py), and Knative adds pods for throughput instead. Called by the OCR stage at start,
    never at import: the variable would reach every process the importer starts (CTranslate2 reads it too,
    and transcribes garbage under it unless told its thread count)."""
    library_env(OMP_THREAD_LIMIT="1")


def installed() -> frozenset:
    """The language packs Tesseract has here (eng, deu, osd, script/Arabic …)."""
    return frozenset(pytesseract.get_languages(config=""))


def check_languages(languages: str) -> None:
    """Fail at start, with the fix, when a configured language's data is not installed."""
    have = set(pytesseract.get_languages(config=""))
    missing = [lang for lang in languages.split("+") if lang not in have]
    if missing:
        raise RuntimeError(f"Tesseract has no data for {missing} (installed: {sorted(have)}); install "
                           f"tesseract-ocr-{missing[0]} or change OCR_LANGUAGES")
