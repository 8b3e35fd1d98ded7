"""Every kind of file a phone makes becomes text, through the real stages: Tesseract for images and
scanned pages, PDF text layers as they are, faster-whisper for audio and video, and text-like files.
All inputs are uploaded together first, so that the stages work on them side by side."""
from __future__ import annotations

import io

import docx
import pytest

import media
from conftest import User, text_of

# The spine on both stacks: every reader, as processes and as the images Knative runs.
pytestmark = pytest.mark.on_containers

NOTE = ["Buy oat milk and lemons", "Call the dentist on Friday"]
RECEIPT = ["Hardware store receipt", "Copper pipe fittings 12.50"]
LAYER = "The lighthouse keeper logs every passing ship in a leather notebook."
SCANNED = ["Grandmother's recipe", "Knead the dough for ten minutes"]
SPEECH = "The quarterly budget meeting moves to Thursday afternoon in the blue room."
VIDEO_SPEECH = "Remember to water the orchids on the balcony every Sunday morning."


def make_inputs() -> dict[str, tuple[str, bytes]]:
    word = docx.Document()
    word.add_paragraph("Minutes of the volunteer fire brigade")
    word.add_table(rows=1, cols=1).cell(0, 0).text = "Ladder inspection due in October"
    word_bytes = io.BytesIO()
    word.save(word_bytes)
    good_pdf = media.pdf([LAYER])
    return {
        "png": ("note.png", media.png(media.text_image(NOTE))),
        "exif": ("receipt.jpg", media.jpeg_turned_by_exif(media.text_image(RECEIPT))),
        "layer": ("lighthouse.pdf", good_pdf),
        "scanned": ("recipe.pdf", media.pdf([media.text_image(SCANNED)])),
        "mixed": ("mixed.pdf", media.pdf([LAYER.replace("lighthouse", "harbour"), media.text_image(NOTE[::-1])])),
        "wav": ("memo.wav", media.speech_wav(SPEECH)),
        "mp4": ("clip.mp4", media.speech_video(VIDEO_SPEECH)),
        "html": ("page.html", b"<html><head><title>x</title><script>var secretToken = 1;</script></head>"
                              b"<body><h1>Sourdough starter</h1><p>Feed it flour twice a day.</p></body></html>"),
        "docx": ("brigade.docx", word_bytes.getvalue()),
        "latin1": ("cafe.txt", "Le café crème coûte trois euros à Genève.".encode("latin-1")),
        # Broken inputs: each must end in a clear recorded status, and the rest must still finish.
        "truncated": ("cut.pdf", good_pdf[: len(good_pdf) // 3]),
        "locked": ("locked.pdf", media.pdf([LAYER], password="hunter2")),
        "png_as_mp3": ("song.mp3", media.png(media.text_image(["Not a song at all"]))),
        "blank": ("wall.png", media.png(media.text_image([]))),
        "fake_image": ("photo.jpg", b"\xff\xd8\xff\xe0" + b"\x13\x37" * 500),
        "silence": ("quiet.wav", media.silence_wav()),
    }


@pytest.fixture(scope="module")
def done(stack):
    user = User(stack, "extractors")
    return user, user.upload_all(make_inputs())


def test_images_are_read_by_ocr_upright(done, sql):
    user, files = done
    for key, lines in (("png", NOTE), ("exif", RECEIPT)):
        f = files[key]
        assert f["status"] == "ready", f
        assert f["extraction"]["method"] == "ocr" and f["extraction"]["confidence"] > 70, f["extraction"]
        assert media.similarity(" ".join(lines), text_of(sql, f["id"])) > 0.9
    assert user.search("dentist appointment")[0]["file_id"] == files["png"]["id"]
    assert user.search("copper pipe fittings")[0]["file_id"] == files["exif"]["id"]


def test_pdfs_keep_their_text_layer_ocr_the_rest_and_name_the_page(done, sql):
    user, files = done
    layer, scanned, mixed = files["layer"], files["scanned"], files["mixed"]
    assert layer["status"] == scanned["status"] == mixed["status"] == "ready"
    assert layer["extraction"]["method"] == "text-layer" and layer["extraction"]["pages"] == 1
    assert scanned["extraction"]["method"] == "ocr" and scanned["extraction"]["ocr_pages"] == [1]
    assert mixed["extraction"]["method"] == "text-layer+ocr"
    assert (mixed["extraction"]["text_layer_pages"], mixed["extraction"]["ocr_pages"]) == ([1], [2])
    assert media.similarity(LAYER, text_of(sql, layer["id"])) > 0.95
    assert media.similarity(" ".join(SCANNED), text_of(sql, scanned["id"])) > 0.9
    hit = next(h for h in user.search("dentist on Friday", limit=20) if h["file_id"] == mixed["id"])
    assert hit["locator"] == {"page": 2}
    assert user.search("lighthouse keeper ships")[0]["locator"] == {"page": 1}


def test_recordings_are_transcribed_with_times(done, sql):
    user, files = done
    for key, sentence in (("wav", SPEECH), ("mp4", VIDEO_SPEECH)):
        f = files[key]
        assert f["status"] == "ready", f
        x = f["extraction"]
        assert x["method"] == "transcription" and x["language"] == "en" and 2 < x["duration_s"] < 10, x
        heard = text_of(sql, f["id"])
        assert media.similarity(sentence, heard) > 0.8, (key, heard[:80], x)
    hit = user.search("budget meeting on Thursday")[0]
    assert hit["file_id"] == files["wav"]["id"]
    assert 0 <= hit["locator"]["start_s"] < hit["locator"]["end_s"] <= files["wav"]["extraction"]["duration_s"] + 1
    assert user.search("watering plants")[0]["file_id"] == files["mp4"]["id"]


def test_text_like_files(done, sql):
    user, files = done
    assert files["html"]["extraction"]["method"] == "html"
    html = text_of(sql, files["html"]["id"])
    assert "Sourdough starter" in html and "secretToken" not in html
    assert files["docx"]["extraction"]["method"] == "docx"
    assert "Ladder inspection" in text_of(sql, files["docx"]["id"])
    assert "café crème coûte" in text_of(sql, files["latin1"]["id"])


@pytest.mark.parametrize("key, status, reason", [
    ("truncated", "failed", "PDF"),
    ("locked", "failed", "password"),
    ("blank", "unsupported", "no text found in the image"),
    ("fake_image", "failed", "not a readable image"),
    ("silence", "unsupported", "no speech"),
])
def test_broken_inputs_end_in_a_clear_recorded_status(done, key, status, reason):
    f = done[1][key]
    assert f["status"] == status and reason in f["status_reason"], f


def test_a_png_named_mp3_is_read_as_the_image_it_is(done, sql):
    f = done[1]["png_as_mp3"]
    assert f["media_type"] == "image/png" and f["status"] == "ready" and f["extraction"]["method"] == "ocr"
    assert media.similarity("Not a song at all", text_of(sql, f["id"])) > 0.9


def test_a_zero_byte_file_is_refused_at_upload(stack):
    r = User(stack, "extractors").upload("empty.mp3", b"")
    assert r.status_code == 422 and "empty" in r.json()["detail"]
