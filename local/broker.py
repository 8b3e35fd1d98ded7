"""The local broker: a Knative Broker for one machine.

Its ingress takes CloudEvents over HTTP as a Knative Broker's does and queues one delivery per
matching Trigger (read from knative/base). Deliveries live in PostgreSQL, in procrastinate's job
queue, so stopping and restarting the stack loses no event. A delivery posts the event in binary
mode with `Prefer: reply`; a reply event is routed again; retryable failures (5xx, 404, 408, 409,
429, network errors) are retried with the Trigger's backoff; what still fails, and what a
subscriber refuses (other 4xx), goes to the dead-letter sink with Knative's error extensions.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import time
from pathlib import Path

import httpx
import procrastinate
import psycopg
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from psycopg.rows import dict_row
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as HttpRoute

from events import routes as routing
from events import wire
from shared import local_queue, problems
from shared.metrics import QueueLength, process_started

log = logging.getLogger("mindspace.broker")
RETRYABLE = {404, 408, 409, 429}


def problem(status: int, detail: str, headers: dict | None = None) -> Response:
    """An error answer as RFC 9457 problem details, as the API and the functions answer theirs."""
    return Response(problems.problem_json(status, detail), status_code=status, media_type=problems.MEDIA_TYPE,
                    headers=headers)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return problem(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}; POST CloudEvents to /",
                   exc.headers)


class Retry(Exception):
    pass


class DeliveryRetry(procrastinate.BaseRetryStrategy):
    """Backoff by the delivery spec of the job's route; the task itself decides when to give up."""

    def __init__(self, broker: Broker):
        self.broker = broker

    def get_retry_decision(self, *, exception, job):
        if isinstance(exception, (procrastinate.exceptions.JobAborted, asyncio.CancelledError)):
            return procrastinate.RetryDecision(retry_in={"seconds": 0})  # cut off by a shutdown
        route = self.broker.route(job.task_kwargs["route"])
        if not isinstance(exception, Retry):
            # Not the subscriber's answer but ours: routing its reply failed (PostgreSQL went away).
            # Delivering again is safe, since the subscriber replays the reply it gave, so retry as
            # for a 5xx, and give up only as the delivery spec says.
            log.warning("delivery of %s failed in the broker: %s", job.task_kwargs["event"].get("id"), exception)
            if job.attempts >= route.delivery.retry:
                return None
        delay = route.delivery.backoff(job.attempts)
        return procrastinate.RetryDecision(retry_at=procrastinate.utils.utcnow()
                                           + datetime.timedelta(seconds=delay))


class Broker:
    def __init__(self, database_url: str, services: dict[str, str], trigger_routes: list[routing.Route],
                 pings: list[routing.Ping] = (), max_event_bytes: int = 256 * 1024):
        self.services = services
        self.max_event_bytes = max_event_bytes
        self.triggers = trigger_routes
        self.routes = local_queue.delivery_routes(trigger_routes)  # and the routes to dead-letter sinks
        missing = {r.subscriber for r in self.routes.values()} - services.keys()
        if missing:
            raise ValueError(f"Triggers name services that are not running: {sorted(missing)}")
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=database_url))
        self.app.task(name=local_queue.TASK, pass_context=True, retry=DeliveryRetry(self))(self.deliver)
        for ping in pings:  # PingSources as procrastinate periodic tasks: at most once per tick, durable
            task = self.app.task(name=f"ping:{ping.name}", pass_context=True)(self.tick)
            self.app.periodic(cron=ping.schedule, periodic_id=ping.name, task_kwargs={"ping": ping.name})(task)
        self.pings = {p.name: p for p in pings}
        self.http = httpx.AsyncClient()

    def route(self, name: str) -> routing.Route:
        return self.routes[name]

    async def publish(self, event: wire.CloudEvent) -> list[str]:
        attrs = wire.as_dict(event)
        matched = [r.name for r in self.triggers if r.matches(attrs)]
        if matched:  # one INSERT for every Trigger it matches
            deliveries = ({"route": n, "event": attrs} for n in matched)
            await self.app.configure_task(local_queue.TASK).batch_defer_async(*deliveries)
        else:
            log.info("no Trigger matches %s %s; dropped, as a Knative Broker would", event["type"], event["id"])
        return matched

    async def deliver(self, context, route: str, event: dict) -> None:
        r = self.route(route)
        ce = wire.from_json(event)
        headers, body = wire.binary(ce)
        url = self.services[r.subscriber]
        try:
            resp = await self.http.post(url, headers={**headers, "Prefer": "reply"}, content=body,
                                        timeout=r.delivery.timeout)
            code, text = resp.status_code, resp.text
        except httpx.HTTPError as e:
            code, text = 0, f"{type(e).__name__}: {e}"
        if 200 <= code < 300:
            if code == 200 and resp.content or "ce-type" in resp.headers:
                reply = wire.decode(resp.headers, resp.content)
                await self.publish(reply)
            log.info("delivered %s %s to %s", ce["type"], ce["id"], r.subscriber)
            return
        attempt = context.job.attempts + 1
        if (code == 0 or code >= 500 or code in RETRYABLE) and context.job.attempts < r.delivery.retry:
            log.warning("delivery of %s to %s failed (%s), attempt %d of %d", ce["id"], r.subscriber,
                        code or text, attempt, r.delivery.retry + 1)
            raise Retry(f"{code}: {text[:200]}")
        if r.delivery.dead_letter:
            log.error("dead-lettering %s %s after %d attempt(s) at %s: %s %s", ce["type"], ce["id"],
                      attempt, r.subscriber, code, text[:200])
            dead = {**event, "knativeerrordest": url, "knativeerrorcode": str(code),
                    "knativeerrordata": text[:1024]}
            await self.app.configure_task(local_queue.TASK).defer_async(route=local_queue.to_sink(r.name), event=dead)
            return
        raise RuntimeError(f"gave up delivering {ce['id']} to {r.subscriber}: {code} {text[:200]}")

    async def tick(self, context, timestamp: int, ping: str) -> None:
        p = self.pings[ping]
        log.info("PingSource %s ticks (%s)", ping, p.schedule)
        await self.publish(wire.ping(ping, p.data, p.extensions))

    # --- ingress -----------------------------------------------------------------------------
    async def ingress(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"status": "ready"})
        too_large = problem(413, f"events are capped at {self.max_event_bytes} bytes (MAX_EVENT_BYTES): "
                                 "send a reference (a blob URI), not the bytes")
        if int(request.headers.get("content-length") or 0) > self.max_event_bytes:
            return too_large
        body = b""
        async for piece in request.stream():  # a chunked body is capped as it arrives, not after
            body += piece
            if len(body) > self.max_event_bytes:
                return too_large
        try:
            event = wire.decode(request.headers, body)
        except wire.MalformedEvent as e:
            return problem(400, str(e))
        await self.publish(event)
        return Response(status_code=202)

    async def ensure_schema(self) -> None:
        async with self.app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
            cur = await conn.execute(local_queue.HAS_QUEUE)
            exists = (await cur.fetchone())[0]
        if not exists:
            await self.app.schema_manager.apply_schema_async()
            log.info("created the broker's queue tables")
        # One local broker at a time: whatever a killed predecessor was delivering is stalled.
        stalled = await self.app.job_manager.get_stalled_jobs(seconds_since_heartbeat=0)
        for job in stalled:
            await self.app.job_manager.retry_job(job)
        if stalled:
            log.info("requeued %d deliveries cut off by the last shutdown", len(stalled))

    async def serve(self, host: str, port: int) -> None:
        web = Starlette(routes=[HttpRoute("/metrics", metrics, methods=["GET"]),
                                HttpRoute("/{path:path}", self.ingress, methods=["GET", "POST"])],
                        exception_handlers={HTTPException: _http_error})
        server = uvicorn.Server(uvicorn.Config(web, host=host, port=port, log_level="warning"))
        async with self.app.open_async():
            await self.ensure_schema()
            worker = asyncio.create_task(self.app.run_worker_async(
                concurrency=8, install_signal_handlers=False, fetch_job_polling_interval=0.5,
                shutdown_graceful_timeout=5,
                listen_notify=True))
            # A worker that dies (its database went away) takes the ingress down with it: the process
            # exits, and the stack's supervisor starts it again, as Knative would restart the pod.
            worker.add_done_callback(lambda _: setattr(server, "should_exit", True))
            log.info("broker ingress on http://%s:%d, %d routes", host, port, len(self.routes))
            try:
                await server.serve()
            finally:
                died = worker.done() and not worker.cancelled()
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
                await self.http.aclose()
        if died:
            raise SystemExit("the delivery worker stopped (is PostgreSQL reachable?); exiting to be restarted")


async def metrics(request: Request) -> Response:
    """The broker's metrics, `queue_length` read from its queue as Prometheus scrapes (off the event loop)."""
    return Response(await asyncio.to_thread(generate_latest), media_type=CONTENT_TYPE_LATEST)


def waiting(database_url: str, routes: dict[str, routing.Route]) -> dict[str, int]:
    with psycopg.connect(database_url, row_factory=dict_row, autocommit=True, connect_timeout=5) as conn:
        if not local_queue.has_queue(conn):
            return {}
        queue = local_queue.queue(conn, routes)
    return {stage: q["waiting"] for stage, q in queue.items()}


def main(argv: list[str] | None = None) -> None:
    began = time.perf_counter()
    from shared.config import settings
    from shared.observability import setup_logging

    p = argparse.ArgumentParser(description="Mindspace's local broker")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--service", action="append", default=[], metavar="NAME=URL",
                   help="where a Knative Service named by a Trigger listens")
    p.add_argument("--manifests", type=Path, default=routing.KNATIVE_BASE,
                   help="the kustomize folder whose Triggers and PingSources to route by")
    args = p.parse_args(argv)
    cfg = settings()
    setup_logging("broker", cfg.log_level, cfg.log_format, cfg.secrets)
    services = dict(s.split("=", 1) for s in args.service)
    broker = Broker(cfg.database_url, services, routing.load(args.manifests), routing.pings(args.manifests),
                    cfg.max_event_bytes)
    REGISTRY.register(QueueLength(lambda: waiting(cfg.database_url, broker.routes)))
    process_started("broker", began)
    asyncio.run(broker.serve(args.host, args.port))


if __name__ == "__main__":
    main()
