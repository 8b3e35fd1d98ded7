"""Dead letters as an operator sees them: what the broker gave up on, counted and listed per stage (the
Service that failed), and replayed once its cause is fixed. The API's operators' routes read it (and
`mindspace dead-letters` through them); the dead-letter sink (functions/deadletter) writes the rows."""
from __future__ import annotations

from events import wire
from shared import lifecycle
from shared.metrics import stage_of

REPLAYED = "replayed"  # the CloudEvents extension a replayed event carries: when it was replayed


def counts(conn) -> dict[str, int]:
    """Dead letters not replayed yet, per stage that failed."""
    per_stage: dict[str, int] = {}
    for row in conn.execute("SELECT error_dest, count(*) AS n FROM dead_letters WHERE replayed_at IS NULL"
                            " GROUP BY 1").fetchall():
        stage = stage_of(row["error_dest"])
        per_stage[stage] = per_stage.get(stage, 0) + row["n"]
    return per_stage


def listed(conn, *, ids: list[int] | None = None, stage: str | None = None, replayed: bool = False) -> list[dict]:
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
