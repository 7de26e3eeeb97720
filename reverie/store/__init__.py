"""The memory: one SQLite database per reverie home, the single source of truth.

    store = Store.open(settings.db_path)
    store.counts()  # {'documents': ..., 'chunks': ..., ...}

Access is grouped by table in small modules (documents, conversations, dreams, nights,
adapters, meters, users, vectors); `Store` combines them over one connection.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reverie.store import db
from reverie.store.adapters import AdaptersMixin
from reverie.store.conversations import ConversationsMixin
from reverie.store.documents import DocumentsMixin
from reverie.store.dream_runs import DreamRunsMixin
from reverie.store.dreams import DreamsMixin
from reverie.store.meters import MetersMixin
from reverie.store.nights import NightsMixin
from reverie.store.users import UsersMixin
from reverie.store.vectors import VectorsMixin

COUNTED = ("documents", "chunks", "conversations", "messages", "dreams", "nights", "adapters")


class Store(DocumentsMixin, ConversationsMixin, DreamsMixin, DreamRunsMixin, NightsMixin, AdaptersMixin, MetersMixin,
            UsersMixin, VectorsMixin):
    def __init__(self, conn: sqlite3.Connection, path: Path | str = ":memory:"):
        self.conn = conn
        self.path = Path(path)

    @classmethod
    def open(cls, path: Path | str) -> Store:
        return cls(db.connect(path), path)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def transaction(self):
        return db.transaction(self.conn)

    def counts(self) -> dict[str, int]:
        out = {t: self.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED}
        out["dreams_dropped"] = self.conn.execute(
            "SELECT count(*) FROM dreams WHERE status = 'dropped'"
        ).fetchone()[0]
        return out

    def get_state(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_state(self, key: str, value: str | None) -> None:
        with self.transaction():
            if value is None:
                self.conn.execute("DELETE FROM state WHERE key = ?", (key,))
            else:
                self.conn.execute(
                    "INSERT INTO state(key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    def register_artifact(self, kind: str, path: Path | str, meta: dict | None = None) -> int:
        import json

        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO artifacts(kind, path, meta, created_at) VALUES (?, ?, ?, ?)",
                (kind, str(path), json.dumps(meta or {}), db.now()),
            )
        return cur.lastrowid

    def integrity_ok(self) -> bool:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


__all__ = ["Store"]
