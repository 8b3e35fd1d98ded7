"""embed: extracted text becomes chunks with all-MiniLM-L6-v2 embeddings in pgvector."""
from __future__ import annotations

import json

import semchunk

from events.catalogue import TextEmbedded, TextExtracted
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
        ctx.db.execute("DELETE FROM chunks WHERE file_id = %s", (event.file_id,))
        with ctx.db.cursor() as cur:
            cur.executemany(
                "INSERT INTO chunks (file_id, ord, user_id, text, locator, embedding)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                [(event.file_id, i, event.user_id, text, json.dumps(loc), vec)
                 for i, ((text, loc), vec) in enumerate(zip(chunks, vectors, strict=True))],
            )
        ctx.detail.update(chunks=len(chunks), model=self.model.path)
        return TextEmbedded(file_id=event.file_id, user_id=event.user_id, chunks=len(chunks),
                            model=self.model.path)


handle = serve(Embed())
