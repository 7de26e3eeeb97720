"""The store: migrations, schema, one transaction per document, search, corrupt and locked files."""

import sqlite3

import pytest

from reverie.errors import ReverieError
from reverie.store import Store, db
from reverie.store.documents import ChunkSpan
from reverie.store.dreams import DreamRecord


def _doc(store, source="/a.txt", text="Alpha beta. Gamma delta.", sha="h1"):
    cut = text.index(". ") + 1  # two chunks: first sentence, the rest
    spans = [ChunkSpan(0, cut, 3), ChunkSpan(cut + 1, len(text), 3)]
    return store.put_document(source=source, title="A", kind="txt", sha256=sha, text=text, spans=spans)


def test_migrations_numbered_and_applied(tmp_path):
    numbers = [n for n, _, _ in db.migrations()]
    assert numbers == list(range(1, len(numbers) + 1))
    store = Store.open(tmp_path / "r.db")
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == numbers[-1]
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    store.close()
    # re-opening applies nothing new and keeps data
    Store.open(tmp_path / "r.db").close()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "r.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(ReverieError, match="newer than this reverie"):
        Store.open(path)


def test_put_document_new_unchanged_updated(tmp_path):
    store = Store.open(tmp_path / "r.db")
    doc_id, outcome = _doc(store)
    assert outcome == "new"
    assert [c["text"] for c in store.chunks([doc_id])] == ["Alpha beta.", "Gamma delta."]
    assert _doc(store)[1] == "unchanged"
    _, outcome = _doc(store, text="Omega psi. Gamma delta.", sha="h2")
    assert outcome == "updated"
    assert store.search("alpha") == []
    assert [h.text for h in store.search("omega")] == ["Omega psi."]
    assert store.counts()["chunks"] == 2


def test_failed_document_leaves_nothing(tmp_path):
    store = Store.open(tmp_path / "r.db")
    bad = [ChunkSpan(0, 5, 1), ChunkSpan(0, 5, 1)]
    store.conn.execute("CREATE TRIGGER boom BEFORE INSERT ON chunks WHEN new.ord = 1 BEGIN SELECT RAISE(ABORT, 'x'); END")
    with pytest.raises(sqlite3.IntegrityError):
        store.put_document(source="/b", title="B", kind="txt", sha256="s", text="hello", spans=bad)
    assert store.counts()["documents"] == 0 and store.counts()["chunks"] == 0


def test_search_ranks_and_sanitises(tmp_path):
    store = Store.open(tmp_path / "r.db")
    _doc(store, "/a", "The lighthouse flashes twice. Bread with seaweed.", "1")
    _doc(store, "/b", "A lighthouse keeper. Lighthouse lamp lighthouse.", "2")
    hits = store.search('lighthouse AND "NEAR(', 5)  # FTS syntax in user text is harmless
    assert hits and hits[0].source == "/b"
    assert store.search("!!!") == []


def test_dreams_keep_provenance_after_reread(tmp_path):
    store = Store.open(tmp_path / "r.db")
    doc_id, _ = _doc(store)
    chunk_ids = [c["id"] for c in store.chunks([doc_id])]
    night = store.start_night(seed=7, config={"budget": 10})
    [dream_id] = store.add_dreams(
        [DreamRecord("qa", "Q? A.", "m@1", 3, chunk_ids, {"temperature": 1.0}, night_id=night)]
    )
    _doc(store, text="Changed. Text here.", sha="h9")  # replaces the chunks
    row = store.dreams()[0]
    assert row["id"] == dream_id and row["seed"] == 3
    import json

    assert json.loads(row["source_chunk_ids"]) == chunk_ids
    new_ids = [c["id"] for c in store.chunks([doc_id])]
    assert not set(new_ids) & set(chunk_ids)  # ids never reused
    store.finish_night(night, "rejected", {"dream": 1.0}, {"quiz": 0.1})
    assert store.night(night)["status"] == "rejected"


def test_adapters_and_state(tmp_path):
    store = Store.open(tmp_path / "r.db")
    a = store.add_adapter("night-1", "/x", "base@1", None, "candidate", {})
    store.set_adapter_verdict(a, "kept", {"acc": 0.2})
    assert store.adapter("night-1")["verdict"] == "kept"
    store.set_state("adapter", "night-1")
    assert store.get_state("adapter") == "night-1"
    store.set_state("adapter", None)
    assert store.get_state("adapter") is None
    with pytest.raises(ValueError):
        store.add_adapter("x", "/x", "b", None, "maybe", {})


def test_corrupt_database_is_a_clear_error_and_untouched(tmp_path):
    path = tmp_path / "r.db"
    path.write_bytes(b"this is not sqlite" * 100)
    before = path.read_bytes()
    with pytest.raises(ReverieError, match="not a reverie database or is corrupt"):
        Store.open(path)
    assert path.read_bytes() == before


def test_locked_database_is_a_clear_error(tmp_path):
    path = tmp_path / "r.db"
    Store.open(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process is writing
    try:
        store = Store(db.connect(path, busy_timeout_ms=50), path)
        with pytest.raises(sqlite3.OperationalError) as info:
            store.set_state("k", "v")
        err = db.translate(info.value, path)
        assert "locked by another reverie process" in str(err)
    finally:
        holder.execute("ROLLBACK")
