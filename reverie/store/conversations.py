"""Conversations and their messages: every chat turn is kept."""

from __future__ import annotations

import json

from reverie.store.db import now


class ConversationsMixin:
    def new_conversation(self, model: str, title: str | None = None, adapter_id: int | None = None,
                         user_id: int | None = None) -> int:
        with self.transaction():
            return self.conn.execute(
                "INSERT INTO conversations(title, model, adapter_id, started_at, user_id) VALUES (?, ?, ?, ?, ?)",
                (title, model, adapter_id, now(), user_id),
            ).lastrowid

    def add_message(self, conversation_id: int, role: str, content: str, meta: dict | None = None) -> int:
        with self.transaction():
            ord_ = self.conn.execute(
                "SELECT coalesce(max(ord), -1) + 1 FROM messages WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()[0]
            return self.conn.execute(
                "INSERT INTO messages(conversation_id, ord, role, content, meta, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, ord_, role, content, json.dumps(meta or {}), now()),
            ).lastrowid

    def messages(self, conversation_id: int):
        return self.conn.execute(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY ord", (conversation_id,)
        ).fetchall()

    def conversations(self, limit: int = 50):
        return self.conn.execute(
            "SELECT c.*, count(m.id) AS n_messages FROM conversations c "
            "LEFT JOIN messages m ON m.conversation_id = c.id GROUP BY c.id ORDER BY c.id DESC LIMIT ?",
            (limit,),
        ).fetchall()

    def message_by_meta(self, key: str, value: str, user_id: int | None = None):
        """The latest message of the owner's (or a user's) conversations whose meta holds `key` =
        `value`, with `last_ord`, the last ord of its conversation (`reverie serve` finds the
        conversation a client continues by its thread key)."""
        return self.conn.execute(
            "SELECT m.*, (SELECT max(ord) FROM messages WHERE conversation_id = m.conversation_id) AS last_ord "
            "FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "WHERE json_extract(m.meta, ?) = ? AND c.user_id IS ? ORDER BY m.id DESC LIMIT 1",
            ("$." + key, value, user_id),
        ).fetchone()
