"""Languages (issue 25): the user's languages choose Tesseract's packs, a page in another script gets its
script's pack from Tesseract's OSD, a short text layer in a dense script is a layer, a multilingual Whisper
model transcribes French as French, each passage is stemmed by its own language's text search configuration,
and the file's record says the language found. The stack tests upload files the tests make; the rest run the
real readers and models under `pytest -m "not stack"`."""
from __future__ import annotations

import io
import os
import subprocess
import tempfile
import wave

import matplotlib
import pypdfium2 as pdfium
import pytest
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

from functions.ocr import pages, reading
from shared import languages

from conftest import User, text_of

# Pillow's bundled font has no accented letters (it draws boxes); matplotlib's DejaVu Sans has them, and Arabic.
FONT = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
FRENCH = ["Le château médiéval se dresse près de la rivière.", "Les élèves étudièrent à l'école française où",
          "le garçon, l'hôpital, la forêt, Noël, déjà vu."]
ACCENTED = ["rivière", "élèves", "étudièrent", "garçon", "forêt", "Noël"]
ARABIC = ["مرحبا بكم في المكتبة العامة", "نفتح أبوابنا كل يوم من الساعة التاسعة", "الكتب الجديدة على الرف الأول",
          "يرجى إعادة الكتب قبل نهاية الشهر", "القراءة غذاء العقل والروح", "المكتبة مغلقة يوم الجمعة"]
GERMAN_MEMO = ("Notiz vom Wochenende\n\nDie Kinder spielten den ganzen Nachmittag in den Gärten der Großeltern, "
               "während wir die Äpfel für den Kuchen sammelten.")


def image_of(lines: list[str], rtl: bool = False) -> Image.Image:
    font = ImageFont.truetype(FONT, 48)
    image = Image.new("L", (1400, 100 + 100 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        if rtl:
            draw.text((1350, 50 + 100 * i), line, font=font, fill=0, anchor="ra", direction="rtl")
        else:
            draw.text((50, 50 + 100 * i), line, font=font, fill=0)
    return image


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def speech(text: str, voice: str) -> bytes:
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-v", voice, "-w", f.name, text], check=True, capture_output=True)
        return f.read()


# Fast tier: the tables, detection, and the real readers and models without the stack.

def test_settings_codes_are_checked_and_mapped():
    assert languages.check(["EN", "de", "de", "fr"]) == ["en", "de", "fr"]
    with pytest.raises(languages.UnknownLanguage, match="'xx' is not a language"):
        languages.check(["en", "xx"])
    assert languages.tesseract(["en", "de", "ko"], {"eng", "deu", "osd"}) == ("eng+deu", ["ko"])
    assert languages.from_tesseract("eng+deu+osd") == ["en", "de"]
    assert languages.configs(["de", "zh", "en"]) == ["german", "simple", "english"]
    assert languages.script_pack("Arabic", {"eng", "ara"}) == "ara"
    assert languages.script_pack("Latin", {"eng"}) is None and languages.script_pack("Han", {"eng"}) is None


def test_a_passage_language_is_detected():
    assert languages.detect("Die Kinder spielten im Garten hinter dem Haus")[0] == "de"
    assert languages.detect("Les enfants jouaient dans le jardin derrière la maison")[0] == "fr"
    assert languages.detect("Remember to buy milk tomorrow", ["en", "de", "fr"])[0] == "en"
    assert languages.detect("ok 12")[0] is None  # too short to tell: the embed stage gives it the file's language
    assert languages.detect("مرحبا بكم في المكتبة العامة", ["en", "de"])[0] == "ar"  # another script tells itself


def test_a_short_layer_in_a_dense_script_counts_as_a_layer():
    assert languages.layer_weight("Page 3 / 12") < pages.MIN_LAYER_CHARS  # a scan's stray marks
    assert languages.layer_weight("مرحبا بالعالم") >= pages.MIN_LAYER_CHARS  # 12 Arabic letters: a greeting
    assert languages.layer_weight("会议记录今天") >= pages.MIN_LAYER_CHARS  # six Han characters: a title

    doc = FPDF()
    doc.add_font("dejavu", fname=FONT)
    doc.set_font("dejavu", size=14)
    doc.add_page()
    doc.cell(0, 10, "مرحبا بالعالم")
    pdf = pdfium.PdfDocument(bytes(doc.output()))
    found = pages.parts(pdf, pdf[0], 300, 100_000_000)
    assert found and all(isinstance(p, str) for p in found), found  # kept as text, not rendered and OCRed
    # Its letters, as written (fpdf2 without a shaping engine lays them out left to right, so PDFium reads
    # them reversed: order is not what this test is about).
    assert sorted("".join(found).replace(" ", "")) == sorted("مرحبابالعالم")


def test_french_is_read_with_its_accents_by_the_french_pack():
    image = image_of(FRENCH)
    installed = reading.installed()
    english = reading.read_upright(image, "eng", installed=installed).text
    french = reading.read_upright(image, "eng+deu+fra", installed=installed).text
    assert not any(word in english for word in ["garçon", "forêt", "rivière"]), english  # the cause, shown
    assert all(word in french for word in ACCENTED), french


def test_a_page_in_another_script_is_read_with_its_pack():
    """The user named only English: the reading is poor, OSD names the script, and Arabic's pack reads it."""
    installed = reading.installed()
    if "ara" not in installed:
        pytest.skip("tesseract-ocr-ara is not installed (make debs)")
    r = reading.read_upright(reading.prepare(image_of(ARABIC, rtl=True)), "eng", installed=installed)
    assert r.script == "Arabic" and "المكتبة" in r.text, r


def test_tiny_en_records_english_and_a_multilingual_model_transcribes_french(tmp_path):
    from shared.models import Whisper

    french = tmp_path / "fr.wav"
    french.write_bytes(speech("Bonjour à tous. Demain matin, nous irons au marché acheter des pommes, du fromage et "
                              "du pain frais pour le pique-nique au château.", "fr"))
    options = dict(beam_size=5, language=None, multilingual=True, vad_filter=True)
    segments, info = Whisper("", cpu_threads=2).run(str(french), **options)
    list(segments)
    assert info.language == "en"  # tiny.en, the default, knows English alone
    try:
        model = Whisper("base", cpu_threads=2)
        segments, info = model.run(str(french), **options)
    except RuntimeError as e:  # the transcribe-multilingual group is not installed
        pytest.skip(str(e))
    text = " ".join(s.text for s in segments)
    assert info.language == "fr", info
    assert "Bonjour à tous" in text and "pommes" in text and "château" in text, text  # French, accents and all


def test_german_after_english_in_one_recording_is_transcribed_as_german():
    """46 s of English, a pause, then German: Whisper alone detects once per 30-s window and read the German as
    English words ("Be kinder, steel, and in garden"); the stage detects each stretch's language."""
    from functions.transcribe.main import Transcribe
    from shared.config import Settings

    english = speech("This is the weekly planning memo. We need to review the budget for the garden project, order "
                     "new tools, and call the plumber about the leaking pipe in the kitchen. The team meets on "
                     "Monday morning at nine to discuss the schedule. Please bring the notes from last week, the "
                     "supplier quotes, and the drawings for the new shed. After the meeting we will walk through "
                     "the site and check the fence, the gate and the irrigation system.", "en")
    german = speech("Die Kinder spielten im Garten. Morgen fahren wir mit dem Zug nach Hamburg.", "de")
    frames, params = b"", None
    for part in (english, english, None, german):
        if part is None:  # a pause of 1.5 s, as a speaker takes before changing language
            frames += bytes(params.sampwidth * params.framerate * 3 // 2)
            continue
        with wave.open(io.BytesIO(part)) as w:
            params, frames = w.getparams(), frames + w.readframes(w.getnframes())
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setparams(params)
        w.writeframes(frames)
    stage = Transcribe()
    stage.start(Settings(whisper_model="base", omp_thread_limit=2))
    try:
        doc, facts = stage.transcribe(out.getvalue())
    except RuntimeError as e:  # the transcribe-multilingual group is not installed
        pytest.skip(str(e))
    assert facts["language"] == "en" and facts["languages"] == ["en", "de"], facts
    assert "garden project" in doc.text and "Hamburg" in doc.text and "Zug" in doc.text, doc.text
    assert doc.segments[-1]["locator"]["end_s"] > 47  # the German keeps its place in the recording


# The stack: settings, the ocr, embed and search stages, the file's record.

@pytest.fixture(scope="module")
def polyglot(stack):
    user = User(stack, "polyglot")
    r = user.http.put("/v1/settings", json={"languages": ["en", "de", "fr"]})
    assert r.status_code == 200 and r.json()["languages"] == ["en", "de", "fr"], r.text
    return user


@pytest.mark.on_containers  # the ocr, embed and transcribe images read them alike
def test_unknown_languages_are_refused_with_the_known_ones(polyglot):
    r = polyglot.http.put("/v1/settings", json={"languages": ["en", "klingon"]})
    assert r.status_code == 422 and "'klingon' is not a language" in r.text, r.text
    assert polyglot.http.put("/v1/settings", json={"languages": []}).status_code == 422
    assert polyglot.http.get("/v1/settings").json()["languages"] == ["en", "de", "fr"]


@pytest.mark.on_containers
def test_a_french_scan_is_read_with_accents_for_a_user_who_reads_french(stack, polyglot, sql):
    monolingual = User(stack, "english-only")  # no languages set: the deployment's OCR_LANGUAGES (eng)
    scan = png(image_of(FRENCH))
    files = {"fr": polyglot.upload_all({"scan": ("lettre.png", scan)})["scan"],
             "en": monolingual.upload_all({"scan": ("lettre.png", scan)})["scan"]}
    for f in files.values():
        assert f["status"] == "ready", f
    assert files["fr"]["extraction"]["ocr_languages"] == "eng+deu+fra"
    assert files["en"]["extraction"]["ocr_languages"] == "eng"
    read = text_of(sql, files["fr"]["id"])
    assert all(word in read for word in ACCENTED), read
    assert "garçon" not in text_of(sql, files["en"]["id"])
    assert files["fr"]["language"] == "fr"
    hit = polyglot.search("élèves rivière", mode="text")
    assert hit and hit[0]["file_id"] == files["fr"]["id"], hit


@pytest.mark.on_containers
def test_a_german_memo_is_found_by_its_words_stems(stack, polyglot, sql):
    monolingual = User(stack, "english-only-memo")
    mine = polyglot.upload_all({"memo": ("notiz.md", GERMAN_MEMO.encode())})["memo"]
    theirs = monolingual.upload_all({"memo": ("notiz.md", GERMAN_MEMO.encode())})["memo"]
    assert mine["status"] == theirs["status"] == "ready"
    assert mine["language"] == "de" and mine["stages"]["embed"]["detail"]["languages"] == {"de": 1}, mine
    assert sql("SELECT DISTINCT tsconfig::text AS c FROM chunks WHERE file_id = %s", mine["id"]) == [{"c": "german"}]
    # "Kind" and "Garten" stand nowhere in the memo: German's stemmer makes Kinder -> kind, Gärten -> gart.
    hits = polyglot.search("Kind Garten", mode="text")
    assert [h["file_id"] for h in hits] == [mine["id"]], hits
    assert monolingual.search("Kind Garten", mode="text") == []  # stemmed as English, as every passage was before


@pytest.mark.on_containers
def test_the_spoken_language_is_recorded(stack, polyglot):
    memo = speech("Remember to water the tomatoes and call the plumber on Friday morning.", "en")
    f = polyglot.upload_all({"memo": ("memo.wav", memo)})["memo"]
    assert f["status"] == "ready", f
    assert f["extraction"]["language"] == "en" and f["language"] == "en", f
