"""Clusters against known topics (issue 14), without the stack: the labelled corpora of corpora.py,
embedded with the real all-MiniLM-L6-v2 and chunked as the embed stage does, clustered by the cluster
stage's own functions. The adjusted Rand index per corpus is printed at the end of the run."""
from __future__ import annotations

import re

import hdbscan
import numpy as np
import pytest
from corpora import CORPORA, SENTENCES, Corpus, embed
from sklearn.metrics import adjusted_rand_score

from functions.cluster import clustering

MIN_SIZE, DIMS, REDUCE_ABOVE = 3, 10, 1000  # shared/config.py's defaults
BOILERPLATE = {"note", "date", "alex", "example", "sent", "phone"}
# Issue 18: twelve notes that differ in their numbers alone fell into clusters that all had one label.
TWELVE = Corpus("twelve-notes", [(f"# Note {i}\n\nBuy compost for the garden every {i} days.", "garden")
                                 for i in range(1, 13)])


def ari(corpus: Corpus, labels) -> float:
    """Over the files that have a topic; a file left unclustered counts as a cluster of its own."""
    keep = [i for i, t in enumerate(corpus.topics) if t is not None]
    return adjusted_rand_score([corpus.topics[i] for i in keep],
                               [labels[i] if labels[i] != clustering.NOISE else -1 - i for i in keep])


@pytest.fixture(scope="module")
def vectors() -> dict[str, np.ndarray]:
    """Each file's vector as the stage reads it: avg(embedding) of its chunks, not yet normalised."""
    return {c.name: np.array([chunks.mean(axis=0) for chunks in embed(c)]) for c in [*CORPORA, TWELVE]}


def fitted(v: np.ndarray):
    model, labels = clustering.fit(clustering.unit(v), MIN_SIZE, DIMS, REDUCE_ABOVE)
    model.ids = {int(c): 100 + int(c) for c in set(labels) - {clustering.NOISE}}
    return model, labels


@pytest.mark.parametrize("corpus", CORPORA, ids=lambda c: c.name)
def test_files_are_grouped_by_their_topics(corpus, vectors, record_property):
    _, labels = fitted(vectors[corpus.name])
    # What the stage did before issue 14: the plain mean vector, HDBSCAN with min_samples=1.
    before = hdbscan.HDBSCAN(min_cluster_size=MIN_SIZE, min_samples=1).fit(clustering.unit(vectors[corpus.name]))
    score = ari(corpus, labels)
    record_property("cluster_ari", (corpus.name, len(corpus.files), ari(corpus, before.labels_), score,
                                    int(labels.max() + 1), int((labels == clustering.NOISE).sum())))
    assert score >= 0.8, f"{corpus.name}: adjusted Rand {score:.2f}"


@pytest.mark.parametrize("corpus", CORPORA, ids=lambda c: c.name)
def test_placing_a_file_gives_what_the_full_clustering_gave(corpus, vectors):
    model, labels = fitted(vectors[corpus.name])
    placed = [clustering.place(model, v) for v in vectors[corpus.name]]  # the raw avg, as the stage reads it
    assert placed == [model.ids.get(int(label)) for label in labels]


def test_a_model_stored_before_the_mean_was_kept_still_places(vectors):
    v = vectors["three-topics"]
    model, _ = fitted(v)
    del model.mean  # an older pickle has no such attribute: the class default (None) applies
    assert clustering.place(model, v[0]) in {*model.ids.values(), None}


def test_cluster_ids_survive_a_reclustering_with_a_few_more_files(vectors):
    corpus = next(c for c in CORPORA if c.name == "mixed-300")
    v = vectors[corpus.name]
    _, before = fitted(v[:-10])
    _, after = fitted(v)
    old = {100 + int(c): set(np.flatnonzero(before == c)) for c in set(before) - {clustering.NOISE}}
    new = {int(c): set(np.flatnonzero(after == c)) for c in set(after) - {clustering.NOISE}}
    kept = clustering.match(old, new)
    assert len(kept) >= 0.8 * len(old), (len(kept), len(old))


def topic_words(topic: str) -> set[str]:
    return {w.lower() for s in SENTENCES[topic] for w in re.findall(r"[^\W\d_]{3,}", s)} | {topic}


@pytest.mark.parametrize("name", ["issue-14", "template-unequal", "mixed-300"])
def test_labels_name_the_topic_not_the_boilerplate(name, vectors):
    corpus = next(c for c in CORPORA if c.name == name)
    _, labels = fitted(vectors[name])
    texts: dict[int, list[str]] = {}
    for (text, _), label in zip(corpus.files, labels, strict=True):
        texts.setdefault(int(label), []).append(text)
    names = clustering.label(texts)
    for c, label in names.items():
        words = label.split(" · ")
        topics = [t for t, lab in zip(corpus.topics, labels, strict=True) if lab == c]
        topic = max(set(topics), key=topics.count)
        assert len(words) == 3 and not BOILERPLATE & set(words), (topic, label)
        if topic is not None:
            assert set(words) <= topic_words(topic), (topic, label)
    if name == "issue-14":  # the heading names the topic: "# Cycling note 2"
        assert {n.split(" · ")[0] for n in names.values()} >= {"cycling", "finance", "cooking"}, names


def test_a_word_in_most_files_names_no_cluster():
    texts = {0: ["note: chain and bike", "note: bike tyres", "note: chain lube"],
             1: ["note: tax return", "note: tax receipts", "note: savings"], -1: ["note: wifi password"]}
    names = clustering.label(texts)
    assert "note" not in names[0] and "note" not in names[1], names
    assert names[0].split(" · ")[:2] == ["bike", "chain"] and names[1].startswith("tax"), names


@pytest.mark.parametrize("corpus", [*CORPORA, TWELVE], ids=lambda c: c.name)
def test_no_two_clusters_share_a_label(corpus, vectors, capsys):
    _, labels = fitted(vectors[corpus.name])
    texts: dict[int, list[str]] = {}
    for (text, _), label in zip(corpus.files, labels, strict=True):
        texts.setdefault(int(label), []).append(text)
    names = clustering.label(texts)
    if corpus is TWELVE:
        with capsys.disabled():
            print(f"\n{corpus.name}: {len(names)} clusters labelled {sorted(names.values())}")
    assert len(set(names.values())) == len(names), names


def test_clusters_with_the_same_words_each_get_one_of_their_own():
    often = "tomato seedlings greenhouse " * 4
    texts = {0: [often, often, "basil", "water"], 1: [often, often, "chilli", "water"], -1: ["wifi password"]}
    assert clustering.label(texts) == {0: "greenhouse · seedlings · tomato · basil",
                                       1: "greenhouse · seedlings · tomato · chilli"}


def test_clusters_no_word_tells_apart_are_numbered():
    note = "Buy compost for the garden every few days."
    assert clustering.label({0: [note] * 3, 1: [note] * 3, 2: [note] * 4}) == {
        0: "buy · compost · days", 1: "buy · compost · days (2)", 2: "buy · compost · days (3)"}
