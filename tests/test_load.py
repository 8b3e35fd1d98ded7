"""A bounded load test on loopback: 500 note uploads from 16 concurrent clients, then, once every file is
ready, 2,000 searches from 8. It asserts no errors (a 429 is a deliberate answer: the client waits as
told and tries again) and every file ready; what it measured (throughput, latency percentiles) it
reports in the terminal summary, never asserts."""
from __future__ import annotations

import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

UPLOADS, UPLOADERS, SEARCHES, SEARCHERS, USERS = 500, 16, 2000, 8, 4
WORDS = ("garden harbour invoice lantern meeting orchard budget recipe bicycle meadow ledger violin "
         "glacier pantry workshop compass festival quarry ribbon tram canal sketch kettle ferry market "
         "telescope vineyard archive lecture pottery saddle beacon ceramic thunder willow granite blanket "
         "museum notebook parcel shelter timber chimney marble canyon orchestra ").split()
FILLER = "the a of to and in for with on at from by about after before under over".split()


def note(i: int) -> str:
    """≈80 words in sentences, distinct per i (a seeded draw, and the note's own number)."""
    rng = random.Random(i)
    sentences = []
    for _ in range(8):
        words = [rng.choice(WORDS if k % 2 == 0 else FILLER) for k in range(10)]
        sentences.append(" ".join(words).capitalize() + ".")
    return f"Load note {i}. " + " ".join(sentences)


def percentiles(samples: list[float], scale: float = 1000) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": cuts[49] * scale, "p95": cuts[94] * scale, "p99": cuts[98] * scale}


def run(api: str, clients: int, jobs: list[tuple], call) -> tuple[list[float], list[str], list]:
    """`clients` threads, each with its own httpx client, work through `jobs` ((user, *args)); returns every
    request's latency, a line per error, and each job's JSON answer. A 429 is waited out as its Retry-After
    says, as an app would, and is no error. One client per thread, busy all along: a keep-alive connection
    left idle as long as the server's keep-alive timeout may be closed just as a request goes out on it."""
    local, latencies, errors, opened, lock = threading.local(), [], [], [], threading.Lock()

    def work(job):
        user, *args = job
        if not hasattr(local, "http"):
            local.http = httpx.Client(base_url=api, timeout=120)
            with lock:
                opened.append(local.http)
        for _ in range(20):
            started = time.perf_counter()
            try:
                r = call(local.http, {"Authorization": f"Bearer dev:{user}"}, *args)
            except httpx.HTTPError as e:
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                return None
            with lock:
                latencies.append(time.perf_counter() - started)
            if r.status_code != 429:
                break
            time.sleep(float(r.headers.get("retry-after", 1)))
        if not r.is_success:
            with lock:
                errors.append(f"{r.status_code} {r.text[:200]}")
            return None
        return r.json()

    try:
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(work, jobs))
    finally:
        for http in opened:
            http.close()
    return latencies, errors, results


def test_500_uploads_then_2000_searches_without_errors(stack, sql, record_property):
    users = [f"load-{k}" for k in range(USERS)]
    started = time.monotonic()
    def upload(http, auth, i):
        return http.post("/v1/files", headers=auth, files={"file": (f"n{i}.txt", note(i).encode())})

    latencies, errors, files = run(stack.api_url, UPLOADERS, [(users[i % USERS], i) for i in range(UPLOADS)], upload)
    uploaded = time.monotonic() - started
    assert errors == [], errors[:10]
    ids = [f["id"] for f in files]
    assert len(set(ids)) == UPLOADS

    deadline = time.monotonic() + 300
    while (left := sql("SELECT count(*) AS n FROM files WHERE id = ANY(%s::uuid[]) AND status = 'processing'",
                       ids)[0]["n"]):
        assert time.monotonic() < deadline, f"{left} of {UPLOADS} files still processing"
        time.sleep(1)
    ready = time.monotonic() - started
    statuses = sql("SELECT status, status_reason, count(*) AS n FROM files WHERE id = ANY(%s::uuid[])"
                   " GROUP BY 1, 2", ids)
    assert [(s["status"], s["n"]) for s in statuses] == [("ready", UPLOADS)], statuses
    assert sql("SELECT count(*) AS n FROM dead_letters WHERE file_id = ANY(%s::uuid[])", ids)[0]["n"] == 0
    to_ready = [r["s"] for r in sql("SELECT extract(epoch FROM ready_at - created_at)::float AS s FROM files"
                                     " WHERE id = ANY(%s::uuid[])", ids)]

    rng = random.Random(0)
    queries = [(users[k % USERS], " ".join(rng.sample(WORDS, rng.choice((1, 2, 3))))) for k in range(SEARCHES)]
    started = time.monotonic()
    search_latencies, errors, results = run(stack.api_url, SEARCHERS, queries,
                                            lambda http, auth, q: http.get("/v1/search", headers=auth, params={"q": q}))
    searched = time.monotonic() - started
    assert errors == [], errors[:10]
    assert sum(bool(r["hits"]) for r in results) > SEARCHES * 0.9  # the words are in the notes

    record_property("load", {
        "uploads": UPLOADS, "uploaders": UPLOADERS, "uploads_per_s": UPLOADS / uploaded,
        "upload_ms": percentiles(latencies), "ready_per_min": UPLOADS / ready * 60,
        "all_ready_s": ready, "to_ready_s": percentiles(to_ready, scale=1),
        "searches": SEARCHES, "searchers": SEARCHERS, "searches_per_s": SEARCHES / searched,
        "search_ms": percentiles(search_latencies),
    })
