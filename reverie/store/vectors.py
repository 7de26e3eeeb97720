"""Chunk embeddings kept as float32 blobs, and the exact nearest-neighbour scan over them.

    store.put_vectors("all-MiniLM-L6-v2", [(chunk_id, vector), ...])
    store.unembedded_chunks("all-MiniLM-L6-v2")        # rows (id, text) still without one
    store.nearest("all-MiniLM-L6-v2", query_vector, 50, user_id=None)   # [(chunk_id, cosine)]

The store never computes an embedding (that is the wake stage's, reverie.wake.lookup); it keeps
them and scans them. Why a numpy scan and not sqlite-vec: at 100,000 chunks of 384 dimensions the
scan (one matrix-vector product over vectors held in memory) measures a few milliseconds on the
2-core CPU (bench/search_speed.py, BENCHMARKS.md), far below the 100 ms a search may take, and it
adds no dependency. The vectors are loaded once per connection and reloaded when the store
changed (another connection's commit, or more vectors or chunks than when they were loaded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reverie.store.users import visible_document


@dataclass
class _Loaded:
    key: tuple
    chunk_ids: np.ndarray  # int64 [n]
    document_ids: np.ndarray  # int64 [n]
    matrix: np.ndarray  # float32 [n, d]


def to_blob(vector) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


class VectorsMixin:
    _vectors: dict[str, _Loaded] | None = None

    def unembedded_chunks(self, model: str, limit: int | None = None):
        """Chunks without a vector from `model` (rows id, text), oldest first."""
        sql = ("SELECT c.id, c.text FROM chunks c WHERE NOT EXISTS "
               "(SELECT 1 FROM chunk_vectors v WHERE v.chunk_id = c.id AND v.model = ?) ORDER BY c.id")
        args: tuple = (model,)
        if limit is not None:
            sql += " LIMIT ?"
            args += (limit,)
        return self.conn.execute(sql, args).fetchall()

    def count_unembedded(self, model: str) -> int:
        return self.conn.execute(
            "SELECT count(*) FROM chunks c WHERE NOT EXISTS "
            "(SELECT 1 FROM chunk_vectors v WHERE v.chunk_id = c.id AND v.model = ?)", (model,)).fetchone()[0]

    def put_vectors(self, model: str, rows) -> int:
        """Keep (chunk_id, vector) pairs from `model`, replacing any earlier vector of those chunks.
        A chunk deleted meanwhile (its document re-read) is skipped."""
        rows = [(int(cid), model, len(v), to_blob(v)) for cid, v in rows]
        with self.transaction():
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR REPLACE INTO chunk_vectors(chunk_id, model, dim, vector) "
                "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM chunks WHERE id = ?)",
                [(*r, r[0]) for r in rows])
            return self.conn.total_changes - before

    def drop_vectors(self, model: str | None = None) -> int:
        """Forget the vectors of `model` (None: every model); `reverie read --reindex` embeds again."""
        with self.transaction():
            if model is None:
                return self.conn.execute("DELETE FROM chunk_vectors").rowcount
            return self.conn.execute("DELETE FROM chunk_vectors WHERE model = ?", (model,)).rowcount

    def count_vectors(self, model: str) -> int:
        return self.conn.execute("SELECT count(*) FROM chunk_vectors WHERE model = ?", (model,)).fetchone()[0]

    def _vector_key(self, model: str) -> tuple:
        """Changes whenever the vectors may have: another connection committed, or this one added
        vectors or chunks (ids only grow: AUTOINCREMENT). A deletion on this connection alone leaves
        stale rows, which `nearest` callers drop when they look the chunks up."""
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        top_vector = self.conn.execute("SELECT max(chunk_id) FROM chunk_vectors").fetchone()[0]
        top_chunk = self.conn.execute("SELECT max(id) FROM chunks").fetchone()[0]
        return (model, version, top_vector, top_chunk)

    def _loaded_vectors(self, model: str) -> _Loaded:
        key = self._vector_key(model)
        cache = self.__dict__.setdefault("_vectors", {})
        hit = cache.get(model)
        if hit is not None and hit.key == key:
            return hit
        rows = self.conn.execute(
            "SELECT v.chunk_id, c.document_id, v.vector FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id "
            "WHERE v.model = ? ORDER BY v.chunk_id", (model,)).fetchall()
        if rows:
            dim = len(rows[0][2]) // 4
            matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), dim)
        else:
            matrix = np.zeros((0, 0), dtype=np.float32)
        loaded = _Loaded(key, np.fromiter((r[0] for r in rows), np.int64, len(rows)),
                         np.fromiter((r[1] for r in rows), np.int64, len(rows)), matrix)
        cache[model] = loaded
        return loaded

    def nearest(self, model: str, vector, limit: int, user_id: int | None = None) -> list[tuple[int, float]]:
        """The `limit` chunks most similar to `vector` (cosine: vectors are unit norm) among what the
        owner (None) or a user may recall, best first, as (chunk id, similarity)."""
        loaded = self._loaded_vectors(model)
        if not len(loaded.chunk_ids) or limit <= 0:
            return []
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        if q.shape[0] != loaded.matrix.shape[1]:
            return []
        sims = loaded.matrix @ q
        seen, args = visible_document("d", user_id)
        visible = np.fromiter((r[0] for r in self.conn.execute(f"SELECT id FROM documents d WHERE {seen}", args)),
                              np.int64)
        mask = np.isin(loaded.document_ids, visible)
        if not mask.all():
            sims = np.where(mask, sims, -np.inf)
        n = min(limit, int(mask.sum()))
        if n == 0:
            return []
        top = np.argpartition(-sims, n - 1)[:n] if n < len(sims) else np.arange(len(sims))
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(int(loaded.chunk_ids[i]), float(sims[i])) for i in top]

    def similarities(self, model: str, vector, chunk_ids) -> dict[int, float]:
        """Cosine similarity of `vector` and each of `chunk_ids` that has a vector from `model`."""
        loaded = self._loaded_vectors(model)
        if not len(loaded.chunk_ids):
            return {}
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        if q.shape[0] != loaded.matrix.shape[1]:
            return {}
        ids = np.asarray(list(chunk_ids), dtype=np.int64)
        pos = np.searchsorted(loaded.chunk_ids, ids)  # chunk_ids are sorted
        pos = np.clip(pos, 0, len(loaded.chunk_ids) - 1)
        found = loaded.chunk_ids[pos] == ids
        return {int(i): float(loaded.matrix[p] @ q) for i, p, f in zip(ids, pos, found, strict=True) if f}
