"""Inputs the tests make themselves: images of known text, PDFs with and without a text layer, and
speech synthesised by espeak-ng, so that accuracy can be measured against what was written."""
from __future__ import annotations

import difflib
import io
import re
import subprocess
import tempfile
import wave
from pathlib import Path

from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont


def similarity(expected: str, got: str) -> float:
    """Character similarity of the word sequences (1.0 = the same words), case and punctuation aside."""
    def words(s):
        return " ".join(re.findall(r"[a-z0-9]+", s.lower()))
    return difflib.SequenceMatcher(None, words(expected), words(got)).ratio()


def text_image(lines: list[str], width: int = 1400) -> Image.Image:
    font = ImageFont.load_default(size=44)  # Pillow's bundled FreeType font: no system fonts needed
    image = Image.new("L", (width, 100 + 90 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((50, 50 + 90 * i), line, font=font, fill=0)
    return image


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def jpeg_turned_by_exif(image: Image.Image) -> bytes:
    """The pixels lie on their side and EXIF says "turn 90° clockwise to show", as a phone writes it."""
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    image.rotate(90, expand=True).convert("RGB").save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def pdf(pages: list[str | Image.Image], password: str | None = None) -> bytes:
    """One page per item: a string becomes a text layer, an image a scanned page without one."""
    doc = FPDF()
    doc.set_font("helvetica", size=14)
    for page in pages:
        doc.add_page()
        if isinstance(page, str):
            doc.multi_cell(0, 8, page)
        else:
            doc.image(page, x=10, y=10, w=190)
    if password:
        doc.set_encryption(owner_password=password, user_password=password)
    return bytes(doc.output())


def speech_wav(sentence: str) -> bytes:
    return subprocess.run(["espeak-ng", "--stdout", "-s", "150", sentence], check=True,
                          capture_output=True).stdout


def speech_video(sentence: str, suffix: str = ".mp4") -> bytes:
    """The speech as the audio track of a short black video (H.264 + AAC in MP4, VP9 + Opus in WebM)."""
    codecs = {".mp4": ["-c:v", "libx264", "-c:a", "aac"], ".webm": ["-c:v", "libvpx-vp9", "-c:a", "libopus"]}
    with tempfile.TemporaryDirectory() as tmp:
        wav, out = Path(tmp, "s.wav"), Path(tmp, "v" + suffix)
        wav.write_bytes(speech_wav(sentence))
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=black:s=160x120",
                        "-i", str(wav), "-shortest", *codecs[suffix], str(out)], check=True)
        return out.read_bytes()


def speech_ogg(sentence: str) -> bytes:
    """The speech as Ogg Opus: a minute of it in some 100 KB, under the test stack's upload limit."""
    with tempfile.TemporaryDirectory() as tmp:
        wav, out = Path(tmp, "s.wav"), Path(tmp, "s.ogg")
        wav.write_bytes(speech_wav(sentence))
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-c:a", "libopus", "-b:a", "16k",
                        str(out)], check=True)
        return out.read_bytes()


def silence_wav(seconds: float = 3.0, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return out.getvalue()
