"""tag: named entities (people, organisations, places, dates, money …) and key phrases (TextRank on
spaCy's parse) become the file's tags, each with a kind and a score, normalised and merged."""
from __future__ import annotations

from collections import Counter, defaultdict

from events.catalogue import FileTagged, TextExtracted
from shared.models import SpacyPipeline
from shared.stage import Context, Stage, serve
from shared.textdoc import passages

KINDS = {"PERSON": "person", "ORG": "organization", "GPE": "place", "LOC": "place", "FAC": "place",
         "DATE": "date", "MONEY": "money", "EVENT": "event", "PRODUCT": "product", "WORK_OF_ART": "work",
         "NORP": "group"}
EDGE_POS = {"DET", "PRON", "PUNCT", "ADP", "CCONJ", "PART", "NUM", "SYM"}
PIECE, MAX_CHARS = 50_000, 1_000_000  # spaCy's memory grows with a doc; tags come from the first MB


def normalise(span) -> str:
    """`The new Marketing campaigns` -> `new marketing campaign`: lemmas, lower case, no edge words."""
    tokens = list(span)
    while tokens and (tokens[0].pos_ in EDGE_POS or tokens[0].is_stop):
        tokens.pop(0)
    while tokens and (tokens[-1].pos_ in EDGE_POS or tokens[-1].is_stop):
        tokens.pop()
    return " ".join(t.lemma_.lower() if t.pos_ != "PROPN" else t.text.lower() for t in tokens).strip()


def pieces(blobs, text_uri: str):
    budget = MAX_CHARS
    for part, _ in passages(blobs, text_uri):
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
        self.nlp = SpacyPipeline(cfg.spacy_model, cfg.model_idle_seconds).batched(
            self.name, cfg.batch_max_items, cfg.batch_wait_ms)
        self.max_phrases = cfg.tag_max_phrases

    def stop(self) -> None:
        self.nlp.unload()

    def handle(self, event: TextExtracted, ctx: Context) -> FileTagged:
        rows = self.tags(ctx.blobs, event.text_uri)
        ctx.db.execute("DELETE FROM tags WHERE file_id = %s", (event.file_id,))  # replace, not append
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
                if ent.label_ in KINDS and (name := normalise(ent) or ent.text.lower().strip()):
                    mentions[KINDS[ent.label_], name] += 1
                    labels[KINDS[ent.label_], name][ent.text.strip()] += 1
            for p in doc._.phrases:
                name = normalise(p.chunks[0])
                if len(name) > 2 and not name.isdigit():
                    phrases[name] = max(phrases.get(name, 0.0), p.rank)
                    labels["phrase", name][name] += 1
        entity_names = {name for _, name in mentions}
        top = sorted(((r, n) for n, r in phrases.items() if n not in entity_names), reverse=True)
        top = top[: self.max_phrases]
        most = max(mentions.values(), default=1)
        best = top[0][0] if top and top[0][0] > 0 else 1.0
        rows = [(kind, name, labels[kind, name].most_common(1)[0][0], n / most)
                for (kind, name), n in mentions.items()]
        return rows + [("phrase", name, name, rank / best) for rank, name in top]


handle = serve(Tag())
