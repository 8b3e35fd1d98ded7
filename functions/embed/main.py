"""embed: extracted text becomes chunks with all-MiniLM-L6-v2 embeddings in pgvector, each with its language
(py3langid, among the user's languages for Latin-script text) and so the stemmer full-text search uses."""
from __future__ import annotations

import json
from collections import Counter

import semchunk

from events.catalogue import TextEmbedded, TextExtracted
from shared import languages
from shared.models import embedder
from shared.stage import Context, Stage, serve
from shared.textdoc import passages


class Embed(Stage):
    name = "embed"
    consumes = (TextExtracted,)

    def start(self, cfg) -> None:
        self.model = embedder(cfg.embed_model, cfg.embed_device, cfg.embed_batch_size, cfg.model_idle_seconds,
                              cfg.embed_runtime, cfg.embed_onnx_path)
        # Concurrent events share one encode call; the transaction (ctx.db) opens only after it.
        self.model.batched(self.name, cfg.batch_max_items, cfg.batch_wait_ms)
        self.chunk_tokens, self.overlap = cfg.chunk_tokens, cfg.chunk_overlap
        self.default_languages = languages.from_tesseract(cfg.ocr_languages) or ["en"]
        self._chunker = None

    def stop(self) -> None:
        self.model.unload()

    def chunker(self):
        # Chunks are counted in the model's own tokens, so none is cut off at its 256-token window.
        if self._chunker is None:
            self._chunker = semchunk.chunkerify(self.model.tokenizer, self.chunk_tokens)
        return self._chunker

    def handle(self, event: TextExtracted, ctx: Context) -> TextEmbedded:
        chunks = []  # (text, locator): a chunk never spans two pages or two stretches of a recording
        for part, locator in passages(ctx.blobs, event.text_uri):
            chunks += [(c, locator) for c in self.chunker()(part, overlap=self.overlap) if c.strip()]
        vectors = self.model.run([c[0] for c in chunks]) if chunks else []
        # Replace, not append: a redelivered event leaves the same chunks behind.
        # The user names the file's partition (migration 0015), which PostgreSQL then reads alone.
        ctx.db.execute("DELETE FROM chunks WHERE file_id = %s AND user_id = %s", (event.file_id, event.user_id))
        found = self.chunk_languages(ctx, event.user_id, [c[0] for c in chunks])
        with ctx.db.cursor() as cur:
            cur.executemany(
                "INSERT INTO chunks (file_id, ord, user_id, text, locator, embedding, language, tsconfig)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(event.file_id, i, event.user_id, text, json.dumps(loc), vec, lang, languages.config(lang))
                 for i, ((text, loc), vec, lang) in enumerate(zip(chunks, vectors, found, strict=True))],
            )
        counts = Counter(lang for lang in found if lang)
        ctx.detail.update(chunks=len(chunks), model=self.model.path, languages=dict(counts.most_common()))
        return TextEmbedded(file_id=event.file_id, user_id=event.user_id, chunks=len(chunks),
                            model=self.model.path)


    def chunk_languages(self, ctx: Context, user: str, texts: list[str]) -> list[str | None]:
        """Each chunk's language: detected among the user's languages (the deployment's when they chose none)
        where its script is Latin, among all where not; a chunk too short to tell takes the language of the
        file's other chunks, else the user's first."""
        row = ctx.db.execute("SELECT languages FROM user_settings WHERE user_id = %s", (user,)).fetchone()
        among = (row and row["languages"]) or self.default_languages
        found = [languages.detect(text, among)[0] for text in texts]
        common = Counter(lang for lang in found if lang).most_common(1)
        fallback = common[0][0] if common else among[0]
        return [lang or fallback for lang in found]


handle = serve(Embed())
