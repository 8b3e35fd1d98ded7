"""Logs and Prometheus metrics, set up the same way by every function."""
from __future__ import annotations

import logging
import os

from prometheus_client import Counter, Histogram

EVENTS = Counter(
    "mindspace_events_total", "Events a function consumed, by outcome", ["function", "type", "outcome"]
)
STAGE_SECONDS = Histogram(
    "mindspace_stage_seconds", "Time a stage spent on one event", ["function"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)


def setup_logging(function: str, level: str = "INFO") -> None:
    """One line per record, naming the function: the local stack interleaves all of them."""
    if getattr(setup_logging, "done", False):
        return
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)-7s {function:<10} %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "httpcore", "urllib3", "sentence_transformers", "procrastinate", "pgserver"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    setup_logging.done = True
