"""Hostile input through the running stack: decompression bombs, PDFs of thousands of pages, archives,
executables and random bytes named as documents, names made to deceive, and malformed or oversized
CloudEvents at every function. Each gets a clear 4xx or a recorded status with a reason; no function
crashes, and none outgrows its memory limit."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import hostile
import httpx
import pytest

from events import wire
from local.stack import function_names

import media
from conftest import User

# key: (name, bytes, the status it must end in, a word its reason must hold)
CORPUS = {
    "png_bomb": ("bomb.png", hostile.png_bomb, "failed", "IMAGE_MAX_PIXELS"),
    "gif_bomb": ("bomb.gif", hostile.gif_bomb, "failed", "IMAGE_MAX_PIXELS"),
    "tiff_bomb": ("bomb.tiff", hostile.tiff_bomb, "failed", "IMAGE_MAX_PIXELS"),
    "heic_bomb": ("bomb.heic", hostile.heic_bomb, "failed", "IMAGE_MAX_PIXELS"),
    "webp_bomb": ("bomb.webp", hostile.webp_bomb, "failed", "image"),  # libwebp refuses it at open
    "png_zlib_bomb": ("white.png", hostile.png_zlib_bomb, "failed", "IMAGE_MAX_PIXELS"),
    "png_text_bomb": ("comment.png", hostile.png_text_bomb, "failed", "too large"),
    "png_zero_pixels": ("nothing.png", hostile.png_zero_pixels, "failed", "not a readable image"),
    "truncated_jpeg": ("cut.jpg", hostile.truncated_jpeg, "failed", "truncated"),
    "pdf_5000_pages": ("book.pdf", hostile.pdf_pages, "failed", "PDF_PAGE_LIMIT"),
    "pdf_count_lies": ("liar.pdf", hostile.pdf_page_tree_lies, "unsupported", "1 pages"),
    "pdf_giant_page": ("poster.pdf", hostile.pdf_giant_page, "unsupported", "no text"),
    "pdf_zero_page": ("flat.pdf", hostile.pdf_zero_page, "unsupported", "no text"),
    "zip": ("notes.zip", hostile.zip_archive, "unsupported", "application/zip"),
    "tar_gz": ("notes.tar.gz", hostile.tar_gz, "unsupported", "gzip"),
    "elf": ("tool.pdf", hostile.elf, "unsupported", "executable"),
    "windows_pe": ("setup.docx", hostile.windows_pe, "unsupported", "executable"),
    "random_pdf": ("random.pdf", lambda: hostile.random_bytes(seed=1), "unsupported", "octet-stream"),
    "random_jpg": ("random.jpg", lambda: hostile.random_bytes(seed=2), "unsupported", "octet-stream"),
    "random_docx": ("random.docx", lambda: hostile.random_bytes(seed=3), "unsupported", "octet-stream"),
    "random_mp3": ("random.mp3", lambda: hostile.random_bytes(seed=4), "unsupported", "octet-stream"),
    "noise_mp3": ("noise.mp3", hostile.noise_mp3, "unsupported", "no speech"),
    "video_without_audio": ("silent.mp4", hostile.silent_video, "unsupported", "no audio track"),
    "empty_streams": ("empty.mp4", hostile.empty_stream_video, "unsupported", "no audio track"),
}
MEMORY_LIMITS = {"ocr": 1 << 30, "transcribe": 2 << 30, "extract": 512 << 20}  # knative/base/<name>.yaml


def peak_memory(stack, name: str) -> int:
    """The largest peak resident memory (VmHWM) of any process in a function's process group."""
    group, peak = stack.procs[name].pid, 0
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2]) == group:
                status = (proc / "status").read_text()
                peak = max(peak, int(status.split("VmHWM:")[1].split()[0]) * 1024)
        except (OSError, IndexError, ValueError):
            continue
    return peak


@pytest.fixture(scope="module")
def restarts_before(stack):
    """Restarts so far: the drills kill functions on purpose; the corpus must add none."""
    return dict(stack.restarts)


@pytest.fixture(scope="module")
def corpus(stack, restarts_before):
    user = User(stack, "hostile")
    ids = {}
    for key, (name, make, *_) in CORPUS.items():
        r = user.upload(name, make())
        assert r.status_code == 201, (key, r.text)
        ids[key] = r.json()["id"]
    return {key: user.wait(file_id, timeout=300) for key, file_id in ids.items()}


@pytest.mark.parametrize("key", CORPUS)
def test_hostile_files_end_in_a_recorded_status_with_a_reason(corpus, key):
    _, _, status, reason = CORPUS[key]
    f = corpus[key]
    assert f["status"] == status and reason in (f["status_reason"] or ""), f


def test_no_reader_outgrew_its_memory_limit(stack, corpus, restarts_before):
    for name, limit in MEMORY_LIMITS.items():
        assert 0 < peak_memory(stack, name) < limit, name
        assert stack.restarts.get(name, 0) == restarts_before.get(name, 0), f"{name} crashed and was restarted"


@pytest.mark.parametrize("key", hostile.NAMES)
def test_names_are_kept_as_labels_cleaned_of_what_deceives(stack, user, sql, key):
    raw = hostile.NAMES[key]
    boundary = uuid.uuid4().hex
    # Built by hand: httpx would percent-encode the control characters before the server saw them.
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{raw}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + f"a note named {key}".encode() \
        + f"\r\n--{boundary}--\r\n".encode()
    if "\r" in raw or "\n" in raw:  # a raw line break would end the header: send it as a browser would
        r = user.upload(raw, f"a note named {key}".encode())
    else:
        r = user.http.post("/v1/files", content=body,
                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 201, r.text
    shown = user.file(r.json()["id"])["filename"]
    assert shown and len(shown) <= 255
    assert not any(ord(c) < 32 or ord(c) == 127 or c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
                   for c in shown), repr(shown)
    if key in ("traversal", "long"):
        assert shown.startswith(raw[:20])  # the name is kept, only shortened or cleaned
    blob = sql("SELECT blob_uri FROM files WHERE id = %s", r.json()["id"])[0]["blob_uri"]
    assert r.json()["id"] in blob and "passwd" not in blob and "win.ini" not in blob  # stored under its id
    assert user.wait(r.json()["id"])["status"] == "ready"


# --- malformed and oversized CloudEvents at every function -----------------------------------------

def good_headers(type_: str, **extra) -> dict:
    return {"ce-specversion": "1.0", "ce-type": type_, "ce-source": "/test/hostile", "ce-id": str(uuid.uuid4()),
            "content-type": "application/json", **extra}


def consumed_type(name: str) -> str:
    import importlib

    consumes = importlib.import_module(f"functions.{name}.main").handle.stage.consumes
    return consumes[0].type if consumes else "com.example.anything"


def malformed(name: str, victim: str) -> dict[str, tuple[dict, bytes]]:
    """Requests no function may accept; those with a subject name a file of another user (the victim)."""
    t = consumed_type(name)
    forged = json.dumps({"file_id": victim, "user_id": "intruder", "nope": 1}).encode()
    return {
        "no CloudEvent headers": ({"content-type": "application/json"}, b'{"file_id": "x"}'),
        "no ce-source": ({k: v for k, v in good_headers(t).items() if k != "ce-source"}, b"{}"),
        "specversion 0.1": (good_headers(t, **{"ce-specversion": "0.1"}), b"{}"),
        "an unknown type": (good_headers("com.example.unknown", **{"ce-subject": victim}), b"{}"),
        "data the catalogue refuses": (good_headers(t, **{"ce-subject": victim}), forged),
        "a subject that is no uuid": (good_headers(t, **{"ce-subject": "../../etc/passwd"}), b'{"user_id": 7}'),
        "invalid percent-encoding": (good_headers(t, **{"ce-subject": "%FF%FE" + victim}), b"{}"),
        "not JSON with a JSON type": (good_headers(t, **{"ce-subject": victim}), b"{not json"),
        "over MAX_EVENT_BYTES": (good_headers(t, **{"ce-subject": victim}),
                                 json.dumps({"pad": "x" * (300 * 1024)}).encode()),
    }


@pytest.fixture
def victim(user, sql):
    """A file of `user` still processing, which no stage has touched: any change is the events' doing."""
    file_id = str(uuid.uuid4())
    sql("INSERT INTO users (id) VALUES (%s) ON CONFLICT DO NOTHING", user.name)
    sql("""INSERT INTO files (id, user_id, filename, media_type, category, size, sha256, blob_uri)
           VALUES (%s, %s, 'victim.txt', 'text/plain', 'text', 1, %s, 'file:///nowhere')""",
        file_id, user.name, uuid.uuid4().hex * 2)
    return file_id


@pytest.mark.parametrize("name", function_names())
def test_malformed_events_get_a_clear_4xx_and_touch_no_file(stack, user, sql, victim, name):
    url = f"http://127.0.0.1:{stack.function_ports[name]}/"
    for case, (headers, body) in malformed(name, victim).items():
        r = httpx.post(url, headers=headers, content=body, timeout=30)
        assert 400 <= r.status_code < 500, (name, case, r.status_code, r.text)
        if case == "over MAX_EVENT_BYTES":
            assert r.status_code == 413
        assert r.json().get("detail"), (name, case, r.text)
    assert httpx.get(f"{url}healthz", timeout=5).status_code == 200
    assert sql("SELECT status FROM files WHERE id = %s", victim) == [{"status": "processing"}]
    assert sql("SELECT stage FROM file_stages WHERE file_id = %s", victim) == []


@pytest.mark.parametrize("name", function_names())
def test_malformed_events_get_a_clear_4xx_and_the_function_lives_on(stack, user, victim, name):
    url = f"http://127.0.0.1:{stack.function_ports[name]}/"
    restarts = stack.restarts.get(name, 0)  # the drills kill functions on purpose: count from here
    for case, (headers, body) in malformed(name, victim).items():
        r = httpx.post(url, headers=headers, content=body, timeout=30)
        assert 400 <= r.status_code < 500 and r.json().get("detail"), (name, case, r.status_code, r.text)
        assert case != "over MAX_EVENT_BYTES" or r.status_code == 413
    assert httpx.get(f"{url}healthz", timeout=5).status_code == 200
    assert stack.restarts.get(name, 0) == restarts, f"{name} crashed and was restarted"


def test_after_the_barrage_every_stage_still_processes_good_events(stack, user):
    """Text (extract, embed, tag, suggest, cluster, backup, notify), an image (ocr), a recording (transcribe)."""
    files = [user.upload("after.txt", b"The garden shed needs a new roof before winter on Friday.").json()["id"],
             user.upload("after.png", media.png(media.text_image(["Still reading after the storm"]))).json()["id"],
             user.upload("after.wav", media.speech_wav("The stages still answer after the storm.")).json()["id"]]
    assert [user.wait(f)["status"] for f in files] == ["ready"] * 3
    url = f"http://127.0.0.1:{stack.function_ports['remind']}/"
    headers, body = wire.binary(wire.ping("reminders", '{"task": "reminders"}', {"task": "reminders"}))
    assert httpx.post(url, headers=headers, content=body, timeout=30).status_code in (200, 202)
