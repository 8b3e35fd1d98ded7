"""Blob storage behind one small interface: a local folder by default, Google Cloud Storage when a
bucket is configured. Blobs are addressed by URI (file://… or gs://…), which events carry instead of
bytes (the claim-check pattern: brokers cap event size)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlparse


class BlobNotFound(LookupError):
    pass


def file_key(user_id: str, file_id, name: str) -> str:
    """Every blob of a file lives under one prefix, so deleting the file deletes them all."""
    return f"users/{user_id}/files/{file_id}/{name}"


class BlobStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str: ...
    def get(self, uri: str) -> bytes: ...
    def delete(self, uri: str) -> None: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def key_of(self, uri: str) -> str: ...  # the key of one of its blobs; BlobNotFound for another store's
    # Streaming, for what must never be held in memory whole (resumable uploads): a writer whose blob
    # exists once it closes, at uri(key); a reader of a blob.
    def writer(self, key: str, content_type: str = "application/octet-stream"): ...
    def uri(self, key: str) -> str: ...
    def reader(self, uri: str) -> BinaryIO: ...


class LocalBlobStore:
    def __init__(self, root: Path):
        self.root = root.resolve()

    def _path(self, uri: str) -> Path:
        parsed = urlparse(uri)
        path = Path(unquote(parsed.path)).resolve()
        if parsed.scheme != "file" or not path.is_relative_to(self.root):
            raise BlobNotFound(f"{uri} is not a blob of this store ({self.root})")
        return path

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"blob key escapes the store: {key!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half a blob.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return path.as_uri()

    def key_of(self, uri: str) -> str:
        return self._path(uri).relative_to(self.root).as_posix()  # resolved: no ../ gets past it

    def uri(self, key: str) -> str:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"blob key escapes the store: {key!r}")
        return path.as_uri()

    @contextmanager
    def writer(self, key: str, content_type: str = "application/octet-stream"):
        path = self._path(self.uri(key))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as out:
            yield out
        tmp.replace(path)

    def reader(self, uri: str) -> BinaryIO:
        try:
            return self._path(uri).open("rb")
        except FileNotFoundError as e:
            raise BlobNotFound(uri) from e

    def get(self, uri: str) -> bytes:
        try:
            return self._path(uri).read_bytes()
        except FileNotFoundError as e:
            raise BlobNotFound(uri) from e

    def delete(self, uri: str) -> None:
        self._path(uri).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        import shutil

        folder = (self.root / prefix).resolve()
        if folder.is_relative_to(self.root) and folder != self.root:
            shutil.rmtree(folder, ignore_errors=True)


def gcs_client():
    """The real google-cloud-storage client, with the pod's own service account. Pointed at an emulator
    (the tests') by STORAGE_EMULATOR_HOST, which the library reads itself, it takes no credentials there."""
    from google.cloud import storage  # imported here: the local stack never pays for it

    return storage.Client()


class GCSBlobStore:
    """The real google-cloud-storage client; STORAGE_EMULATOR_HOST points it at an emulator."""

    def __init__(self, bucket: str):
        self.bucket = gcs_client().bucket(bucket)

    def _blob(self, uri: str):
        parsed = urlparse(uri)
        if parsed.scheme != "gs" or parsed.netloc != self.bucket.name:
            raise BlobNotFound(f"{uri} is not a blob of bucket {self.bucket.name}")
        return self.bucket.blob(parsed.path.lstrip("/"))

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        self.bucket.blob(key).upload_from_string(data, content_type=content_type)
        return f"gs://{self.bucket.name}/{key}"

    def key_of(self, uri: str) -> str:
        return self._blob(uri).name

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket.name}/{key}"

    @contextmanager
    def writer(self, key: str, content_type: str = "application/octet-stream"):
        with self.bucket.blob(key).open("wb", content_type=content_type) as out:  # a resumable upload
            yield out

    def reader(self, uri: str) -> BinaryIO:
        return self._blob(uri).open("rb")

    def get(self, uri: str) -> bytes:
        from google.api_core.exceptions import NotFound

        try:
            return self._blob(uri).download_as_bytes()
        except NotFound as e:
            raise BlobNotFound(uri) from e

    def delete(self, uri: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._blob(uri).delete()
        except NotFound:
            pass

    def delete_prefix(self, prefix: str) -> None:
        for blob in self.bucket.client.list_blobs(self.bucket, prefix=prefix.rstrip("/") + "/"):
            self.delete(f"gs://{self.bucket.name}/{blob.name}")


def blob_store(cfg) -> BlobStore:
    return GCSBlobStore(cfg.blob_bucket) if cfg.blob_bucket else LocalBlobStore(cfg.blob_dir)
