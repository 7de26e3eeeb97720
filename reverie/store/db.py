"""Opening the SQLite store: pragmas, numbered migrations, transactions, friendly errors.

Why these pragmas: WAL lets `reverie search` read while `reverie read` writes and keeps the file
consistent after a kill; foreign keys make cascades real; a busy timeout turns brief contention
into waiting instead of an error. Migrations are the numbered `migrations/NNNN_*.sql` files,
applied in order inside one transaction each; `PRAGMA user_version` records the last applied.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from reverie.errors import ReverieError


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def migrations() -> list[tuple[int, str, str]]:
    """(number, name, sql) for every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("reverie.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            found.append((number, entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    assert numbers == list(range(1, len(found) + 1)), f"migrations must be numbered 1..N, got {numbers}"
    return found


def translate(exc: sqlite3.Error, path: Path | str | None = None) -> ReverieError:
    """One clear line for the database errors a user can meet."""
    msg = str(exc)
    path = path or "(reverie.db)"
    if "locked" in msg or "busy" in msg:
        return ReverieError(f"the store {path} is locked by another reverie process; try again when it ends")
    if "not a database" in msg or "malformed" in msg or "corrupt" in msg:
        return ReverieError(
            f"the store {path} is not a reverie database or is corrupt ({msg}); "
            "move it aside or choose another --home"
        )
    if "readonly" in msg or "unable to open" in msg:
        return ReverieError(f"cannot write the store {path}: {msg}")
    return ReverieError(f"store error in {path}: {msg}")


def connect(path: Path | str, busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the store at `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReverieError(f"cannot create the reverie home {path.parent}: {exc.strerror}") from None
    conn = None
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per unit of work.
        conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate(conn)
    except (sqlite3.Error, ReverieError) as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, ReverieError):
            raise
        raise translate(exc, path) from None
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations; return the schema version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    shipped = migrations()
    if version > len(shipped):
        raise ReverieError(
            f"this store has schema version {version}, newer than this reverie knows ({len(shipped)}); "
            "upgrade reverie"
        )
    for number, _name, sql in shipped[version:]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(shipped)


def _split(script: str) -> list[str]:
    """Split a migration into statements (sqlite3.complete_statement keeps triggers whole)."""
    statements, buf = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (KeyboardInterrupt included)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
