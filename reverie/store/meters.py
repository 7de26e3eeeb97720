"""Saved meter and probe results, optionally attached to a night."""

from __future__ import annotations

import json

from reverie.store.db import now


class MetersMixin:
    def add_meter_run(
        self, kind: str, label: str, metrics: dict, params: dict | None = None, night_id: int | None = None
    ) -> int:
        with self.transaction():
            return self.conn.execute(
                "INSERT INTO meter_runs(kind, label, night_id, params, metrics, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (kind, label, night_id, json.dumps(params or {}), json.dumps(metrics), now()),
            ).lastrowid

    def meter_runs(self, kind: str | None = None):
        if kind is None:
            return self.conn.execute("SELECT * FROM meter_runs ORDER BY id").fetchall()
        return self.conn.execute("SELECT * FROM meter_runs WHERE kind = ? ORDER BY id", (kind,)).fetchall()
