"""tag: named entities (people, organisations, places, dates, money …) and key phrases (TextRank on
spaCy's parse) become the file's tags, each with a kind and a score, normalised and merged. How a text is
read so that they are what a person would write (markup read away, lines as items, dates in words):
functions/tag/reading.py."""
from __future__ import annotations

from collections import Counter, defaultdict

from events.catalogue import FileTagged, TextExtracted
from functions.tag.reading import KINDS, Pipeline, normalise, phrase, plain, readable
from shared.stage import Context, Stage, serve
from shared.textdoc import passages

PIECE, MAX_CHARS = 50_000, 1_000_000  # spaCy's memory grows with a doc; tags come from the first MB


def pieces(blobs, text_uri: str):
    budget = MAX_CHARS
    for part, _ in passages(blobs, text_uri):
        part = plain(part[:budget])
        for i in range(0, min(len(part), budget), PIECE):
            yield part[i:i + PIECE]
        budget -= len(part)
        if budget <= 0:
            return


class Tag(Stage):
    name = "tag"
    consumes = (TextExtracted,)

    def start(self, cfg) -> None:
        # Concurrent events share one nlp.pipe call; the transaction (ctx.db) opens only after it.
        self.nlp = Pipeline(cfg.spacy_model, cfg.model_idle_seconds).batched(
            self.name, cfg.batch_max_items, cfg.batch_wait_ms)
        self.max_phrases = cfg.tag_max_phrases

    def stop(self) -> None:
        self.nlp.unload()

    def handle(self, event: TextExtracted, ctx: Context) -> FileTagged:
        rows = self.tags(ctx.blobs, event.text_uri)
        # Replace, not append; an imported note's labels (kind `label`) are the person's, not ours to redo.
        ctx.db.execute("DELETE FROM tags WHERE file_id = %s AND kind <> 'label'", (event.file_id,))
        with ctx.db.cursor() as cur:
            cur.executemany(
                "INSERT INTO tags (file_id, user_id, kind, name, label, score) VALUES (%s, %s, %s, %s, %s, %s)",
                [(event.file_id, event.user_id, *row) for row in rows])
        phrases = sum(kind == "phrase" for kind, *_ in rows)
        ctx.detail.update(entities=len(rows) - phrases, phrases=phrases)
        return FileTagged(file_id=event.file_id, user_id=event.user_id, tags=len(rows))

    def tags(self, blobs, text_uri: str) -> list[tuple[str, str, str, float]]:
        """(kind, name, label, score) of every tag of a stored text."""
        mentions: Counter = Counter()
        labels: dict[tuple, Counter] = defaultdict(Counter)
        phrases: dict[str, float] = {}
        for doc in self.nlp.run(pieces(blobs, text_uri)):
            for ent in doc.ents:
                if (kind := KINDS.get(ent.label_)) and readable(kind, (n := normalise(ent, kind))[0]):
                    mentions[kind, n[0]] += 1
                    labels[kind, n[0]][n[1]] += 1
            for p in doc._.phrases:
                if name := phrase(p):
                    phrases[name] = max(phrases.get(name, 0.0), p.rank)
        entity_names = {name for _, name in mentions}
        top = sorted(((r, n) for n, r in phrases.items() if n not in entity_names), reverse=True)
        top = top[: self.max_phrases]
        most = max(mentions.values(), default=1)
        best = top[0][0] if top and top[0][0] > 0 else 1.0
        rows = [(kind, name, labels[kind, name].most_common(1)[0][0], n / most)
                for (kind, name), n in mentions.items()]
        return rows + [("phrase", name, name, rank / best) for rank, name in top]


handle = serve(Tag())
