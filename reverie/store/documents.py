"""Documents and their chunks; full-text search over chunks (FTS5, BM25)."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
    score: float  # BM25, larger is better
    snippet: str = ""  # the best-matching words, matches wrapped in MARK_START/MARK_END


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
                doc_id = row["id"]
                self.conn.execute("DELETE FROM chunks WHERE document_id = ?", (doc_id,))
                self.conn.execute(
                    "UPDATE documents SET title = ?, kind = ?, sha256 = ?, text = ?, updated_at = ? "
                    "WHERE id = ?",
                    (title, kind, sha256, text, stamp, doc_id),
                )
                outcome = "updated"
            self.conn.executemany(
                "INSERT INTO chunks(document_id, ord, start_char, end_char, n_tokens, text) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (doc_id, i, s.start_char, s.end_char, s.n_tokens, text[s.start_char : s.end_char])
                    for i, s in enumerate(spans)
                ],
            )
            return doc_id, outcome

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
