"""The broker's deliveries and dead letters as an operator sees them, per stage (the subscriber a
delivery goes to): what waits, runs and retries, what was given up on, and replaying that once its
cause is fixed. The API's jobs view, the local broker's `queue_length` and `mindspace dead-letters`
read it. Deliveries are the local broker's procrastinate jobs; a Knative cluster has no such table."""
from __future__ import annotations

from events import routes, wire
from shared import lifecycle
from shared.metrics import stage_of

REPLAYED = "replayed"  # the CloudEvents extension a replayed event carries: when it was replayed
# The local broker's deliveries: procrastinate jobs of task `deliver`, named by their route in `args`.
_QUEUE = """
SELECT j.args->>'route' AS route,
       count(*) FILTER (WHERE j.status = 'todo') AS waiting,
       count(*) FILTER (WHERE j.status = 'doing') AS running,
       count(*) FILTER (WHERE j.status = 'todo' AND j.attempts > 0) AS retrying,
       extract(epoch FROM now() - min(e.at) FILTER (WHERE j.status = 'todo'))::float AS oldest
FROM procrastinate_jobs j
LEFT JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'deferred'
WHERE j.task_name = 'deliver' AND j.status IN ('todo', 'doing')
GROUP BY 1"""


def subscribers(trigger_routes: list[routes.Route] | None = None) -> dict[str, str]:
    """Each delivery route of the local broker and the Service it delivers to: a Trigger's name, and
    `<name>/dls` for what goes on to its dead-letter sink (as local/broker.py names them)."""
    names = {}
    for r in routes.load() if trigger_routes is None else trigger_routes:
        names[r.name] = r.subscriber
        if r.delivery.dead_letter:
            names[f"{r.name}/dls"] = r.delivery.dead_letter
    return names


def has_queue(conn) -> bool:
    return conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS q").fetchone()["q"]


def queue(conn, subscriber_of: dict[str, str]) -> dict[str, dict]:
    """Per stage: deliveries waiting (retries included), running, retrying, and the age in seconds of
    the oldest waiting one (since it was first queued)."""
    stages = {s: {"waiting": 0, "running": 0, "retrying": 0, "oldest_waiting_s": None}
              for s in subscriber_of.values()}
    for row in conn.execute(_QUEUE).fetchall():
        s = stages.setdefault(subscriber_of.get(row["route"], "other"),
                              {"waiting": 0, "running": 0, "retrying": 0, "oldest_waiting_s": None})
        for k in ("waiting", "running", "retrying"):
            s[k] += row[k]
        if row["oldest"] is not None:
            s["oldest_waiting_s"] = max(s["oldest_waiting_s"] or 0.0, row["oldest"])
    return stages


def dead_lettered(conn) -> dict[str, int]:
    """Dead letters not replayed yet, per stage that failed."""
    counts: dict[str, int] = {}
    for row in conn.execute("SELECT error_dest, count(*) AS n FROM dead_letters WHERE replayed_at IS NULL"
                            " GROUP BY 1").fetchall():
        stage = stage_of(row["error_dest"])
        counts[stage] = counts.get(stage, 0) + row["n"]
    return counts


def dead_letters(conn, *, ids: list[int] | None = None, stage: str | None = None,
                 replayed: bool = False) -> list[dict]:
    """Dead letters by id, or the ones not replayed yet (`replayed`: all), of one stage or every one."""
    where = "id = ANY(%(ids)s::bigint[])" if ids else "true" if replayed else "replayed_at IS NULL"
    rows = conn.execute(f"SELECT * FROM dead_letters WHERE {where} ORDER BY id",  # nosec B608  # fixed fragments
                        {"ids": ids}).fetchall()
    for r in rows:
        r["stage"] = stage_of(r["error_dest"])
    return [r for r in rows if stage in (None, r["stage"])]


def replay(conn, row: dict, sink: str) -> None:
    """Reopen the file and publish the event to the broker again, without the error extensions and
    marked with the replay's time (REPLAYED), so that failing again makes a dead letter again. Safe:
    subscribers that consumed it already skip it (by source and id) and replay their reply."""
    sent = conn.execute("SELECT clock_timestamp() AS t").fetchone()["t"]
    event = {k: v for k, v in row["event"].items() if not k.startswith("knativeerror")}
    event[REPLAYED] = sent.isoformat()
    if row["file_id"]:
        lifecycle.reopen(conn, row["file_id"])
    wire.send(sink, wire.from_json(event))
    # Replayed, unless it failed again meanwhile: the sink recorded that failure after `sent`.
    conn.execute("UPDATE dead_letters SET replayed_at = now() WHERE id = %s AND received_at < %s", (row["id"], sent))
