"""The Prometheus metrics of every function, the API and the local broker, defined once with the
design's names. Label values stay bounded (stage and function names, outcomes, route templates, status
codes): never a user, a file id or a raw path, which would make a series per upload."""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.registry import Collector

# `outcome`: what one delivery to a stage came to: `ok` (done, reply sent), `duplicate` (consumed before;
# its reply replayed), `outcome` (nothing to do: a file deleted meanwhile, an upload no stage can read),
# `rejected` (4xx: poison, not retried) and `failed` (5xx: the broker retries).
JOBS = Counter("jobs_processed_total", "Deliveries a stage answered, by outcome", ["stage", "outcome"])
JOB_SECONDS = Histogram(
    "job_duration_seconds", "Time a stage spent on one delivery", ["stage"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
API_SECONDS = Histogram(
    "api_request_duration_seconds", "API requests by route template, method and status",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPLOAD_BYTES = Counter("file_upload_bytes_total", "Bytes of the uploads the API stored")
UPLOADS = Counter("uploads_total", "Uploads by result: accepted, duplicate, too_large, empty, over_quota", ["result"])
MODEL_LOAD_SECONDS = Histogram(
    "model_load_seconds", "Time to load a model into memory", ["model"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
DEAD_LETTERED = Counter("events_dead_lettered_total", "Events the broker gave up on, by the stage that failed",
                        ["stage"])
COLD_STARTS = Counter("cold_starts_total", "Processes started (under scale-to-zero, one per cold start)",
                      ["function"])
FLAG_EVALUATIONS = Counter("feature_flag_evaluations_total", "Feature flag evaluations, by the variant a user got",
                           ["flag", "variant"])
# Requests (events) one model call served together: shared/batching.py; 1 when a request ran alone.
BATCH_SIZE = Histogram("batch_size", "Requests that one model call served together", ["stage"],
                       buckets=(1, 2, 4, 8, 16, 32, 64))
START_SECONDS = Gauge("cold_start_seconds", "Time the lifecycle start took (settings, pools, the stage's start)",
                      ["function"])
# Generative providers (shared/ai.py): the design's counter, labelled by provider (gemini, openai);
# `outcome` per try: ok, quota (429), error (another status), timeout (no answer).
AI_CALLS = Counter("gemini_api_calls_total", "Calls to a generative AI provider, by provider and outcome",
                   ["provider", "outcome"])
AI_TOKENS = Counter("ai_tokens_total", "Tokens a provider counted, by kind (prompt, completion)", ["provider", "kind"])
AI_QUOTA = Gauge("ai_quota_tokens_per_day", "The provider's daily token quota (AI_DAILY_QUOTA_TOKENS; 0: unknown)",
                 ["provider"])
ASK_SECONDS = Histogram("ask_duration_seconds", "Time an answer took, by phase: retrieval, generation", ["phase"],
                        buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))


class QueueLength(Collector):
    """`queue_length{stage}`: deliveries waiting per subscriber, read from the local broker's queue at
    scrape time (a Knative cluster has no such queue: see the README for the metrics that stand in)."""

    def __init__(self, waiting: Callable[[], dict[str, int]]):
        self.waiting = waiting

    def describe(self):
        yield GaugeMetricFamily("queue_length", "Deliveries waiting per subscriber", labels=["stage"])

    def collect(self):
        family = next(self.describe())
        for stage, n in sorted(self.waiting().items()):
            family.add_metric([stage], n)
        yield family

_SERVICE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")  # a Knative Service name is a DNS label


def process_started(function: str, since: float) -> None:
    """Count a process's start once its lifecycle `start` is done (`since`: time.perf_counter() before)."""
    COLD_STARTS.labels(function).inc()
    START_SECONDS.labels(function).set(time.perf_counter() - since)


def stage_of(dest: str | None) -> str:
    """The Service a dead letter failed at, from Knative's `knativeerrordest`: the first label of its host
    on a cluster (http://embed.mindspace.svc.cluster.local), the path on the local stack, whose functions
    share 127.0.0.1 (http://127.0.0.1:8091/embed). Anything else is `other`."""
    url = urlsplit(dest or "")
    for name in ((url.hostname or "").split(".")[0], url.path.strip("/")):
        if _SERVICE.match(name) and name != "localhost":
            return name
    return "other"
