"""Adapters (LoRA, PEFT format) registered with their base model, night, verdict and figures."""

from __future__ import annotations

import json

from reverie.store.db import now

VERDICTS = ("candidate", "kept", "rejected")


class AdaptersMixin:
    def add_adapter(
        self, name: str, path: str, base_model: str, night_id: int | None, verdict: str, metrics: dict
    ) -> int:
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}")
        with self.transaction():
            return self.conn.execute(
                "INSERT INTO adapters(name, path, base_model, night_id, verdict, metrics, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, path, base_model, night_id, verdict, json.dumps(metrics), now()),
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

    def adapters(self):
        return self.conn.execute("SELECT * FROM adapters ORDER BY id").fetchall()
