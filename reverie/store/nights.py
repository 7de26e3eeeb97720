"""Nights: one sleep cycle each, with its seed, config, timings and figures."""

from __future__ import annotations

import json

from reverie.store.db import now

NIGHT_STATUSES = ("running", "kept", "rejected", "failed", "interrupted")


class NightsMixin:
    def start_night(self, seed: int, config: dict, user_id: int | None = None) -> int:
        """A running night of the owner (user_id None) or of a user."""
        with self.transaction():
            return self.conn.execute(
                "INSERT INTO nights(status, seed, config, started_at, user_id) VALUES ('running', ?, ?, ?, ?)",
                (seed, json.dumps(config), now(), user_id),
            ).lastrowid

    def set_night_config(self, night_id: int, config: dict) -> None:
        with self.transaction():
            self.conn.execute("UPDATE nights SET config = ? WHERE id = ?", (json.dumps(config), night_id))

    def finish_night(self, night_id: int, status: str, timings: dict, metrics: dict) -> None:
        if status not in NIGHT_STATUSES:
            raise ValueError(f"unknown night status {status!r}")
        with self.transaction():
            self.conn.execute(
                "UPDATE nights SET status = ?, timings = ?, metrics = ?, finished_at = ? WHERE id = ?",
                (status, json.dumps(timings), json.dumps(metrics), now(), night_id),
            )

    def night(self, night_id: int):
        return self.conn.execute("SELECT * FROM nights WHERE id = ?", (night_id,)).fetchone()

    def nights(self):
        return self.conn.execute("SELECT * FROM nights ORDER BY id").fetchall()

    def last_finished_night(self, user_id: int | None = None):
        """The owner's (or a user's) last finished night."""
        return self.conn.execute(
            "SELECT * FROM nights WHERE finished_at IS NOT NULL AND user_id IS ? ORDER BY id DESC LIMIT 1", (user_id,)
        ).fetchone()
