"""Blob storage: local disk, and the real google-cloud-storage client against a storage emulator."""
from __future__ import annotations

import pytest

from shared.blobs import BlobNotFound, GCSBlobStore, LocalBlobStore

from fakes import StorageEmulator


@pytest.fixture(scope="module")
def gcs_emulator(monkeypatch_module):
    emulator = StorageEmulator()
    monkeypatch_module.setenv("STORAGE_EMULATOR_HOST", emulator.url)
    yield emulator.url
    emulator.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(params=["local", "gcs"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalBlobStore(tmp_path)
    request.getfixturevalue("gcs_emulator")
    return GCSBlobStore("mindspace-test")


def test_put_get_delete(store):
    uri = store.put("users/u1/files/f1/original", b"\x00binary\xffbytes", "application/octet-stream")
    assert uri.startswith(("file://", "gs://mindspace-test/"))
    assert store.get(uri) == b"\x00binary\xffbytes"
    store.put("users/u1/files/f1/original", b"replaced")
    assert store.get(uri) == b"replaced"
    store.delete(uri)
    with pytest.raises(BlobNotFound):
        store.get(uri)
    store.delete(uri)  # deleting twice is fine: handlers are retried


def test_a_store_refuses_uris_that_are_not_its_own(store, tmp_path):
    with pytest.raises(BlobNotFound):
        store.get("gs://another-bucket/x" if isinstance(store, GCSBlobStore) else (tmp_path.parent / "x").as_uri())


def test_local_keys_cannot_escape_the_store(tmp_path):
    with pytest.raises(ValueError):
        LocalBlobStore(tmp_path / "blobs").put("../outside", b"x")


def test_delete_prefix_removes_every_blob_of_a_file(store):
    keep = store.put("users/u1/files/f2/original", b"keep")
    gone = [store.put(f"users/u1/files/f1/{n}", b"x") for n in ("original", "text.json")]
    store.delete_prefix("users/u1/files/f1/")
    for uri in gone:
        with pytest.raises(BlobNotFound):
            store.get(uri)
    assert store.get(keep) == b"keep"
