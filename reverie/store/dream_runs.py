"""Dream runs: the resumable state of `reverie dream` (see reverie.dream.run).

A run stores its seed and settings when it starts; each batch of work items is committed in ONE
transaction together with the dreams (or baseline texts) it produced, so a kill loses at most
the batch in flight and a restart skips every committed batch.
"""

from __future__ import annotations

import json

from reverie.store.db import now
from reverie.store.dreams import DreamRecord


class DreamRunsMixin:
    def start_dream_run(self, seed: int, config: dict) -> int:
        with self.transaction():
            return self.conn.execute(
                "INSERT INTO dream_runs(status, seed, config, started_at) VALUES ('running', ?, ?, ?)",
                (seed, json.dumps(config), now()),
            ).lastrowid

    def unfinished_dream_run(self):
        return self.conn.execute(
            "SELECT * FROM dream_runs WHERE status = 'running' ORDER BY id DESC LIMIT 1"
        ).fetchone()

    def dream_run(self, run_id: int):
        return self.conn.execute("SELECT * FROM dream_runs WHERE id = ?", (run_id,)).fetchone()

    def abandon_dream_run(self, run_id: int) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE dream_runs SET status = 'abandoned', finished_at = ? WHERE id = ?", (now(), run_id)
            )

    def dream_run_batches(self, run_id: int, phase: str):
        return self.conn.execute(
            "SELECT * FROM dream_run_batches WHERE run_id = ? AND phase = ? ORDER BY batch", (run_id, phase)
        ).fetchall()

    def commit_dream_batch(
        self,
        run_id: int,
        phase: str,
        batch: int,
        *,
        dreams: list[DreamRecord] = (),
        baselines: list[tuple[int, str, int, int]] = (),
        n_tokens: int,
        kept_tokens: int,
        seconds: float,
    ) -> None:
        """Store one batch's dreams, or baseline texts as (chunk_id, text, n_tokens, seed), and
        mark the batch done, all in one transaction."""
        stamp = now()
        with self.transaction():
            for r in dreams:
                dream_id = self.conn.execute(
                    "INSERT INTO dreams(night_id, run_id, generator, text, prompt, model, sampling, seed, metrics, "
                    "status, drop_reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r.night_id, run_id, r.generator, r.text, r.prompt, r.model, json.dumps(r.sampling),
                        r.seed, json.dumps(r.metrics), r.status, r.drop_reason, stamp,
                    ),
                ).lastrowid
                self.conn.executemany(
                    "INSERT OR IGNORE INTO dream_sources(dream_id, chunk_id) VALUES (?, ?)",
                    [(dream_id, c) for c in r.source_chunk_ids],
                )
            self.conn.executemany(
                "INSERT INTO dream_baselines(run_id, chunk_id, text, n_tokens, seed) VALUES (?, ?, ?, ?, ?)",
                [(run_id, *b) for b in baselines],
            )
            self.conn.execute(
                "INSERT INTO dream_run_batches(run_id, phase, batch, n_tokens, kept_tokens, seconds) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, phase, batch, n_tokens, kept_tokens, seconds),
            )

    def run_dreams(self, run_id: int, status: str | None = None):
        """A run's dreams with their source chunk ids (JSON array), in id order."""
        sql = (
            "SELECT d.*, (SELECT json_group_array(chunk_id) FROM dream_sources s WHERE s.dream_id = d.id) "
            "AS source_chunk_ids FROM dreams d WHERE d.run_id = ?"
        )
        args: list = [run_id]
        if status is not None:
            sql += " AND d.status = ?"
            args.append(status)
        return self.conn.execute(sql + " ORDER BY d.id", args).fetchall()

    def run_baselines(self, run_id: int):
        return self.conn.execute(
            "SELECT * FROM dream_baselines WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()

    def finish_dream_run(self, run_id: int, drops: dict[int, str], metrics: dict) -> None:
        """Drop the dreams that selection left out (each with its reason) and mark the run finished,
        in one transaction: a kill during selection leaves the run to be selected again."""
        with self.transaction():
            self.conn.executemany(
                "UPDATE dreams SET status = 'dropped', drop_reason = ? WHERE id = ?",
                [(reason, dream_id) for dream_id, reason in drops.items()],
            )
            self.conn.execute(
                "UPDATE dream_runs SET status = 'finished', metrics = ?, finished_at = ? WHERE id = ?",
                (json.dumps(metrics), now(), run_id),
            )

    def list_dreams(
        self,
        *,
        generator: str | None = None,
        status: str | None = "kept",
        run_id: int | None = None,
        limit: int | None = None,
    ):
        """Dreams of finished runs (and dreams added outside runs), filtered, in id order: an
        unfinished run's candidates are not yet selected, so they are not listed or exported."""
        where = ["(d.run_id IS NULL OR r.status = 'finished')"]
        args: list = []
        for column, value in (("d.generator", generator), ("d.status", status), ("d.run_id", run_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = (
            "SELECT d.*, (SELECT json_group_array(chunk_id) FROM dream_sources s WHERE s.dream_id = d.id) "
            "AS source_chunk_ids FROM dreams d LEFT JOIN dream_runs r ON r.id = d.run_id "
            "WHERE " + " AND ".join(where) + " ORDER BY d.id"
        )
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return self.conn.execute(sql, args).fetchall()
