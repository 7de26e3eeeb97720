"""Adapters (LoRA, PEFT format) registered with their base model, night, verdict and figures."""

from __future__ import annotations

import json

from reverie.store.db import now

VERDICTS = ("candidate", "kept", "rejected", "forgotten")  # forgotten: trained on what `reverie forget` deleted


class AdaptersMixin:
    def add_adapter(
        self, name: str, path: str, base_model: str, night_id: int | None, verdict: str, metrics: dict,
        user_id: int | None = None,
    ) -> int:
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}")
        with self.transaction():
            return self.conn.execute(
                "INSERT INTO adapters(name, path, base_model, night_id, verdict, metrics, created_at, user_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, path, base_model, night_id, verdict, json.dumps(metrics), now(), user_id),
            ).lastrowid

    def set_adapter_verdict(self, adapter_id: int, verdict: str, metrics: dict | None = None) -> None:
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}")
        with self.transaction():
            self.conn.execute("UPDATE adapters SET verdict = ? WHERE id = ?", (verdict, adapter_id))
            if metrics is not None:
                self.conn.execute(
                    "UPDATE adapters SET metrics = ? WHERE id = ?", (json.dumps(metrics), adapter_id)
                )

    def adapter(self, name_or_id: str | int):
        return self.conn.execute(
            "SELECT * FROM adapters WHERE name = ? OR id = ?", (str(name_or_id), name_or_id)
        ).fetchone()

    def adapters(self, user_id: int | None | str = "all"):
        """Every adapter ('all'), or the owner's (None) or a user's."""
        if user_id == "all":
            return self.conn.execute("SELECT * FROM adapters ORDER BY id").fetchall()
        return self.conn.execute("SELECT * FROM adapters WHERE user_id IS ? ORDER BY id", (user_id,)).fetchall()
