"""cluster: a user's files grouped by meaning. A new file is first checked for near-duplicates
(duplicates.py): a copy joins its group and its root's cluster, and is left out of fitting, so twelve
copies of one note weigh as one. Otherwise it is placed into the existing clusters at once (HDBSCAN's
approximate_predict on the user's stored model); a full re-clustering runs when the user's files have
grown by RECLUSTER_GROWTH, on the nightly tick, and on request. Cluster ids survive a re-clustering
where most of their members stay together; noise stays unclustered."""
from __future__ import annotations

import pickle  # nosec B403  # only this stage's own fitted models are unpickled
import time

import numpy as np

from events.catalogue import Category, ClustersRefresh, FileClustered, ScheduledTask, TextEmbedded
from functions.cluster import clustering, duplicates
from shared.models import EMBED_DIM
from shared.stage import Context, Stage, serve

MODELS_KEPT = 64  # users whose fitted models a pod keeps unpickled
# A group of near-duplicates is fitted as its root alone.
FILE_VECTORS = """SELECT c.file_id, avg(c.embedding) AS v FROM chunks c JOIN files f ON f.id = c.file_id
                  WHERE c.user_id = %s AND f.duplicate_of IS NULL GROUP BY c.file_id"""


def file_vectors(conn, user_id: str) -> tuple[list, np.ndarray]:
    rows = conn.execute(FILE_VECTORS, (user_id,)).fetchall()
    # reshape keeps the width when there are no rows: a user with nothing embedded yet has no clusters
    vectors = np.array([r["v"] for r in rows], dtype=np.float32).reshape(len(rows), EMBED_DIM)
    return [r["file_id"] for r in rows], vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


class Cluster(Stage):
    name = "cluster"
    consumes = (TextEmbedded, ClustersRefresh, ScheduledTask)

    def start(self, cfg) -> None:
        self.min_size, self.growth = cfg.cluster_min_size, cfg.recluster_growth
        self.dims, self.reduce_above = cfg.cluster_dims, cfg.cluster_reduce_above
        self.models: dict[str, tuple] = {}  # user -> (fitted_at, Model): unpickled once per fit

    def handle(self, event, ctx: Context):
        if isinstance(event, ScheduledTask):  # fan out: one refresh per user, spread over pods
            users = ctx.db.execute("SELECT id AS user_id FROM users u WHERE EXISTS"
                                   " (SELECT 1 FROM chunks c WHERE c.user_id = u.id) ORDER BY id").fetchall()
            ctx.detail["users"] = len(users)
            return [ClustersRefresh(user_id=u["user_id"]) for u in users]
        conn = ctx.db
        # One clustering of a user's data at a time, whichever pod gets the event.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('cluster:' || %s))", (event.user_id,))
        if isinstance(event, ClustersRefresh):
            ctx.detail.update(self.recluster(conn, event.user_id))
            return None
        if root := self.duplicate(conn, event, ctx):
            cluster_id = conn.execute("UPDATE files SET cluster_id = (SELECT cluster_id FROM files WHERE id = %s)"
                                      " WHERE id = %s RETURNING cluster_id", (root, event.file_id)).fetchone()
            ctx.detail.update(method="duplicate", cluster_id=cluster_id["cluster_id"])
            return FileClustered(file_id=event.file_id, user_id=event.user_id, cluster_id=cluster_id["cluster_id"])
        fitted = conn.execute("SELECT files, fitted_at FROM cluster_models WHERE user_id = %s",
                              (event.user_id,)).fetchone()
        # Files with vectors, as the fit counted them: files still on their way would make every event of
        # a burst of uploads re-cluster in full.
        files = conn.execute("SELECT count(DISTINCT c.file_id) AS n FROM chunks c JOIN files f ON f.id = c.file_id"
                             " WHERE c.user_id = %s AND f.duplicate_of IS NULL", (event.user_id,)).fetchone()["n"]
        if fitted is None or files >= fitted["files"] * (1 + self.growth):
            ctx.detail.update(self.recluster(conn, event.user_id))
            cid = conn.execute("SELECT cluster_id FROM files WHERE id = %s", (event.file_id,)).fetchone()
            cluster_id = cid["cluster_id"]
        else:
            cluster_id = self.place(conn, event, fitted["fitted_at"])
            ctx.detail["method"] = "placed"
        ctx.detail["cluster_id"] = cluster_id
        # The root of a group whose copies arrived first: they follow it.
        conn.execute("UPDATE files SET cluster_id = %s WHERE duplicate_of = %s AND cluster_id IS DISTINCT FROM %s",
                     (cluster_id, event.file_id, cluster_id))
        return FileClustered(file_id=event.file_id, user_id=event.user_id, cluster_id=cluster_id)

    def duplicate(self, conn, event: TextEmbedded, ctx: Context):
        """The root of the file's near-duplicate group, if it joined one (its signatures recorded either way)."""
        began = time.perf_counter()
        text = conn.execute("SELECT string_agg(text, ' ' ORDER BY ord) AS t FROM chunks WHERE file_id = %s"
                            " AND user_id = %s", (event.file_id, event.user_id)).fetchone()["t"] or ""
        image = ctx.blobs.get(ctx.file["blob_uri"]) if ctx.file["category"] == Category.image else None
        found = duplicates.find(conn, ctx.file, text, image)
        ctx.detail["duplicates_ms"] = round((time.perf_counter() - began) * 1000, 1)  # its cost: make bench
        if found["similar"]:
            ctx.detail.update(duplicate_of=found["duplicate_of"] and str(found["duplicate_of"]),
                              similar=found["similar"][:10])
        return found["duplicate_of"]

    def place(self, conn, event: TextEmbedded, fitted_at) -> int | None:
        cached = self.models.get(event.user_id)
        if cached is None or cached[0] != fitted_at:
            blob = conn.execute("SELECT model FROM cluster_models WHERE user_id = %s", (event.user_id,)).fetchone()
            cached = self.models[event.user_id] = (fitted_at, pickle.loads(blob["model"]))  # nosec B301  # written by this stage, never by a user
            if len(self.models) > MODELS_KEPT:  # the least recently loaded user's model goes
                self.models.pop(next(iter(self.models)))
        row = conn.execute("SELECT avg(embedding) AS v FROM chunks WHERE file_id = %s AND user_id = %s",
                           (event.file_id, event.user_id)).fetchone()
        cluster_id = None if row["v"] is None else clustering.place(cached[1], np.asarray(row["v"], np.float32))
        conn.execute("UPDATE files SET cluster_id = %s WHERE id = %s", (cluster_id, event.file_id))
        if cluster_id is not None:
            conn.execute("UPDATE clusters SET size = (SELECT count(*) FROM files WHERE cluster_id = %(c)s),"
                         " updated_at = now() WHERE id = %(c)s", {"c": cluster_id})
        return cluster_id

    def recluster(self, conn, user_id: str) -> dict:
        ids, vectors = file_vectors(conn, user_id)
        if len(ids) < 2 * self.min_size:
            return {"method": "too few files to cluster", "files": len(ids)}
        model, labels = clustering.fit(vectors, self.min_size, self.dims, self.reduce_above)
        new = {int(c): {f for f, label in zip(ids, labels, strict=True) if label == c} for c in set(labels) - {-1}}
        old: dict[int, set] = {}
        for r in conn.execute("SELECT id, cluster_id FROM files WHERE user_id = %s AND cluster_id IS NOT NULL",
                              (user_id,)):
            old.setdefault(r["cluster_id"], set()).add(r["id"])
        model.ids = clustering.match(old, new)
        by_file = dict(zip(ids, labels, strict=True))
        # One text a file, its first passages: enough to name its cluster. Only the files fitted: another
        # file's chunks may have been committed since.
        texts: dict[int, list[str]] = {}
        for r in conn.execute("SELECT file_id, string_agg(text, ' ' ORDER BY ord) AS text FROM chunks"
                              " WHERE user_id = %s AND file_id = ANY(%s) AND ord < 3 GROUP BY file_id",
                              (user_id, ids)):
            texts.setdefault(int(by_file[r["file_id"]]), []).append(r["text"])
        names = clustering.label(texts)
        conn.execute("DELETE FROM clusters WHERE user_id = %s AND NOT (id = ANY(%s))",
                     (user_id, list(model.ids.values())))
        for label_, members in new.items():
            if label_ in model.ids:
                conn.execute("UPDATE clusters SET label = %s, size = %s, updated_at = now() WHERE id = %s",
                             (names[label_], len(members), model.ids[label_]))
            else:
                model.ids[label_] = conn.execute(
                    "INSERT INTO clusters (user_id, label, size) VALUES (%s, %s, %s) RETURNING id",
                    (user_id, names[label_], len(members))).fetchone()["id"]
        conn.execute(
            "UPDATE files f SET cluster_id = v.cid FROM unnest(%s::uuid[], %s::bigint[]) AS v(fid, cid)"
            " WHERE f.id = v.fid AND f.cluster_id IS DISTINCT FROM v.cid",
            (ids, [model.ids.get(int(label_)) for label_ in labels]))
        conn.execute("""UPDATE files d SET cluster_id = r.cluster_id FROM files r WHERE d.duplicate_of = r.id
                        AND d.user_id = %s AND d.cluster_id IS DISTINCT FROM r.cluster_id""",
                     (user_id,))  # copies stay with their root
        conn.execute(
            """INSERT INTO cluster_models (user_id, model, files) VALUES (%s, %s, %s)
               ON CONFLICT (user_id) DO UPDATE SET model = excluded.model, files = excluded.files,
                                                   fitted_at = now()""",
            (user_id, pickle.dumps(model), len(ids)))
        self.models.pop(user_id, None)
        return {"method": "full", "files": len(ids), "clusters": len(new), "noise": int((labels == -1).sum())}


handle = serve(Cluster())
