"""Forgetting on request: `reverie forget SOURCE | --conversation ID | --user NAME`.

    report = forget(store, home, source="/notes/diary.md")
    report.adapters      # ['night-4', 'night-5']: trained on it, marked forgotten, files deleted
    report.in_use        # [('owner', 'night-5', 'night-3')]: the adapter in use, rolled back

In one transaction, with SQLite's secure_delete on (deleted rows are overwritten, not left in
free pages):
1. the documents (a source; a served conversation's transcript; all of a user's), their chunks
   and full-text rows, every chunk id they ever had (`chunk_documents`: a re-read or a
   conversation's next turn replaces chunks), the dreams made from any of those chunks and the
   naive-baseline texts of them;
2. the conversations with their messages;
3. the adapters that learned it. A fact trained into a kept adapter survives the deletion of
   its row, so every adapter whose night trained on (or replayed) one of those dreams, and every
   adapter continuing such an adapter, is marked 'forgotten' and its files are deleted. Its
   night's other dreams count as unlearned again (reverie.sleep.records), so a later night
   learns them without the forgotten source. Where the adapter in use (the owner's or a user's)
   is forgotten, it goes back to the last kept adapter trained before it that learned nothing
   forgotten, or to the base model. An unfinished night that planned to learn it is failed (not
   resumed), and the teacher's answers a night stored about it are deleted.
4. `--user`: also their nights, all their adapters, and the user.

Then the full-text index is merged (so no deleted word stays in it) and the write-ahead log is
checkpointed and truncated. A model merged from a forgotten adapter (`reverie merge`) is a
file of the user's choosing: it is named in the report, not deleted.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from reverie.errors import ReverieError
from reverie.store.db import now
from reverie.store.users import SENT, adapter_key, conversation_source, scoped_source, unscoped_source


@dataclass
class Forgotten:
    what: str  # what was asked to be forgotten, in words
    documents: list[str] = field(default_factory=list)  # their sources
    conversations: list[int] = field(default_factory=list)
    dreams: int = 0
    adapters: list[str] = field(default_factory=list)  # marked forgotten (or deleted with a user), files deleted
    in_use: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # (whose, was, now)
    merged: list[str] = field(default_factory=list)  # merged models of forgotten adapters, left on disk


def forget(store, home: Path, *, source: str | None = None, conversation: int | None = None,
           user: str | None = None) -> Forgotten:
    """See the module docstring. `source` and `conversation` exclude each other; `source` with
    `user` is one of that user's documents; `user` alone is the whole user."""
    if source is not None and conversation is not None:
        raise ReverieError("forget one thing at a time: a SOURCE or --conversation ID")
    if source is None and conversation is None and user is None:
        raise ReverieError("say what to forget: a SOURCE, --conversation ID or --user NAME")
    row = store.user(user) if user is not None else None
    user_id = row["id"] if row is not None else None
    whole_user = row is not None and source is None and conversation is None
    if source is not None:
        docs = [_document(store, source, user_id)]
        convs = _served_conversation(store, docs[0])
        what = unscoped_source(docs[0]["source"]) + (f" of {user}" if user else "")
    elif conversation is not None:
        conv = store.conn.execute("SELECT * FROM conversations WHERE id = ?", (conversation,)).fetchone()
        if conv is None or (row is not None and conv["user_id"] != user_id):
            raise ReverieError(f"no conversation {conversation}" + (f" of {user}" if user else ""))
        docs = store.conn.execute("SELECT * FROM documents WHERE source = ?",
                                  (conversation_source(conversation),)).fetchall()
        convs = [conversation]
        what = f"conversation {conversation}"
    else:
        docs = store.conn.execute("SELECT * FROM documents WHERE user_id = ?", (user_id,)).fetchall()
        convs = [r[0] for r in store.conn.execute("SELECT id FROM conversations WHERE user_id = ?", (user_id,))]
        what = f"the user {user}"
    report = Forgotten(what, [unscoped_source(d["source"]) for d in docs], convs)
    folders: list[Path] = []
    store.conn.execute("PRAGMA secure_delete = ON")
    try:
        with store.transaction():
            _delete(store, home, [d["id"] for d in docs], convs, row if whole_user else None, report, folders)
        with store.transaction():  # merge the full-text index: a deleted word leaves no entry behind
            store.conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')")
        # the log's old pages go too (while another process reads, at its next checkpoint)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.conn.execute("PRAGMA secure_delete = OFF")
    for folder in folders + _left_over(store):
        shutil.rmtree(folder, ignore_errors=True)
    return report


def _document(store, source: str, user_id: int | None):
    """The document `source` names: as given, as the absolute path it was read from, or as the
    name it was sent to `reverie serve` with."""
    names = [source, SENT + source]
    with contextlib.suppress(OSError, RuntimeError):
        names.append(str(Path(source).expanduser().resolve()))
    for name in names:
        row = store.conn.execute("SELECT * FROM documents WHERE source IN (?, ?) AND user_id IS ?",
                                 (name, scoped_source(user_id, name), user_id)).fetchone()
        if row is not None:
            return row
    raise ReverieError(f"no document {source!r}" + (" of that user" if user_id else "")
                       + " (`reverie status` counts them; `reverie export --user NAME` lists a user's)")


def _served_conversation(store, doc) -> list[int]:
    """A served conversation's transcript is forgotten with its conversation."""
    prefix = conversation_source("")
    tail = doc["source"][len(prefix):]
    return [int(tail)] if doc["kind"] == "conversation" and doc["source"].startswith(prefix) and tail.isdigit() else []


def _in(store, sql: str, ids) -> list:
    """The rows of `sql` with its `IN ({})` filled by `ids`, 500 at a time (SQLite's limit on bound
    variables)."""
    ids, rows = sorted(ids), []
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        rows += store.conn.execute(sql.format(",".join("?" * len(part))), part).fetchall()
    return rows


def _ids(store, sql: str, ids) -> list[int]:
    return sorted({r[0] for r in _in(store, sql, ids)})


def _delete(store, home: Path, doc_ids: list[int], conv_ids: list[int], whole_user, report: Forgotten,
            folders: list[Path]) -> None:
    conn = store.conn
    chunks = _ids(store, "SELECT chunk_id FROM chunk_documents WHERE document_id IN ({})", doc_ids)
    chunks = sorted(set(chunks) | set(_ids(store, "SELECT id FROM chunks WHERE document_id IN ({})", doc_ids)))
    dreams = _ids(store, "SELECT dream_id FROM dream_sources WHERE chunk_id IN ({})", chunks)
    trained = set(_ids(store, "SELECT night_id FROM night_dreams WHERE role IN ('train', 'replay') "
                              "AND dream_id IN ({})", dreams))
    nights = set(trained)
    tainted = _tainted(store, trained)
    if whole_user is not None:
        nights |= {r[0] for r in conn.execute("SELECT id FROM nights WHERE user_id = ?", (whole_user["id"],))}
        tainted += [a for a in store.adapters(whole_user["id"]) if a["id"] not in {t["id"] for t in tainted}]
    names = {a["name"] for a in tainted}
    for a in tainted:
        folders.append(Path(a["path"]))
        conn.execute("UPDATE adapters SET verdict = 'forgotten' WHERE id = ?", (a["id"],))
    report.adapters = [a["name"] for a in sorted(tainted, key=lambda a: a["id"])]
    report.merged = [r["path"] for r in conn.execute("SELECT * FROM artifacts WHERE kind = 'merged_model'")
                     if json.loads(r["meta"]).get("adapter") in names]
    _roll_back(store, tainted, report)
    for night in sorted(nights):
        folders.append(home / "nights" / str(night))  # checkpoints and teacher targets
        _scrub_night(store, night, set(dreams), set(chunks))
        conn.execute("UPDATE nights SET status = 'failed', finished_at = ? WHERE id = ? AND finished_at IS NULL",
                     (now(), night))  # an unfinished night is not resumed with what it planned
    _in(store, "DELETE FROM dreams WHERE id IN ({})", dreams)  # with their sources and night roles
    _in(store, "DELETE FROM dream_baselines WHERE chunk_id IN ({})", chunks)
    report.dreams = len(dreams)
    for doc in doc_ids:
        conn.execute("DELETE FROM chunk_documents WHERE document_id = ?", (doc,))
        conn.execute("DELETE FROM documents WHERE id = ?", (doc,))  # its chunks and their full-text rows go too
    for conv in conv_ids:
        conn.execute("DELETE FROM conversations WHERE id = ?", (conv,))  # and its messages
    if whole_user is not None:
        conn.execute("DELETE FROM adapters WHERE user_id = ?", (whole_user["id"],))
        conn.execute("DELETE FROM nights WHERE user_id = ?", (whole_user["id"],))
        conn.execute("DELETE FROM state WHERE key = ?", (adapter_key(whole_user["id"]),))
        conn.execute("DELETE FROM users WHERE id = ?", (whole_user["id"],))


def _tainted(store, nights: set[int]) -> list:
    """The adapters trained in `nights`, and every adapter continuing one of them (in id order, a
    parent comes before what continues it)."""
    from reverie.models.lora import read_meta

    out, names = [], set()
    for a in store.adapters():
        parent = read_meta(a["path"]).get("parent") or json.loads(a["metrics"] or "{}").get("parent")
        if a["night_id"] in nights or (parent is not None and parent in names):
            out.append(a)
            names.add(a["name"])
    return out


def _roll_back(store, tainted: list, report: Forgotten) -> None:
    """Each owner's adapter in use, when tainted: back to their last kept adapter before it (whose
    verdict is still 'kept', so it learned nothing forgotten), or to the base model."""
    by_name = {a["name"]: a for a in tainted}
    users = {r["id"]: r["name"] for r in store.conn.execute("SELECT id, name FROM users")}
    for key, value in store.conn.execute("SELECT key, value FROM state WHERE key LIKE 'adapter%'").fetchall():
        was = by_name.get(value)
        if was is None or key != adapter_key(was["user_id"]):
            continue
        back = store.conn.execute(
            "SELECT name FROM adapters WHERE verdict = 'kept' AND user_id IS ? AND base_model = ? AND id < ? "
            "ORDER BY id DESC LIMIT 1", (was["user_id"], was["base_model"], was["id"])).fetchone()
        if back is None:
            store.conn.execute("DELETE FROM state WHERE key = ?", (key,))
        else:
            store.conn.execute("UPDATE state SET value = ? WHERE key = ?", (back["name"], key))
        whose = "owner" if was["user_id"] is None else users.get(was["user_id"], f"user {was['user_id']}")
        report.in_use.append((whose, value, back["name"] if back else None))


def _scrub_night(store, night_id: int, dreams: set[int], chunks: set[int]) -> None:
    """Delete the teacher's answers a night stored about forgotten dreams or chunks (keys
    '<dream id>:<wording>' and 'open:<chunk id>', reverie.sleep.distill)."""
    row = store.night(night_id)
    if row is None:
        return
    config = json.loads(row["config"] or "{}")
    answers = (config.get("teacher") or {}).get("answers")
    if not answers:
        return

    def about(key: str) -> bool:
        head, _, tail = key.partition(":")
        return (head == "open" and tail.isdigit() and int(tail) in chunks) or (head.isdigit() and int(head) in dreams)

    config["teacher"]["answers"] = {k: v for k, v in answers.items() if not about(k)}
    store.conn.execute("UPDATE nights SET config = ? WHERE id = ?", (json.dumps(config), night_id))


def _left_over(store) -> list[Path]:
    """Files of adapters already forgotten (a forget killed between its commit and the deletion)."""
    return [Path(r["path"]) for r in store.conn.execute("SELECT path FROM adapters WHERE verdict = 'forgotten'")
            if Path(r["path"]).exists()]
