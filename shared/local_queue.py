"""LOCAL-ONLY: the local broker's delivery queue, the one place that knows its routes and tables.

The local broker (local/broker.py) queues one delivery per matching Trigger as a procrastinate job of task
`deliver`, named by its route: the Trigger's name, or `<name>/dls` for what goes on to the Trigger's
dead-letter sink. The broker builds its routes here, and the API's jobs view reads the same tables when it
runs beside the local broker; since api/ may import only shared/ and events/, the knowledge lives on this
floor, once. A Knative broker keeps no such tables: on a cluster `has_queue` is false and nothing else
here is read."""
from __future__ import annotations

from events import routes

TASK = "deliver"  # the procrastinate task of every delivery
_TO_SINK = "/dls"  # a route's suffix for the deliveries to its Trigger's dead-letter sink
HAS_QUEUE = "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS q"
# Per route: deliveries waiting (retries included), running, retrying, and the age of the oldest waiting one.
_QUEUE = """
SELECT j.args->>'route' AS route,
       count(*) FILTER (WHERE j.status = 'todo') AS waiting,
       count(*) FILTER (WHERE j.status = 'doing') AS running,
       count(*) FILTER (WHERE j.status = 'todo' AND j.attempts > 0) AS retrying,
       extract(epoch FROM now() - min(e.at) FILTER (WHERE j.status = 'todo'))::float AS oldest
FROM procrastinate_jobs j
LEFT JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'deferred'
WHERE j.task_name = %s AND j.status IN ('todo', 'doing')
GROUP BY 1"""


def delivery_routes(triggers: list[routes.Route]) -> dict[str, routes.Route]:
    """Every route a delivery can take, by name: each Trigger's own, and for one with a dead-letter sink
    the route to that sink. Dead letters are deliveries too, with the Trigger's retries and no sink behind."""
    named = {}
    for r in triggers:
        named[r.name] = r
        if r.delivery.dead_letter:
            named[to_sink(r.name)] = routes.Route(
                name=to_sink(r.name), subscriber=r.delivery.dead_letter,
                delivery=routes.Delivery(retry=r.delivery.retry, backoff_delay=r.delivery.backoff_delay))
    return named


def to_sink(route: str) -> str:
    return route + _TO_SINK


def has_queue(conn) -> bool:
    """Whether the local broker's tables are there (a connection with dict rows, as every pool's)."""
    return conn.execute(HAS_QUEUE).fetchone()["q"]


def queue(conn, by_name: dict[str, routes.Route]) -> dict[str, dict]:
    """Per stage (the subscriber of `by_name`'s routes): deliveries waiting (retries included), running,
    retrying, and the age in seconds of the oldest waiting one (since it was first queued)."""
    idle = {"waiting": 0, "running": 0, "retrying": 0, "oldest_waiting_s": None}
    stages = {r.subscriber: dict(idle) for r in by_name.values()}
    for row in conn.execute(_QUEUE, (TASK,)).fetchall():
        route = by_name.get(row["route"])
        s = stages.setdefault(route.subscriber if route else "other", dict(idle))
        for k in ("waiting", "running", "retrying"):
            s[k] += row[k]
        if row["oldest"] is not None:
            s["oldest_waiting_s"] = max(s["oldest_waiting_s"] or 0.0, row["oldest"])
    return stages
