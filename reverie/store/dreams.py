"""Dreams: synthetic texts with full provenance (generator, chunks, model, sampling, seed)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from reverie.store.db import now


@dataclass
class DreamRecord:
    generator: str
    text: str
    model: str
    seed: int
    source_chunk_ids: list[int]
    sampling: dict = field(default_factory=dict)
    prompt: str | None = None
    metrics: dict = field(default_factory=dict)
    status: str = "kept"
    drop_reason: str | None = None
    night_id: int | None = None


class DreamsMixin:
    def add_dreams(self, records: list[DreamRecord]) -> list[int]:
        """Insert a batch of dreams in one transaction; returns their ids."""
        ids = []
        with self.transaction():
            for r in records:
                dream_id = self.conn.execute(
                    "INSERT INTO dreams(night_id, generator, text, prompt, model, sampling, seed, metrics, "
                    "status, drop_reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r.night_id, r.generator, r.text, r.prompt, r.model, json.dumps(r.sampling),
                        r.seed, json.dumps(r.metrics), r.status, r.drop_reason, now(),
                    ),
                ).lastrowid
                self.conn.executemany(
                    "INSERT OR IGNORE INTO dream_sources(dream_id, chunk_id) VALUES (?, ?)",
                    [(dream_id, c) for c in r.source_chunk_ids],
                )
                ids.append(dream_id)
        return ids

    def dreams(
        self,
        *,
        generator: str | None = None,
        status: str | None = "kept",
        night_id: int | None = None,
        limit: int | None = None,
    ):
        where, args = [], []
        if generator is not None:
            where.append("generator = ?")
            args.append(generator)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if night_id is not None:
            where.append("night_id = ?")
            args.append(night_id)
        sql = (
            "SELECT d.*, (SELECT json_group_array(chunk_id) FROM dream_sources s WHERE s.dream_id = d.id) "
            "AS source_chunk_ids FROM dreams d"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY d.id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return self.conn.execute(sql, args).fetchall()

    def dreamt_chunk_ids(self, chunk_ids: list[int]) -> set[int]:
        """The chunks among `chunk_ids` that some dream was made from."""
        found: set[int] = set()
        for start in range(0, len(chunk_ids), 500):  # SQLite's limit on bound variables
            part = chunk_ids[start : start + 500]
            found |= {r[0] for r in self.conn.execute(
                f"SELECT DISTINCT chunk_id FROM dream_sources WHERE chunk_id IN ({','.join('?' * len(part))})", part)}
        return found
