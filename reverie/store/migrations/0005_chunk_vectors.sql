-- 0005: a sentence embedding per chunk, for hybrid search (BM25 + embeddings, reverie.store.vectors).
-- The vector is float32, little-endian, unit norm; `model` names the embedder that made it, so a
-- vector of another embedder counts as missing. Chunks read before this migration have none: the
-- next `reverie read` (or search) embeds them, and `reverie read --reindex` embeds them all again.
CREATE TABLE chunk_vectors (
    chunk_id    INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
    model       TEXT NOT NULL,
    dim         INTEGER NOT NULL,
    vector      BLOB NOT NULL
);
CREATE INDEX chunk_vectors_model ON chunk_vectors(model);
