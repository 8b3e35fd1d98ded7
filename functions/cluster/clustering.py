"""Clustering a user's files, as BERTopic does it: reduce the embeddings, cluster with HDBSCAN, label
each cluster by class-based TF-IDF. Pure functions over arrays; the cluster stage does the storing.

A file's vector is the mean of its chunks' embeddings. What all of a user's files share (a note
template's heading, a date line, a signature) sits in every one of those means and pulls them
together: 12 short notes in three topics under "# Cycling note 2" headings merged two topics
(adjusted Rand 0.52). So the user's mean file vector is subtracted before clustering (and kept in the
Model, so that placing a new file sees the same space), which keeps what tells files apart; removing
the top principal components as well cost topics on small collections (see README, "Clustering").

min_samples grows with the collection (about sqrt(n)/5, from 1 up to min_size): with 1, a big topic
falls apart into many small clusters of near-identical notes (300 files on 10 topics: 38 clusters,
adjusted Rand 0.39; with sqrt(n)/5 = 3: 11 clusters, 1.0); with 3 on ten files, small topics become noise.

HDBSCAN on all 384 dimensions is exact but slow (5k files: 36 s here), so large corpora are reduced
to CLUSTER_DIMS by PCA first (100k files: ~10 s). Small ones are not: a PCA fitted on a few dozen
points keeps mostly noise (24 notes on 3 topics: adjusted Rand 1.0 unreduced, 0.7 at 10 dimensions).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported where used: hdbscan and scikit-learn took the stage's start from 0.5 to 1.4 s
    import hdbscan
    from sklearn.decomposition import PCA

NOISE = -1
COMMON = 0.5  # a word in more than this share of files names no cluster ("note", a signature): see label()


@dataclass
class Model:
    """What a full clustering leaves behind to place new files: the user's mean file vector, the
    reduction and HDBSCAN's prediction data, with each HDBSCAN label's stable cluster id."""

    reducer: PCA | None
    clusterer: hdbscan.HDBSCAN
    ids: dict[int, int] = field(default_factory=dict)
    mean: np.ndarray | None = None  # None in models fitted before it was kept: they place uncentred

    def space(self, vectors: np.ndarray) -> np.ndarray:
        """File vectors (means of chunk embeddings, any length) as HDBSCAN sees them."""
        x = unit(vectors)
        if self.mean is not None:
            x = unit(x - self.mean)
        return x if self.reducer is None else self.reducer.transform(x)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)).astype(np.float32)


def min_samples(n: int, min_size: int) -> int:
    return int(np.clip(round(np.sqrt(n) / 5), 1, min_size))


def fit(vectors: np.ndarray, min_size: int, dims: int, reduce_above: int) -> tuple[Model, np.ndarray]:
    import hdbscan
    from sklearn.decomposition import PCA

    vectors = unit(vectors)
    mean = vectors.mean(axis=0)
    centred = unit(vectors - mean)
    reducer = PCA(n_components=dims, random_state=0).fit(centred) if len(vectors) > reduce_above else None
    clusterer = hdbscan.HDBSCAN(min_cluster_size=min_size, min_samples=min_samples(len(vectors), min_size),
                                prediction_data=True)
    clusterer.fit(reducer.transform(centred) if reducer else centred)
    agree_on_selection(clusterer)
    return Model(reducer, clusterer, mean=mean), clusterer.labels_


def agree_on_selection(clusterer: hdbscan.HDBSCAN) -> None:
    """Make approximate_predict use the clusters that labels_ has. hdbscan's prediction data guesses
    each selected cluster as the lowest condensed-tree segment its points fell out of; where all of a
    cluster's points sit in sub-segments (it happens at small n), that is a sub-segment, and a file was
    placed in another cluster than the full clustering gave it, or in none (33 documents: 16 of 33).
    The selected cluster is the lowest common ancestor of its points' segments."""
    from hdbscan.prediction import PredictionData

    tree = clusterer.condensed_tree_
    raw = tree.to_numpy()
    up = {int(c): int(p) for p, c, size in zip(raw["parent"], raw["child"], raw["child_size"], strict=True)
          if size > 1}
    segment = {int(c): int(p) for p, c, size in zip(raw["parent"], raw["child"], raw["child_size"], strict=True)
               if size == 1}

    def chain(node: int) -> list[int]:  # the node and its ancestors, lowest first
        out = [node]
        while out[-1] in up:
            out.append(up[out[-1]])
        return out

    selected = []
    for c in range(clusterer.labels_.max() + 1):
        chains = [chain(s) for s in {segment[i] for i in np.flatnonzero(clusterer.labels_ == c)}]
        common = set.intersection(*map(set, chains))
        selected.append(next(node for node in chains[0] if node in common))
    if sorted(selected) != sorted(tree._select_clusters()):
        tree._select_clusters = lambda: selected
        clusterer._prediction_data = PredictionData(clusterer._raw_data, tree, clusterer.min_samples,
                                                    tree_type="kdtree", metric=clusterer.metric)


def place(model: Model, vector: np.ndarray) -> int | None:
    """The stable id of the cluster a new file falls into, or None for noise (approximate_predict)."""
    import hdbscan

    labels, _ = hdbscan.approximate_predict(model.clusterer, model.space(vector[None, :]))
    return model.ids.get(int(labels[0]))


def match(old: dict[int, set], new: dict[int, set]) -> dict[int, int]:
    """New label -> old cluster id, where most of the old cluster's members stayed together.
    Greedy by overlap; each old id goes to one new cluster at most."""
    pairs = sorted(((len(o & n), oid, label) for oid, o in old.items() for label, n in new.items() if o & n),
                   reverse=True)
    out: dict[int, int] = {}
    for overlap, oid, label in pairs:
        if label not in out and oid not in out.values() and overlap > len(old[oid]) / 2:
            out[label] = oid
    return out


def label(texts: dict[int, list[str]], top: int = 3) -> dict[int, str]:
    """A readable label per cluster from its files' texts (one string a file): its most distinctive
    words by class-based TF-IDF, where every cluster (noise included, so that common words lose
    weight) is one document. A word in most of the user's files (a template's "note", a signature's
    name) carries no weight: it names what the files share, not a topic. No two clusters share a label:
    see distinct()."""
    from sklearn.feature_extraction.text import CountVectorizer

    classes = sorted(texts)
    docs = [t for c in classes for t in texts[c]]
    counts = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_]{3,}\b")  # nosec B106  # a regex, not a password
    per_file = counts.fit_transform(docs)
    sizes = np.array([len(texts[c]) for c in classes])
    spans = [(end - size, end) for size, end in zip(sizes, np.cumsum(sizes), strict=True)]  # docs go class by class
    x = np.asarray(np.vstack([per_file[a:b].sum(axis=0) for a, b in spans]), dtype=float)
    share = np.asarray(np.vstack([(per_file[a:b] > 0).sum(axis=0) for a, b in spans]), dtype=float) / sizes[:, None]
    # Template words: in most of the user's files, or in most files of more than one cluster.
    common = ((share * sizes[:, None]).sum(axis=0) > COMMON * len(docs)) | (
        (share[np.array(classes) != NOISE] > COMMON).sum(axis=0) > 1)
    tf = x / np.maximum(x.sum(axis=1, keepdims=True), 1)
    idf = np.log(1 + x.sum() / len(classes) / np.maximum(x.sum(axis=0), 1))
    score = tf * idf * ~common
    score = np.where(score.max(axis=1, keepdims=True) > 0, score, tf * idf)  # only common words: keep them
    words = counts.get_feature_names_out()
    rows = {c: k for k, c in enumerate(classes) if c != NOISE}
    if not rows:  # noise alone: no cluster to name
        return {}
    chosen = {c: [i for i in np.argsort(-score[k])[:top] if x[k, i] > 0] for c, k in rows.items()}
    return distinct(chosen, score[list(rows.values())].reshape(len(rows), -1), list(rows), words)


def distinct(chosen: dict[int, list[int]], score: np.ndarray, order: list[int], words) -> dict[int, str]:
    """Labels that tell clusters apart. Clusters with the same words (near-identical notes that HDBSCAN
    split: "buy · compost · days" three times) each get one more word, the one they weigh most above
    the others (score rows in `order`); clusters no word tells apart are numbered: "… (2)"."""
    groups: dict[frozenset, list[int]] = {}
    for c in order:
        groups.setdefault(frozenset(chosen[c]), []).append(c)
    for group in (g for g in groups.values() if len(g) > 1):
        for c in group:
            own = score[order.index(c)]
            gain = own - score[[order.index(o) for o in group if o != c]].max(axis=0)
            gain[chosen[c]] = 0
            if gain.max() > 0:
                chosen[c] = chosen[c] + [int(np.argmax(gain))]
    names: dict[int, str] = {}
    for c in order:
        name = " · ".join(words[i] for i in chosen[c])
        n = sum(1 for other in names.values() if other == name or other.startswith(name + " ("))
        names[c] = f"{name} ({n + 1})" if n else name
    return names
