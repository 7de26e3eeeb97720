"""The night's bookkeeping in the store: which dreams are learned, pending, replayed or quiz.

A dream is *learned* once a kept night trained on it (`night_dreams` role 'train'), until that
night's adapter is forgotten (`reverie forget`); *pending* while kept by its dream run and not
yet learned (a rejected night's dreams stay pending); *quiz* dreams are held out for good. The
store's own mixins know nothing of sleep, so the few queries the night needs live here, each in
one transaction.

Nights belong to the owner (`user_id` None) or to a user (`reverie sleep --user NAME`): learned
and pending are counted per owner, and a night's dreams are those whose sources its owner may
recall (the shared reading, and the user's own conversations and documents;
reverie.store.users.visible_dream).
"""

from __future__ import annotations

from reverie.store.users import visible_dream

_TITLE = (
    "(SELECT doc.title FROM dream_sources s JOIN chunks c ON c.id = s.chunk_id "
    "JOIN documents doc ON doc.id = c.document_id WHERE s.dream_id = d.id ORDER BY s.chunk_id LIMIT 1)"
)


def _ids(store, sql: str, args: tuple = ()) -> set[int]:
    return {r[0] for r in store.conn.execute(sql, args).fetchall()}


def learned_ids(store, user_id: int | None = None) -> set[int]:
    return _ids(
        store,
        "SELECT n.dream_id FROM night_dreams n JOIN nights x ON x.id = n.night_id "
        "WHERE n.role = 'train' AND x.status = 'kept' AND x.user_id IS ? AND NOT EXISTS "
        "(SELECT 1 FROM adapters a WHERE a.night_id = x.id AND a.verdict = 'forgotten')",
        (user_id,),
    )


def quiz_ids(store) -> set[int]:
    return _ids(store, "SELECT dream_id FROM night_dreams WHERE role = 'quiz'")


def visible_ids(store, user_id: int | None) -> set[int]:
    """The dreams whose every source the owner (None) or user `user_id` may recall."""
    seen, args = visible_dream("d", user_id)
    return _ids(store, f"SELECT d.id FROM dreams d WHERE {seen}", args)


def pending_dreams(store, user_id: int | None = None) -> list:
    """Kept dreams of finished dream runs, from what the owner (or the user) may recall, that no
    kept night of theirs learned and no night holds out."""
    skip = learned_ids(store, user_id) | quiz_ids(store)
    seen = visible_ids(store, user_id)
    return [r for r in store.list_dreams(status="kept") if r["id"] in seen and r["id"] not in skip]


def learned_dreams(store, user_id: int | None = None) -> list:
    learned = learned_ids(store, user_id)
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


def unfinished_night(store, user_id: int | None = None):
    """The owner's (or the user's) last night that was killed or interrupted before it finished
    (to resume), or None."""
    return store.conn.execute(
        "SELECT * FROM nights WHERE finished_at IS NULL AND status IN ('running', 'interrupted') AND user_id IS ? "
        "ORDER BY id DESC LIMIT 1", (user_id,)
    ).fetchone()


def set_night_running(store, night_id: int, status: str = "running") -> None:
    """'running' again on resume, 'interrupted' on Ctrl-C (not finished: the next sleep resumes)."""
    with store.transaction():
        store.conn.execute("UPDATE nights SET status = ? WHERE id = ?", (status, night_id))


def latest_kept_adapter(store, base_identity: str, user_id: int | None = None):
    """The owner's (or the user's) last kept adapter of this base model: what the next night continues."""
    return store.conn.execute(
        "SELECT * FROM adapters WHERE verdict = 'kept' AND base_model = ? AND user_id IS ? ORDER BY id DESC LIMIT 1",
        (base_identity, user_id),
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
