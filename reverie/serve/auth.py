"""Who is calling: bearer tokens of `reverie users add`, the owner's `serve.api_key`, or nobody.

Every route but `/health` asks `Access.caller` first, on the store thread, before anything is
read or kept: a refused request leaves no trace. A token is compared by its sha256 against every
user's, in constant time (reverie.store.users); `serve.api_key` is the owner's key. Tokens are
required once a user exists or `serve.api_key` is set, or when serving beyond loopback; without
any, on loopback, every caller is the owner. `--no-auth` (loopback only) makes everyone the owner.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from reverie.serve.protocol import ApiError
from reverie.store import Store


@dataclass(frozen=True)
class Caller:
    """The owner (user_id None: the shared reading, the owner's conversations and adapters) or a user."""

    user_id: int | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or "owner"


OWNER = Caller()


class LazyStore:
    """A store connection of its own, opened on first use: on the server's store thread, since a
    SQLite connection belongs to the thread that opened it."""

    def __init__(self, settings):
        self.settings = settings
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.settings.db_path)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


class Access(LazyStore):
    def __init__(self, settings, open_without_keys: bool, no_auth: bool = False):
        super().__init__(settings)
        self.open_without_keys = open_without_keys  # loopback: no key and no user means no token needed
        self.no_auth = no_auth

    def caller(self, authorization: str | None) -> Caller:
        """The caller an `Authorization` header names; 401 when a token is needed and this is none."""
        if self.no_auth:
            return OWNER
        secret = self.settings.serve.api_key
        key = secret.get_secret_value() if secret is not None else ""
        if not key and self.open_without_keys and not self.store.has_users():
            return OWNER
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <token>' "
                           "(`reverie users add NAME` makes one)", code="invalid_api_key")
        if key and hmac.compare_digest(token.encode(), key.encode()):
            return OWNER
        user = self.store.user_by_token(token)
        if user is None:
            raise ApiError(401, "wrong API key", code="invalid_api_key")
        return Caller(user["id"], user["name"])
