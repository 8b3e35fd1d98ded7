"""A hostile corpus, made by the tests themselves: files that lie about their size, their page count or
their type, and names made to trick a reader. Each is small on the wire and costly only to a reader
that believes it (tests/test_hostile.py uploads them through the running stack)."""
from __future__ import annotations

import io
import random
import struct
import subprocess
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

import pillow_heif
import pypdfium2 as pdfium
from PIL import Image

import media

BOMB_SIDE = 40_000  # 1.6 G pixels, about 4.8 GB decoded as RGB; a few hundred bytes on the wire


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """A PNG whose header declares side x side pixels, with one compressed row of data."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * (side + 1))) \
        + _chunk(b"IEND", b"")


def png_zlib_bomb(side: int = 12_000) -> bytes:
    """A real PNG of side x side white pixels (144 M for the default): every row present, ~1000:1."""
    raw = zlib.compressobj(9)
    row = b"\0" + b"\xff" * side
    data = b"".join(raw.compress(row) for _ in range(side)) + raw.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def png_text_bomb(megabytes: int = 64) -> bytes:
    """A small valid PNG with a compressed text chunk that inflates to `megabytes` MB."""
    small = media.png(Image.new("L", (8, 8), 255))
    ztxt = b"Comment\0\0" + zlib.compress(b"A" * (megabytes << 20), 9)
    return small[:-12] + _chunk(b"zTXt", ztxt) + small[-12:]


def gif_bomb(side: int = BOMB_SIDE) -> bytes:
    """A GIF whose screen and only frame declare side x side pixels (its LZW data: a few codes)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", side, side, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"," + struct.pack("<HHHHB", 0, 0, side, side, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b";"


def tiff_bomb(side: int = BOMB_SIDE) -> bytes:
    """An uncompressed greyscale TIFF declaring side x side pixels, with one strip of 8 bytes."""
    tags = [(256, 4, side), (257, 4, side), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8 + 2 + 9 * 12 + 4),
            (277, 3, 1), (278, 4, side), (279, 4, 8)]
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, value in tags) + b"\0\0\0\0"
    return b"II*\0" + struct.pack("<I", 8) + ifd + b"\0" * 8


def webp_bomb(side: int = 16_383) -> bytes:
    """A lossless WebP declaring side x side pixels (WebP's largest: 268 M), its pixel data a few bytes."""
    header = (side - 1) | (side - 1) << 14  # width-1, height-1 in 14 bits each; no alpha, version 0
    # No transform, no colour cache, no meta codes, then five prefix codes of one symbol each: bits
    # (read from the lowest) 1 = simple, 0 = one symbol, 0 = a 1-bit symbol, 0 = symbol 0. A pixel costs 0 bits.
    stream = sum(1 << (3 + 4 * i) for i in range(5))
    vp8l = b"\x2f" + struct.pack("<I", header) + stream.to_bytes(3, "little") + b"\x00" * 5
    return b"RIFF" + struct.pack("<I", 4 + 8 + len(vp8l)) + b"WEBP" + b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l


def heic_bomb(side: int = BOMB_SIDE) -> bytes:
    """A real 64x64 HEIC whose image spatial extents (`ispe`) claim side x side pixels."""
    out = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (64, 64), "white")).save(out, quality=50)
    data = bytearray(out.getvalue())
    at = data.index(b"ispe") + 4 + 4  # past the box type, version and flags
    data[at:at + 8] = struct.pack(">II", side, side)
    return bytes(data)


def pdf_pages(pages: int = 5000) -> bytes:
    """A PDF of `pages` blank pages, made by PDFium (the pages share nothing but cost little)."""
    doc = pdfium.PdfDocument.new()
    for _ in range(pages):
        doc.new_page(200, 200).close()
    out = io.BytesIO()
    doc.save(out)
    doc.close()
    return out.getvalue()


def pdf_page_tree_lies(count: int = 10_000_000) -> bytes:
    """A one-page PDF whose page tree says it holds `count` pages."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count %d >>" % count,
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"]
    return _pdf(objects)


def pdf_giant_page() -> bytes:
    """One blank page of 200 x 200 inches (PDF's largest), 3.6 G pixels if rendered at 300 dpi."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 14400 14400] >>"]
    return _pdf(objects)


def _pdf(objects: list[bytes]) -> bytes:
    out, offsets = bytearray(b"%PDF-1.7\n"), []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def zip_archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("notes/a.txt", "a zipped note about the garden")
    return out.getvalue()


def tar_gz() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as t:
        data = b"a tarred note about the garden"
        info = tarfile.TarInfo("notes/a.txt")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def elf() -> bytes:
    """The header of a 64-bit x86-64 Linux executable, and some code-like bytes."""
    header = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x401000, 64, 0, 0,
                                                                  64, 56, 1, 64, 0, 0)
    return header + random.Random(1).randbytes(2048)


def windows_pe() -> bytes:
    """An MZ stub pointing to a PE header of an x86-64 executable."""
    stub = bytearray(b"MZ" + b"\0" * 62)
    stub[0x3C:0x40] = struct.pack("<I", 64)
    pe = b"PE\0\0" + struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, 240, 0x22) + b"\x0b\x02" + b"\0" * 238
    return bytes(stub) + pe + random.Random(2).randbytes(1024)


def random_bytes(n: int = 4096, seed: int = 3) -> bytes:
    """Bytes no format claims: a fixed seed, and a first byte that is no magic number's."""
    return b"\x00\x01" + random.Random(seed).randbytes(n)


def truncated_jpeg() -> bytes:
    data = media.jpeg_turned_by_exif(media.text_image(["A photo cut off in transfer"]))
    return data[: len(data) // 3]


def _ffmpeg(*args: str, suffix: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "out" + suffix)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args, str(out)], check=True)
        return out.read_bytes()


def noise_mp3(seconds: int = 4) -> bytes:
    return _ffmpeg("-f", "lavfi", "-i", f"anoisesrc=d={seconds}:c=white:a=0.5", "-c:a", "libmp3lame", suffix=".mp3")


def silent_video() -> bytes:
    """A video with a picture and no audio stream at all."""
    return _ffmpeg("-f", "lavfi", "-i", "color=c=black:s=160x120:d=2", "-c:v", "libx264", suffix=".mp4")


def empty_stream_video() -> bytes:
    """An MP4 whose audio and video streams are declared but hold no samples."""
    return _ffmpeg("-f", "lavfi", "-i", "color=c=black:s=160x120", "-f", "lavfi", "-i", "anullsrc",
                   "-t", "0", "-c:v", "libx264", "-c:a", "aac", suffix=".mp4")


# Names a person or a program could be tricked by; each is stored under an id, and shown back cleaned.
NAMES = {
    "traversal": "../../etc/passwd",
    "windows_traversal": "..\\..\\Windows\\win.ini",
    "control": "bell\x07and\x1b[31mred\x7f.txt",
    "line_breaks": "two\r\nlines.txt",  # sent as a browser does (percent-encoded): a raw one ends the header
    "bidi": "invoice\u202etxt.exe",
    "long": "n" * 300 + ".txt",
    "nul": "nul\x00byte.txt",
}


def pdf_zero_page() -> bytes:
    """One page whose MediaBox has no area."""
    return _pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                 b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 0 0] >>"])


def png_zero_pixels() -> bytes:
    """A PNG whose header declares 0 x 0 pixels (the format forbids it; a reader must not trust it)."""
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 0, 8, 0, 0, 0, 0)) \
        + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")


def png_strip(length: int = 60_000) -> bytes:
    """A 1 x `length` pixel strip: scaled to Tesseract's size, its short side must not round to zero."""
    return media.png(Image.new("L", (1, length), 255))


def flac_claiming(hours: float = 4.0) -> bytes:
    """One second of silence as FLAC whose STREAMINFO claims `hours` of samples (read from the header)."""
    data = bytearray(_ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "1", "-c:a", "flac",
                             suffix=".flac"))
    at = data.index(b"fLaC") + 4 + 4 + 10  # past the magic, the block header, block and frame sizes
    fields = int.from_bytes(data[at:at + 8], "big")
    rate = fields >> 44
    data[at:at + 8] = (fields & ~((1 << 36) - 1) | int(hours * 3600 * rate)).to_bytes(8, "big")
    return bytes(data)
