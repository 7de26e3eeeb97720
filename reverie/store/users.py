"""Users of `reverie serve`, their bearer tokens, and who may see what.

    token = store.add_user("alice")       # shown once; the store keeps its sha256
    store.user_by_token(token)["name"]     # 'alice' (compared in constant time)

Ownership: a row whose `user_id` is NULL is the owner's (who runs `reverie read` and `reverie
sleep`). The owner's documents other than conversations are the shared reading: everyone recalls
them and every night learns them. A user's conversations, the documents they send, their nights
and adapters are theirs alone. `visible_document` and `visible_dream` say so in SQL, in one place.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from reverie.errors import ReverieError
from reverie.store.db import now

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TOKEN_PREFIX = "rv-"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def adapter_key(user_id: int | None) -> str:
    """The `state` key of the adapter in use: the owner's (`reverie use`), or a user's."""
    return "adapter" if user_id is None else f"adapter:user/{user_id}"


SENT = "serve:document/"  # the source of a document sent to `reverie serve`, before its name


def conversation_source(conversation_id: int | str) -> str:
    """The source of a served conversation's transcript (kind 'conversation')."""
    return f"serve:conversation/{conversation_id}"


def scoped_source(user_id: int | None, source: str) -> str:
    """A document's stored source: a user's documents are kept apart from the owner's and each
    other's (`source` is unique in the store)."""
    return source if user_id is None else f"user/{user_id}:{source}"


def unscoped_source(source: str) -> str:
    """The source as its owner named it (`scoped_source` undone)."""
    head, sep, rest = source.partition(":")
    return rest if sep and head.startswith("user/") and head[5:].isdigit() else source


def visible_document(alias: str, user_id: int | None) -> tuple[str, tuple]:
    """SQL true for a document row `alias` that `user_id` (None: the owner) may recall, and its args."""
    if user_id is None:
        return f"{alias}.user_id IS NULL", ()
    return f"({alias}.user_id IS ? OR ({alias}.user_id IS NULL AND {alias}.kind != 'conversation'))", (user_id,)


def visible_dream(alias: str, user_id: int | None) -> tuple[str, tuple]:
    """SQL true for a dream row `alias` whose every source `user_id` may recall. A source whose
    document is unknown (chunks read before users existed, then replaced) is the owner's."""
    if user_id is None:
        hidden, args = "doc.user_id IS NOT NULL", ()
    else:
        seen, args = visible_document("doc", user_id)
        hidden = f"doc.id IS NULL OR NOT {seen}"
    return (f"NOT EXISTS (SELECT 1 FROM dream_sources s LEFT JOIN chunk_documents cd ON cd.chunk_id = s.chunk_id "
            f"LEFT JOIN documents doc ON doc.id = cd.document_id WHERE s.dream_id = {alias}.id AND ({hidden}))", args)


class UsersMixin:
    def add_user(self, name: str) -> str:
        """A new user (or a new token for one whose token was revoked); returns the token, which
        is not stored."""
        if not NAME.match(name):
            raise ReverieError(f"a user name is 1-64 letters, digits, '_', '.', '@' or '-', not {name!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.transaction():
            row = self.conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
            if row is not None and row["token_sha256"] is not None:
                raise ReverieError(f"the user {name} exists; `reverie users remove {name}` revokes its token")
            if row is None:
                self.conn.execute("INSERT INTO users(name, token_sha256, created_at) VALUES (?, ?, ?)",
                                  (name, token_hash(token), now()))
            else:
                self.conn.execute("UPDATE users SET token_sha256 = ?, revoked_at = NULL WHERE id = ?",
                                  (token_hash(token), row["id"]))
        return token

    def revoke_user(self, name: str) -> None:
        """Revoke the user's token; what they own is kept (`reverie forget --user` deletes it)."""
        row = self.user(name)
        with self.transaction():
            self.conn.execute("UPDATE users SET token_sha256 = NULL, revoked_at = ? WHERE id = ?", (now(), row["id"]))

    def user(self, name: str):
        row = self.conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise ReverieError(f"no user {name!r} (see `reverie users list`)")
        return row

    def users(self):
        return self.conn.execute(
            "SELECT u.*, (SELECT count(*) FROM conversations c WHERE c.user_id = u.id) AS n_conversations, "
            "(SELECT count(*) FROM documents d WHERE d.user_id = u.id AND d.kind != 'conversation') AS n_documents, "
            "(SELECT count(*) FROM adapters a WHERE a.user_id = u.id AND a.verdict = 'kept') AS n_adapters "
            "FROM users u ORDER BY u.id").fetchall()

    def has_users(self) -> bool:
        """Whether any user exists, revoked or not (`reverie serve` then asks every caller for a token)."""
        return self.conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None

    def user_by_token(self, token: str):
        """The active user holding `token`, or None. Every stored hash is compared, in constant time."""
        given = token_hash(token).encode()
        found = None
        for row in self.conn.execute("SELECT * FROM users WHERE token_sha256 IS NOT NULL").fetchall():
            if hmac.compare_digest(given, row["token_sha256"].encode()):
                found = row
        return found
