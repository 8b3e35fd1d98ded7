"""Real files from other projects' test suites (../shared/external-corpus/: Paperless-ngx, OCRmyPDF, pypdf,
python-mammoth, Tesseract, Docspell, faster-whisper, inscriptis …), uploaded through the running stack as a
new user would. Every file ends with a status and, unless ready, a reason; the files with a reference text
(truth/) are read close to it; and the parts issue 25 found lost are read: each is asserted by words that only
that part holds. The table of what was read per file is printed. Skipped where the folder is absent: the
files are never copied into this repository (several are GPL, AGPL or CC-BY-SA)."""
from __future__ import annotations

from pathlib import Path

import pytest

import media
from conftest import User, text_of

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "external-corpus"
pytestmark = pytest.mark.skipif(not (CORPUS / "files").is_dir(),
                                reason=f"{CORPUS} is absent (the shared folder beside the repository)")

# What a file must end as, where not `ready`, and words of the reason.
NOT_READY = {
    "ds__bombs_20K-gray.png": ("failed", "IMAGE_MAX_PIXELS"),
    "pl__encrypted.pdf": ("failed", "password"),
    "pl__password-is-test.pdf": ("failed", "password"),
    "pp__crazyones-encrypted-256.pdf": ("failed", "password"),
    "om__invalid.pdf": ("failed", "PDF"),
    "mm__empty.docx": ("unsupported", "no text"),
    "pl__simple.zip": ("unsupported", "zip"),
    "wt__empty.mp3": ("unsupported", "speech"),
    "wt__empty.wav": ("unsupported", "speech"),
    "om__no_contents.pdf": ("unsupported", "no text"),
    "pl__no-text-alpha.png": ("unsupported", "no text"),  # a drawing of a winged horse
    "om__trivial.pdf": ("unsupported", "no text"),
    "om__livecycle.pdf": ("unsupported", "no text"),  # an XFA form: its text is in XML that PDFium does not lay out
}
# Words that only the part issue 25 found lost holds; each must be read (whitespace aside).
LOST_PARTS = {
    "pl__multi-page-images.tiff": "multi page document. Page 3.",  # a multi-page TIFF's last page
    "pl__single-page-mixed.pdf": "This is some text, but in an image",  # an image of text on a layered page
    "om__hugemono.pdf": "a very big image with a tiny amount of text",  # a poster-sized page
    "om__enormous.pdf": "megapixels",
    "is__html-comment-ofuscation.html": "$90.74",  # a price split by comments
    "mm__text-box.docx": "Datum plane",
    "mm__footnotes.docx": "A tachyon walks into a bar",
    "mm__strict-format.docx": "Test",
    "pl__sample.odt": "This is an ODT test document",
    "pl__sample.doc": "saved in the older .doc format",
    "pl__simple_text.eml": "This is just a simple Text Mail",
    "pl__rtl-test.pdf": "الداخلية",  # an Arabic text layer of 14 letters, once re-OCRed in English
    "om__francais.pdf": "intérieure, à côté",  # French, read with French's pack
}
# Words a reader of the file never sees, which must not be read (inscriptis's hidden-text fixture).
HIDDEN = {"is__invisible2.html": ["hallo", "echo"]}
MIN_TRUTH = 0.8  # similarity to the reference text (tests/media.py similarity: 1.0 = the same words)


@pytest.fixture(scope="module")
def corpus(stack):
    user = User(stack, "external-corpus")
    # Its letters are in English, German and French (OCR_LANGUAGES is English alone).
    assert user.http.put("/v1/settings", json={"languages": ["en", "de", "fr"]}).status_code == 200
    uploads = {}
    for path in sorted((CORPUS / "files").iterdir()):
        r = user.upload(path.name, path.read_bytes())
        assert r.status_code in (201, 200), (path.name, r.text)
        uploads[path.name] = r.json()["id"]
    return user, {name: user.wait(file_id, timeout=900) for name, file_id in uploads.items()}


def test_every_file_ends_with_a_status_and_a_reason(corpus, sql, capsys):
    _, files = corpus
    rows = []
    for name, f in files.items():
        truth = CORPUS / "truth" / (Path(name).stem + ".txt")
        text = text_of(sql, f["id"])
        rows.append((name, f["status"], (f.get("extraction") or {}).get("method", ""), len(text),
                     f"{media.similarity(truth.read_text(), text):.2f}" if truth.exists() else "",
                     f.get("status_reason") or ""))
    with capsys.disabled():
        print(f"\nwhat was read from each file of {CORPUS} (tests/test_external_corpus.py)")
        print(f"{'file':38} {'status':11} {'method':15} {'chars':>6} {'truth':>5}  reason")
        for name, status, method, chars, truth, reason in rows:
            print(f"{name:38} {status:11} {method:15} {chars:6d} {truth:>5}  {reason[:70]}")
    wrong = [(name, f["status"], f.get("status_reason")) for name, f in files.items()
             if (f["status"], ) != NOT_READY.get(name, ("ready",))[:1]
             or (f["status"] != "ready" and NOT_READY[name][1].lower() not in (f.get("status_reason") or "").lower())]
    assert not wrong, "\n".join(map(str, wrong))


def test_the_parts_that_used_to_be_lost_are_read(corpus, sql):
    files = corpus[1]
    texts = {name: " ".join(text_of(sql, files[name]["id"]).split()) for name in LOST_PARTS | HIDDEN}
    missing = [(name, words, texts[name][:200]) for name, words in LOST_PARTS.items() if words not in texts[name]]
    seen = [(name, word) for name, words in HIDDEN.items() for word in words if word in texts[name].lower()]
    assert not missing and not seen, (missing, seen)


def test_files_with_a_reference_text_are_read_close_to_it(corpus, sql):
    files = corpus[1]
    far = {}
    for name, f in files.items():  # a letter may come as PDF, HTML and Markdown: one reference for each
        truth = CORPUS / "truth" / (Path(name).stem + ".txt")
        if truth.exists():
            score = media.similarity(truth.read_text(), text_of(sql, f["id"]))
            if score < MIN_TRUTH:
                far[name] = round(score, 2)
    assert not far, far
