"""Who should announce `file.ready`: the stage that completes the file (today: it posts its own outcome and
`file.ready` to K_SINK, in the transaction that records the file ready), or a small consumer of the
outcome events (each stage would answer with one reply, and that consumer would reply `file.ready`)?

Notes go one at a time through the local stack, each waited for until ready. From the records of every
file (file_stages, files) this prints what each file cost today and what the consumer would add:

- deliveries per file (broker to a function, one HTTP request each) and posts to K_SINK: the consumer
  takes every outcome event too (one delivery each) and spares the completing stage's two posts;
- upload to ready today, and the delay the consumer would add to it: one more delivery and a small
  transaction, measured as what notify (which does no more: a consumed-event check, a stage record, one
  query) takes from `file.ready` being produced to its own finish;
- one broker hop (an event produced to its consumer's start): cluster after embed, notify and backup
  after file.ready.

    .venv/bin/python bench/bench_ready.py [--notes 20]
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
from psycopg.rows import dict_row

from events import catalogue
from events.routes import sink_bound
from local.stack import Stack, free_port_block
from shared.config import Settings

import common
from common import emit, note

OUTCOME_STAGES = ("embed", "tag", "suggest", "cluster")


def ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {"median": round(statistics.median(ordered) * 1000, 1),
            "p90": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 1), "n": len(ordered)}


def one_at_a_time(stack: Stack, conn, n: int) -> list[str]:
    ids = []
    with httpx.Client(base_url=stack.api_url, timeout=60, headers={"Authorization": "Bearer dev:bench-ready"}) as http:
        for i in range(n):
            r = http.post("/v1/files", files={"file": (f"ready{i}.txt", f"{note(i)} ready-{time.time_ns()}".encode())})
            r.raise_for_status()
            ids.append(r.json()["id"])
            deadline = time.monotonic() + 120
            while conn.execute("SELECT status FROM files WHERE id = %s", ids[-1:]).fetchone()["status"] == "processing":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"file {ids[-1]} still processing after 120 s")
                time.sleep(0.02)
            deadline = time.monotonic() + 30  # file.ready's consumers, whose times are measured too
            while conn.execute("SELECT count(*) AS n FROM file_stages WHERE file_id = %s AND stage IN ('notify', "
                               "'backup') AND finished_at IS NOT NULL", (ids[-1],)).fetchone()["n"] < 2:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"file.ready of {ids[-1]} was not consumed in 30 s")
                time.sleep(0.02)
    return ids


def measure(conn, ids: list[str]) -> dict:
    files = {r["id"]: r for r in conn.execute("SELECT * FROM files WHERE id = ANY(%s::uuid[])", (ids,))}
    stages: dict = {}
    for r in conn.execute("SELECT * FROM file_stages WHERE file_id = ANY(%s::uuid[])", (ids,)):
        stages.setdefault(r["file_id"], {})[r["stage"]] = r
    ready, added, hops, deliveries, outcomes = [], [], [], [], []
    for file_id, f in files.items():
        s = stages[file_id]
        ready.append((f["ready_at"] - f["created_at"]).total_seconds())
        added.append((s["notify"]["finished_at"] - f["ready_at"]).total_seconds())
        hops += [(s["cluster"]["started_at"] - s["embed"]["finished_at"]).total_seconds()]
        hops += [(s[n]["started_at"] - f["ready_at"]).total_seconds() for n in ("notify", "backup")]
        deliveries.append(sum(r["attempts"] for r in s.values()))
        outcomes.append(sum(t in catalogue.outcomes() for r in s.values() for t in r["emitted"]))
    today, extra = statistics.median(deliveries), statistics.median(outcomes)
    posts_today = 1 + 2  # the upload's file.uploaded; the completing stage's outcome and file.ready
    return {
        "files": len(files), "statuses": sorted({f["status"] for f in files.values()}),
        "upload_to_ready_ms": ms(ready), "consumer_adds_ms": ms(added), "broker_hop_ms": ms(hops),
        "deliveries_per_file": {"today": today, "consumer": today + extra},
        "posts_to_k_sink_per_file": {"today": posts_today, "consumer": 1},
        "http_requests_per_file": {"today": today + posts_today, "consumer": today + extra + 1},
        "sink_bindings": len(sink_bound()),
    }


def main() -> None:
    p = common.options(__doc__)
    p.add_argument("--notes", type=int, default=20)
    args = p.parse_args()
    n = 5 if args.quick else args.notes
    data = Path(tempfile.mkdtemp(prefix="mindspace-bench-", dir="/tmp"))
    os.chmod(data, 0o755)  # pgserver's own user must reach its data folder
    # Clusters are left out (too few files for one, always): the pipeline's shape is measured, not HDBSCAN.
    stack = Stack(Settings(data_dir=data), port=free_port_block(), env={"LOG_LEVEL": "WARNING",
                                                                        "CLUSTER_MIN_SIZE": "1000"})
    stack.start()
    try:
        with psycopg.connect(stack.database_url, autocommit=True, row_factory=dict_row) as conn:
            one_at_a_time(stack, conn, 2)  # every model loaded, untimed
            results = measure(conn, one_at_a_time(stack, conn, n))
    finally:
        stack.stop()
    for key, value in results.items():
        print(f"{key:28} {value}")
    emit(args, results)


if __name__ == "__main__":
    main()
