"""Organising memory through the real stages: spaCy tags, HDBSCAN clusters with stable ids, and
hybrid search (pgvector + PostgreSQL full text, fused by reciprocal rank) with filters."""
from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest
from notes import TOPICS
from sklearn.metrics import adjusted_rand_score

from shared.models import EMBED_DIM

from conftest import User

PEOPLE = "Anna Schmidt flew from Berlin to Lisbon to meet Siemens on Friday and paid $4,000 for the booth."
NOTE = "# Note 5\n\nCheck the **boiler pressure** every 5 days.\n\n- bleed the [radiators](https://example.com/r)\n"
RARE = "The warranty code for the dishwasher is QX7-4471, keep the receipt in the blue folder."
# Codes that look alike to an embedding model, and share no whole word with the one searched for.
DECOYS = ["The wifi password for the guest network is QX7-4417.",
          "Parcel tracking number QX1-4471 from the courier arrives Tuesday.",
          "Order reference QZ7-4471 for the printer ink cartridges."]


def wait_for_refit(user: User, sql, since) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        row = sql("SELECT fitted_at FROM cluster_models WHERE user_id = %s", user.name)
        if row and row[0]["fitted_at"] > since:
            return
        time.sleep(0.3)
    raise AssertionError("no re-clustering happened")


def refresh(user: User, sql) -> None:
    since = sql("SELECT now() AS t")[0]["t"]
    assert user.http.post("/v1/clusters/refresh").status_code == 202
    wait_for_refit(user, sql, since)


def clusters_of(sql, ids: dict[str, list[str]]) -> dict[str, list]:
    rows = {r["id"]: r["cluster_id"] for r in sql("SELECT id::text, cluster_id FROM files WHERE id::text = ANY(%s)",
                                                   [i for v in ids.values() for i in v])}
    return {topic: [rows[i] for i in v] for topic, v in ids.items()}


@pytest.fixture(scope="module")
def corpus(stack):
    user = User(stack, "organizer")
    ids = {topic: [user.upload(f"{topic}-{i}.txt", n.encode()).json()["id"] for i, n in enumerate(notes)]
           for topic, notes in TOPICS.items()}
    extra = {name: user.upload(f"{name}.txt", text.encode()).json()["id"]
             for name, text in (("people", PEOPLE), ("note", NOTE), ("rare", RARE),
                                *((f"decoy{i}", d) for i, d in enumerate(DECOYS)))}
    for file_id in [i for v in ids.values() for i in v] + list(extra.values()):
        assert user.wait(file_id)["status"] == "ready"
    return user, ids, extra


def test_entities_become_normalised_tags(corpus):
    user, _, extra = corpus
    f = user.file(extra["people"])
    tags = {(t["kind"], t["name"]) for t in f["tags"]}
    assert {("person", "anna schmidt"), ("place", "berlin"), ("place", "lisbon"),
            ("organization", "siemens")} <= tags, tags
    assert any(kind == "money" for kind, _ in tags) and any(kind == "phrase" for kind, _ in tags)
    listed = {(t["kind"], t["name"]): t for t in user.http.get("/v1/tags").json()}
    anna = listed["person", "anna schmidt"]
    assert anna["label"] == "Anna Schmidt" and anna["files"] == 1
    # Markdown's markup is no tag, and a date keeps its words (issue 18: "# note", and "day" shown as "0 days")
    note = {(t["kind"], t["name"]) for t in user.file(extra["note"])["tags"]}
    assert ("date", "every 5 days") in note and ("phrase", "radiator") in note, note
    assert not any(set("#*[]()\n") & set(name) or "http" in name for _, name in note), note
    assert listed["date", "every 5 days"]["label"] == "every 5 days"


def test_topics_end_in_their_own_clusters(corpus, sql):
    user, ids, _ = corpus
    refresh(user, sql)
    found = clusters_of(sql, ids)
    truth = [t for t, v in found.items() for _ in v]
    labels = [c if c is not None else -i for i, c in enumerate(c for v in found.values() for c in v)]
    assert adjusted_rand_score(truth, labels) > 0.8, found
    clusters = user.http.get("/v1/clusters").json()
    assert len(clusters) >= 3 and all(k["label"] and k["size"] >= 3 and k["files"] for k in clusters)
    assert len({k["label"] for k in clusters}) == len(clusters), clusters  # a label tells clusters apart
    garden = Counter(found["garden"]).most_common(1)[0][0]
    one = user.http.get(f"/v1/clusters/{garden}").json()
    members = {i for i, c in zip(ids["garden"], found["garden"], strict=True) if c == garden}
    assert {f["id"] for f in one["files"]} >= members


def test_a_new_note_joins_its_topics_cluster_without_a_full_reclustering(corpus, sql):
    user, ids, _ = corpus
    garden = Counter(clusters_of(sql, ids)["garden"]).most_common(1)[0][0]
    f = user.upload("more-garden.txt", b"Repot the tomato plants and water the herb garden beds.").json()
    done = user.wait(f["id"])
    assert done["stages"]["cluster"]["detail"]["method"] == "placed"
    assert done["cluster"] and done["cluster"]["id"] == garden


def test_cluster_ids_survive_a_reclustering_that_changes_little(corpus, sql):
    user, ids, _ = corpus
    before = {t: Counter(c).most_common(1)[0][0] for t, c in clusters_of(sql, ids).items()}
    refresh(user, sql)
    after = {t: Counter(c).most_common(1)[0][0] for t, c in clusters_of(sql, ids).items()}
    assert before == after


def test_hybrid_search_finds_a_rare_word_and_a_paraphrase(corpus):
    user, ids, extra = corpus
    rare = user.search("QX7-4471")
    assert rare[0]["file_id"] == extra["rare"] and "text" in rare[0]["matched_by"]
    vector_rank = [h["file_id"] for h in user.search("QX7-4471", mode="vector")]
    assert extra["rare"] not in vector_rank[:1], "the exact code should be what vectors alone blur"
    assert user.search("backyard horticulture", mode="text") == []  # no shared word: full text misses it
    assert user.search("backyard horticulture")[0]["file_id"] in ids["garden"]


def test_search_filters_and_pages(corpus):
    user, ids, extra = corpus
    hits = user.search("appointments and plans", cluster=user.file(ids["money"][0])["cluster"]["id"], limit=50)
    assert hits and {h["file_id"] for h in hits} <= set(ids["money"]) | set(extra.values())
    assert user.search("garden", kind="audio") == []
    assert user.search("garden", until="2000-01-01T00:00:00Z") == []
    page1, page2 = user.search("notes", limit=5), user.search("notes", limit=5, offset=5)
    assert len(page1) == len(page2) == 5 and not {h["file_id"] for h in page1} & {h["file_id"] for h in page2}


def test_a_tag_filter_still_returns_k_hits(stack, sql):
    """pgvector 0.6 filters after the HNSW scan: with few tagged files among many, the index alone
    returns too few rows, and the exact fallback must fill the page."""
    user = User(stack, "many-chunks")
    rng = np.random.default_rng(1)
    sql("INSERT INTO users (id) VALUES (%s) ON CONFLICT DO NOTHING", user.name)
    for i in range(600):
        fid = sql("""INSERT INTO files (id, user_id, filename, media_type, category, size, sha256, blob_uri, status)
                     VALUES (gen_random_uuid(), %s, %s, 'text/plain', 'text', 1, md5(%s), 'file:///x', 'ready')
                     RETURNING id""", user.name, f"n{i}.txt", f"{user.name}{i}")[0]["id"]
        v = rng.normal(size=EMBED_DIM)
        sql("INSERT INTO chunks (file_id, ord, user_id, text, embedding) VALUES (%s, 0, %s, %s, %s)",
            fid, user.name, f"synthetic note {i}", str((v / np.linalg.norm(v)).tolist()))
        if i % 40 == 0:
            sql("INSERT INTO tags VALUES (%s, %s, 'place', 'oslo', 'Oslo', 1)", fid, user.name)
    hits = user.search("anything at all", tag="Oslo", limit=10, mode="vector")
    assert len(hits) == 10 and all(h["filename"] in {f"n{i}.txt" for i in range(0, 600, 40)} for h in hits)
