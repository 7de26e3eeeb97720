"""The night's bookkeeping in the store: which dreams are learned, pending, replayed or quiz.

A dream is *learned* once a kept night trained on it (`night_dreams` role 'train'); *pending*
while kept by its dream run and not yet learned (a rejected night's dreams stay pending); *quiz*
dreams are held out for good. The store's own mixins know nothing of sleep, so the few queries
the night needs live here, each in one transaction.
"""

from __future__ import annotations

_TITLE = (
    "(SELECT doc.title FROM dream_sources s JOIN chunks c ON c.id = s.chunk_id "
    "JOIN documents doc ON doc.id = c.document_id WHERE s.dream_id = d.id ORDER BY s.chunk_id LIMIT 1)"
)


def _ids(store, sql: str, args: tuple = ()) -> set[int]:
    return {r[0] for r in store.conn.execute(sql, args).fetchall()}


def learned_ids(store) -> set[int]:
    return _ids(
        store,
        "SELECT n.dream_id FROM night_dreams n JOIN nights x ON x.id = n.night_id "
        "WHERE n.role = 'train' AND x.status = 'kept'",
    )


def quiz_ids(store) -> set[int]:
    return _ids(store, "SELECT dream_id FROM night_dreams WHERE role = 'quiz'")


def pending_dreams(store) -> list:
    """Kept dreams of finished dream runs that no kept night learned and no night holds out."""
    skip = learned_ids(store) | quiz_ids(store)
    return [r for r in store.list_dreams(status="kept") if r["id"] not in skip]


def learned_dreams(store) -> list:
    learned = learned_ids(store)
    return [r for r in store.list_dreams(status="kept") if r["id"] in learned]


def add_night_dreams(store, night_id: int, roles: dict[str, list[int]]) -> None:
    with store.transaction():
        for role, ids in roles.items():
            store.conn.executemany(
                "INSERT INTO night_dreams(night_id, dream_id, role) VALUES (?, ?, ?)",
                [(night_id, i, role) for i in ids],
            )


def night_dreams(store, night_id: int, roles: tuple[str, ...]) -> list:
    """The night's dreams in these roles, with their role and the title of their first source."""
    marks = ",".join("?" * len(roles))
    return store.conn.execute(
        f"SELECT d.id, d.generator, d.text, d.metrics, n.role, {_TITLE} AS title FROM night_dreams n "
        f"JOIN dreams d ON d.id = n.dream_id WHERE n.night_id = ? AND n.role IN ({marks}) ORDER BY d.id",
        (night_id, *roles),
    ).fetchall()


def unfinished_night(store):
    """The last night that was killed or interrupted before it finished (to resume), or None."""
    return store.conn.execute(
        "SELECT * FROM nights WHERE finished_at IS NULL AND status IN ('running', 'interrupted') "
        "ORDER BY id DESC LIMIT 1"
    ).fetchone()


def set_night_running(store, night_id: int, status: str = "running") -> None:
    """'running' again on resume, 'interrupted' on Ctrl-C (not finished: the next sleep resumes)."""
    with store.transaction():
        store.conn.execute("UPDATE nights SET status = ? WHERE id = ?", (status, night_id))


def latest_kept_adapter(store, base_identity: str):
    return store.conn.execute(
        "SELECT * FROM adapters WHERE verdict = 'kept' AND base_model = ? ORDER BY id DESC LIMIT 1",
        (base_identity,),
    ).fetchone()


def contexts(store, dream_ids: list[int]) -> tuple[dict, dict[int, int]]:
    """({chunk id: reverie.sleep.distill.Context}, {dream id: its first source chunk}) for the
    dreams' sources that still exist: what the teacher reads."""
    from reverie.sleep.distill import Context

    first = {r[0]: r[1] for r in _in(
        store, "SELECT s.dream_id, MIN(s.chunk_id) FROM dream_sources s JOIN chunks c ON c.id = s.chunk_id "
        "WHERE s.dream_id IN ({}) GROUP BY s.dream_id", dream_ids)}
    found = {r["id"]: Context(r["title"] or "", r["text"]) for r in _in(
        store, "SELECT c.id, c.text, d.title FROM chunks c JOIN documents d ON d.id = c.document_id "
        "WHERE c.id IN ({})", sorted(set(first.values())))}
    return found, first


def _in(store, sql: str, ids: list[int], size: int = 500) -> list:
    """The rows of `sql` with its `IN ({})` filled by `ids`, asked `size` at a time (SQLite's
    limit on bound variables)."""
    rows = []
    for start in range(0, len(ids), size):
        part = ids[start : start + size]
        rows += store.conn.execute(sql.format(",".join("?" * len(part))), tuple(part)).fetchall()
    return rows


def drop_dreams(store, reasons: dict[int, str]) -> None:
    """Mark dreams dropped, each with its reason (`reverie dreams --dropped` lists them)."""
    with store.transaction():
        store.conn.executemany("UPDATE dreams SET status = 'dropped', drop_reason = ? WHERE id = ?",
                               [(why, i) for i, why in reasons.items()])
