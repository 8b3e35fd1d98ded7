"""Resumable uploads (issue 22, part: tus 1.0, api/uploads.py): the protocol as the tus clients speak it,
a connection cut mid-upload resumed without sending again what arrived, per-user URLs, termination and
expiry, dedupe and the quota as for any upload, and `mindspace upload` resuming with tuspy."""
from __future__ import annotations

import base64
import hashlib
import io
import time
import uuid
import wave

import httpx
import pytest
from tusclient import client as tus

from local import cli

from conftest import in_process
from media import speech_wav

TUS = {"Tus-Resumable": "1.0.0"}


def recording(seconds: float = 60) -> bytes:
    """Speech, then silence: a recording larger than the test stack's 2 MiB upload limit, quick to read."""
    with wave.open(io.BytesIO(speech_wav("The ferry to the island leaves at seven every morning.")), "rb") as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setparams(params)
        w.writeframes(frames + b"\0" * int(seconds * params.framerate * params.sampwidth))
    return out.getvalue()


def metadata(name: str) -> str:
    return f"filename {base64.b64encode(name.encode()).decode()}"


def create(http: httpx.Client, size: int, name: str = "memo.wav") -> str:
    r = http.post("/v1/uploads", headers=TUS | {"Upload-Length": str(size), "Upload-Metadata": metadata(name)})
    assert r.status_code == 201, r.text
    assert r.headers["tus-resumable"] == "1.0.0" and r.headers["upload-expires"]
    return r.headers["location"]


def patch(http: httpx.Client, url: str, offset: int, body, **headers) -> httpx.Response:
    return http.patch(url, content=body, headers=TUS | {"Upload-Offset": str(offset),
                                                        "Content-Type": "application/offset+octet-stream"} | headers)


def test_the_protocol_answers_as_tus_says(user, other_user):
    r = user.http.options("/v1/uploads")
    assert r.status_code == 204 and r.headers["tus-version"] == "1.0.0"
    assert set(r.headers["tus-extension"].split(",")) == {"creation", "termination", "expiration"}
    assert user.http.post("/v1/uploads", headers={"Upload-Length": "10"}).status_code == 412  # no Tus-Resumable
    assert user.http.post("/v1/uploads", headers=TUS).status_code == 400  # no Upload-Length
    assert user.http.post("/v1/uploads", headers=TUS | {"Upload-Length": str(3 * 1024**3)}).status_code == 413
    url = create(user.http, 10)
    assert user.http.head(url).headers["upload-offset"] == "0"
    assert patch(user.http, url, 0, b"x", **{"Content-Type": "text/plain"}).status_code == 415
    assert patch(user.http, url, 5, b"x").status_code == 409
    assert patch(user.http, url, 0, b"x" * 11).status_code == 413  # more than Upload-Length
    # Another user's upload does not exist for them.
    assert other_user.http.head(url).status_code == 404
    assert patch(other_user.http, url, 0, b"x").status_code == 404
    assert other_user.http.delete(url, headers=TUS).status_code == 404
    assert user.http.delete(url, headers=TUS).status_code == 204
    assert user.http.head(url).status_code == 404


@pytest.mark.on_containers
def test_a_cut_upload_resumes_from_what_arrived_and_becomes_the_file(user):
    data = recording()
    url = create(user.http, len(data))

    def cut():
        yield data[: len(data) // 2]
        raise ConnectionResetError("the train entered a tunnel")
    with pytest.raises((httpx.HTTPError, ConnectionResetError)):
        patch(user.http, url, 0, cut())
    deadline = time.monotonic() + 20
    while (arrived := int(user.http.head(url).headers["upload-offset"])) == 0:
        assert time.monotonic() < deadline, "nothing of the first half was kept"
        time.sleep(0.2)
    assert 0 < arrived <= len(data) // 2
    r = patch(user.http, url, arrived, data[arrived:])  # only the rest goes again
    assert r.status_code == 204 and r.headers["upload-offset"] == str(len(data))
    f = user.wait(r.headers["mindspace-file-id"])
    assert f["status"] == "ready" and f["filename"] == "memo.wav" and f["size"] == len(data)
    assert f["sha256"] == hashlib.sha256(data).hexdigest() and f["category"] == "audio"
    assert "ferry" in " ".join(h["passage"] for h in user.search("ferry island", kind="audio")).lower()
    # The same bytes again, resumably: the same file.
    again = create(user.http, len(data))
    assert patch(user.http, again, 0, data).headers["mindspace-file-id"] == f["id"]


def test_unfinished_uploads_expire_and_their_parts_go(user, stack, sql):
    url = create(user.http, 100)
    assert patch(user.http, url, 0, b"y" * 40).status_code == 204
    upload_id = url.rsplit("/", 1)[1]
    parts = stack.data_dir / "blobs" / "users" / user.name / "uploads" / upload_id
    assert parts.exists()
    sql("UPDATE uploads SET expires_at = now() - interval '1 minute' WHERE id = %s", upload_id)
    assert user.http.head(url).status_code == 404
    create(user.http, 10)  # creating sweeps the expired
    assert sql("SELECT 1 FROM uploads WHERE id = %s", upload_id) == [] and not parts.exists()


def test_the_quota_holds_for_resumable_uploads(stack):
    user = f"tus-quota-{uuid.uuid4().hex[:6]}"
    with in_process(stack, quota_bytes=1000) as client:
        r = client.post("/v1/uploads", headers=TUS | {"Upload-Length": "5000", "Authorization": f"Bearer dev:{user}"})
        assert r.status_code == 413 and "QUOTA_BYTES" in r.json()["detail"]


def test_mindspace_upload_resumes_a_cut_upload_with_tuspy(stack, user, capsys, tmp_path, monkeypatch, sql):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "long-memo.wav"
    path.write_bytes(recording(90))
    # A first run cut after one chunk (as a closed laptop leaves it), with the CLI's own URL storage.
    from tusclient.storage.filestorage import FileStorage
    (tmp_path / "cache" / "mindspace").mkdir(parents=True)
    first = tus.TusClient(f"{stack.api_url}/v1/uploads", headers={"Authorization": f"Bearer dev:{user.name}"}).uploader(
        str(path), chunk_size=1024 * 1024, metadata={"filename": path.name}, store_url=True,
        url_storage=FileStorage(str(tmp_path / "cache" / "mindspace" / "uploads.json")))
    first.upload_chunk()
    assert first.offset == 1024 * 1024
    cli.console.width = 200
    cli.main(["--api", stack.api_url, "--token", f"dev:{user.name}", "upload", str(path),
              "--resumable-above", "1000000"])
    assert "long-memo.wav" in capsys.readouterr().out
    (row,) = sql("SELECT received, length, cardinality(parts) AS parts, file_id FROM uploads WHERE id = %s",
                 first.url.rsplit("/", 1)[1])
    assert row["received"] == row["length"] == path.stat().st_size and row["file_id"]
    assert user.file(str(row["file_id"]))["status"] == "ready"
