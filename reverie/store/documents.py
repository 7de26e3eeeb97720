"""Documents and their chunks; search over chunks: full text (FTS5, BM25), and hybrid.

Hybrid search (`hybrid_search`) fuses two rankings of the chunks with reciprocal-rank fusion
(Cormack et al. 2009): BM25 over the words, and cosine similarity of the chunk's sentence
embedding to the query's (reverie.store.vectors; the caller embeds the query). A chunk's fused
score is the sum over the rankings it appears in of weight / (k + rank), rank counted from 1, so
a chunk both sides rank well beats one only a side ranks first. Each hit says which side found
it (`found_by`: 'bm25', 'embedding' or 'both').
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from reverie.errors import ReverieError
from reverie.store.db import now
from reverie.store.users import visible_document


@dataclass(frozen=True)
class ChunkSpan:
    start_char: int
    end_char: int
    n_tokens: int


@dataclass(frozen=True)
class SearchHit:
    chunk_id: int
    document_id: int
    source: str
    title: str
    start_char: int
    end_char: int
    text: str
    score: float  # BM25 (search), or the fused score (hybrid_search); larger is better
    snippet: str = ""  # the best-matching words, matches wrapped in MARK_START/MARK_END
    found_by: str = "bm25"  # 'bm25', 'embedding' or 'both'
    bm25_rank: int | None = None  # 1 = BM25's best; None: BM25 did not find it
    embedding_rank: int | None = None  # 1 = the most similar; None: not among the candidates
    similarity: float | None = None  # cosine of its embedding and the query's (None: not embedded)


def rrf(rankings: dict[str, list[int]], weights: dict[str, float], k: float = 60.0) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: (id, sum of weight / (k + rank)) best first; ties keep the order of
    first appearance (the first ranking's order, then the next's)."""
    scores: dict[int, float] = {}
    for side, ids in rankings.items():
        w = weights.get(side, 1.0)
        for rank, i in enumerate(ids, start=1):
            scores[i] = scores.get(i, 0.0) + w / (k + rank)
    order = {i: n for n, i in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))


MARK_START, MARK_END = "\x02", "\x03"


_WORD = re.compile(r"\w+", re.UNICODE)


def fts_query(text: str) -> str:
    """Turn free text into a safe FTS5 query: every word quoted, any may match (BM25 ranks)."""
    words = _WORD.findall(text)
    return " OR ".join(f'"{w}"' for w in words)


class DocumentsMixin:
    def document_by_source(self, source: str):
        return self.conn.execute("SELECT * FROM documents WHERE source = ?", (source,)).fetchone()

    def put_document(
        self, *, source: str, title: str, kind: str, sha256: str, text: str, spans: list[ChunkSpan],
        user_id: int | None = None,
    ) -> tuple[int, str]:
        """Insert or replace a document and its chunks in ONE transaction; `user_id` owns it (None:
        the owner, see reverie.store.users).

        Returns (document id, outcome) where outcome is 'new', 'updated' or 'unchanged'.
        A kill at any point leaves either the old document or the new one, never a mix.
        """
        with self.transaction():
            row = self.conn.execute(
                "SELECT id, sha256, user_id FROM documents WHERE source = ?", (source,)
            ).fetchone()
            stamp = now()
            kept: dict = {}
            if row is not None and row["user_id"] != user_id:
                raise ReverieError(f"the document {source} belongs to someone else")
            if row is not None and row["sha256"] == sha256:
                return row["id"], "unchanged"
            if row is None:
                doc_id = self.conn.execute(
                    "INSERT INTO documents(source, title, kind, sha256, text, read_at, updated_at, user_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (source, title, kind, sha256, text, stamp, stamp, user_id),
                ).lastrowid
                outcome = "new"
            else:
                doc_id, outcome = row["id"], "updated"
                kept = self._chunk_vectors_by_text(doc_id)
                self._replace_document(doc_id, title, kind, sha256, text, stamp)
            self._insert_chunks(doc_id, text, spans)
            if kept:
                self._restore_vectors(doc_id, kept)
            return doc_id, outcome

    def _chunk_vectors_by_text(self, doc_id: int) -> dict:
        """{(chunk text, model): (dim, vector)} of the document's embedded chunks."""
        return {(r[0], r[1]): (r[2], r[3]) for r in self.conn.execute(
            "SELECT c.text, v.model, v.dim, v.vector FROM chunks c JOIN chunk_vectors v ON v.chunk_id = c.id "
            "WHERE c.document_id = ?", (doc_id,))}

    def _replace_document(self, doc_id: int, title: str, kind: str, sha256: str, text: str, stamp: str) -> None:
        """Drop the document's chunks and give it the new text (inside the caller's transaction)."""
        self.conn.execute("DELETE FROM chunks WHERE document_id = ?", (doc_id,))
        self.conn.execute(
            "UPDATE documents SET title = ?, kind = ?, sha256 = ?, text = ?, updated_at = ? "
            "WHERE id = ?",
            (title, kind, sha256, text, stamp, doc_id),
        )

    def _insert_chunks(self, doc_id: int, text: str, spans: list[ChunkSpan]) -> None:
        self.conn.executemany(
            "INSERT INTO chunks(document_id, ord, start_char, end_char, n_tokens, text) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (doc_id, i, s.start_char, s.end_char, s.n_tokens, text[s.start_char : s.end_char])
                for i, s in enumerate(spans)
            ],
        )

    def _restore_vectors(self, doc_id: int, kept: dict) -> None:
        """Vectors of chunks whose text is unchanged carry over: only changed chunks are embedded again."""
        new = self.conn.execute("SELECT id, text FROM chunks WHERE document_id = ?", (doc_id,)).fetchall()
        self.conn.executemany(
            "INSERT OR REPLACE INTO chunk_vectors(chunk_id, model, dim, vector) VALUES (?, ?, ?, ?)",
            [(r[0], model, *kept[(r[1], model)]) for r in new for model in {m for _, m in kept}
             if (r[1], model) in kept])

    def documents(self, since: str | None = None, user_id: int | None | str = "all"):
        """Every document ('all'), or those the owner (None) or a user may recall; `since`: updated then or later."""
        sql = "SELECT id, source, title, kind, sha256, read_at, updated_at, user_id FROM documents d"
        where: list[str] = []
        args: tuple = ()
        if user_id != "all":
            seen, args = visible_document("d", user_id)
            where.append(seen)
        if since is not None:
            where.append("updated_at >= ?")  # same-second reads count as new: re-dreaming beats skipping
            args += (since,)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self.conn.execute(sql + " ORDER BY id", args).fetchall()

    def chunks(self, document_ids: list[int] | None = None):
        sql = "SELECT * FROM chunks"
        args: list = []
        if document_ids is not None:
            sql += f" WHERE document_id IN ({','.join('?' * len(document_ids))})"
            args = list(document_ids)
        return self.conn.execute(sql + " ORDER BY document_id, ord", args).fetchall()

    def chunk(self, chunk_id: int):
        return self.conn.execute("SELECT * FROM chunks WHERE id = ?", (chunk_id,)).fetchone()

    def search(self, query: str, limit: int = 5, user_id: int | None = None) -> list[SearchHit]:
        """The best chunks for `query` among what the owner (None) or a user may recall."""
        match = fts_query(query)
        if not match:
            return []
        seen, args = visible_document("d", user_id)
        rows = self.conn.execute(
            "SELECT c.id, c.document_id, d.source, d.title, c.start_char, c.end_char, c.text, "
            "       bm25(chunks_fts) AS rank, snippet(chunks_fts, 0, ?, ?, '…', 24) AS snip "
            "FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
            "JOIN documents d ON d.id = c.document_id "
            f"WHERE chunks_fts MATCH ? AND {seen} ORDER BY rank LIMIT ?",
            (MARK_START, MARK_END, match, *args, limit),
        ).fetchall()
        return [SearchHit(r[0], r[1], r[2], r[3], r[4], r[5], r[6], -float(r["rank"]), r["snip"]) for r in rows]

    def hits(self, chunk_ids: list[int], user_id: int | None = None) -> dict[int, SearchHit]:
        """SearchHits (score 0) for the chunks that exist and that the owner (None) or a user may recall."""
        if not chunk_ids:
            return {}
        seen, args = visible_document("d", user_id)
        rows = self.conn.execute(
            "SELECT c.id, c.document_id, d.source, d.title, c.start_char, c.end_char, c.text "
            "FROM chunks c JOIN documents d ON d.id = c.document_id "
            f"WHERE c.id IN ({','.join('?' * len(chunk_ids))}) AND {seen}",
            (*chunk_ids, *args)).fetchall()
        return {r[0]: SearchHit(*r[:7], 0.0, snippet=" ".join(r[6].split()[:40])) for r in rows}

    def hybrid_search(
        self, query: str, vector=None, model: str | None = None, limit: int = 5, user_id: int | None = None,
        candidates: int = 50, weights: dict[str, float] | None = None, k: float = 60.0,
        min_similarity: float | None = None,
    ) -> list[SearchHit]:
        """BM25 over `query` fused (`rrf`) with the chunks nearest `vector` (the query's embedding
        from `model`); each side contributes its best `candidates`. A hit BM25 found counts as found
        by both when its similarity reaches `min_similarity` (None: any). Without a vector: BM25 alone."""
        bm25 = self.search(query, max(limit, candidates), user_id) if query.strip() else []
        near = self.nearest(model, vector, max(limit, candidates), user_id) if vector is not None and model else []
        if not near:
            return [replace(h, bm25_rank=i) for i, h in enumerate(bm25[:limit], 1)]
        by_id = {h.chunk_id: h for h in bm25}
        sims = dict(near)
        fused = rrf({"bm25": [h.chunk_id for h in bm25], "embedding": [c for c, _ in near]},
                    weights or {}, k)
        bm25_rank = {h.chunk_id: i for i, h in enumerate(bm25, 1)}
        emb_rank = {c: i for i, (c, _) in enumerate(near, 1)}
        missing = [c for c, _ in fused[: limit * 2] if c not in by_id]
        by_id.update(self.hits(missing, user_id))
        if len(sims) < len(by_id):  # BM25's hits beyond the embedding candidates: their similarity too
            sims.update(self.similarities(model, vector, [c for c in by_id if c not in sims]))
        out = []
        for cid, score in fused:
            hit = by_id.get(cid)
            if hit is None:  # deleted since the vectors were loaded, or beyond what is shown
                continue
            similar = cid in emb_rank and (min_similarity is None or sims.get(cid, -1.0) >= min_similarity)
            side = "both" if cid in bm25_rank and similar else ("bm25" if cid in bm25_rank else "embedding")
            out.append(replace(hit, score=score, found_by=side, bm25_rank=bm25_rank.get(cid),
                               embedding_rank=emb_rank.get(cid), similarity=sims.get(cid)))
            if len(out) == limit:
                break
        return out
