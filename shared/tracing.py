"""Traces across events: W3C trace context rides in the CloudEvents distributed-tracing extension
(`traceparent`, `tracestate` attributes). The API starts a trace at upload; every function continues it
from the event it received (a span per stage handling) and puts it on every event it emits, so one
upload is one trace through all the stages.

Spans go over OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT` when it is set. When it is not, no SDK is set
up: OpenTelemetry's API stays a no-op that only hands the incoming context on (a function without a
collector still passes its caller's trace to the next), and no instrumentation is installed.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.config import Settings

W3C = TraceContextTextMapPropagator()
FIELDS = ("traceparent", "tracestate")
tracer = trace.get_tracer("mindspace")  # a proxy: it follows the provider that setup_tracing sets, if any


def setup_tracing(function: str, cfg: Settings) -> bool:
    """Export this process's spans if a collector is configured; whether it is. Once per process."""
    if not cfg.otel_exporter_otlp_endpoint or getattr(setup_tracing, "done", False):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_BSP_* and OTEL_RESOURCE_ATTRIBUTES tune the SDK as usual; shut down (flushed) at exit.
    provider = TracerProvider(resource=Resource.create({"service.name": function}))
    endpoint = cfg.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"  # the base URL, as the spec says
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()
    PsycopgInstrumentor().instrument(enable_commenter=False)
    setup_tracing.done = True
    return True


def instrument_app(app) -> None:
    """The API's request spans (FastAPI's instrumentation), when tracing is set up. Called in the
    lifespan, after the app's middleware stack was built: it is built again with the instrumentation."""
    if getattr(setup_tracing, "done", False):
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics",
                                           exclude_spans=["receive", "send"])  # one span per request
        app.middleware_stack = app.build_middleware_stack()


def extract(event) -> context.Context:
    """The trace context an event carries (none: a new trace begins)."""
    return W3C.extract({k: event.get(k) for k in FIELDS if event.get(k)})


def inject(event):
    """Put the current trace context on an event about to be emitted; the event, for chaining."""
    carrier: dict[str, str] = {}
    W3C.inject(carrier)
    for k in FIELDS:
        if k in carrier:
            event[k] = carrier[k]
    return event


@contextmanager
def stage_span(stage: str, event) -> Iterator[Span]:
    """The span of one stage handling one event, continuing the event's trace; current inside, so that
    the events emitted meanwhile carry it on."""
    attributes = {"mindspace.stage": stage, "cloudevents.event_type": event["type"],
                  "cloudevents.event_id": event["id"], "mindspace.file_id": event.get("subject") or ""}
    with tracer.start_as_current_span(stage, context=extract(event), kind=SpanKind.CONSUMER,
                                      attributes=attributes) as span:
        yield span
