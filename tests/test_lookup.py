"""Hybrid search (BM25 + embeddings, reciprocal-rank fusion), embeddings kept per chunk, recall
in chat with the "not from your reading" path, and `reverie quiz --lookup` end to end."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from reverie.config import WakeConfig, load_settings
from reverie.meter.embed import HashEmbedder
from reverie.store import Store
from reverie.store.documents import ChunkSpan, rrf
from reverie.wake.lookup import Lookup, lookup_message

# A crafted embedder that knows meaning the words do not share: "feline" is near "cat".
TOPICS = {"cat": 0, "feline": 0, "kitten": 0, "car": 1, "automobile": 1, "engine": 1, "bread": 2, "loaf": 2}


class TopicEmbedder:
    name = "topics-4"
    relevant = 0.5

    def __init__(self):
        self.calls: list[str] = []

    def encode(self, texts):
        self.calls += list(texts)
        X = np.zeros((len(texts), 4), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().replace(".", " ").replace("?", " ").split():
                if w in TOPICS:
                    X[i, TOPICS[w]] += 1
            if not X[i].any():
                X[i, 3] = 1
        return X / np.linalg.norm(X, axis=1, keepdims=True)


def _put(store, source, texts):
    text = " ".join(texts)
    spans, at = [], 0
    for t in texts:
        spans.append(ChunkSpan(at, at + len(t), len(t.split())))
        at += len(t) + 1
    return store.put_document(source=source, title=source, kind="txt", sha256=str(hash(text)), text=text, spans=spans)


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "reverie.db")
    yield s
    s.close()


def test_rrf_orders_by_summed_reciprocal_ranks():
    fused = rrf({"bm25": [1, 2, 3], "embedding": [3, 4, 1]}, {}, k=60)
    # 1: 1/61 + 1/63; 3: 1/63 + 1/61 (tie: first seen first); 2: 1/62; 4: 1/62
    assert [i for i, _ in fused] == [1, 3, 2, 4]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 63)
    weighted = rrf({"bm25": [1, 2], "embedding": [2, 1]}, {"bm25": 0.1, "embedding": 1.0}, k=1)
    assert [i for i, _ in weighted] == [2, 1]  # the embedding side outweighs
    assert rrf({"bm25": [], "embedding": []}, {}) == []


def test_hybrid_finds_by_meaning_what_bm25_misses_and_by_words_what_embeddings_miss(store):
    _put(store, "/a", ["The feline slept on the warm windowsill all afternoon.",
                       "Zorblax 7 is the serial code printed under the automobile."])
    _put(store, "/b", ["A fresh loaf came out of the oven."])
    emb = TopicEmbedder()
    lookup = Lookup(store, WakeConfig(), embedder=emb)
    assert lookup.embed_missing() == 3
    # BM25 alone: no chunk says "cat"
    assert store.search("cat") == []
    [hit, *_] = lookup.search("cat", 3)
    assert "feline" in hit.text and hit.found_by == "embedding" and hit.similarity == pytest.approx(1.0)
    # a code word only BM25 knows (the embedder sees nothing of it: no topic)
    hits = lookup.search("Zorblax", 3)
    assert "Zorblax" in hits[0].text and hits[0].found_by == "bm25" and hits[0].bm25_rank == 1
    # both sides agree on the car chunk
    hits = lookup.search("automobile Zorblax", 3)
    assert hits[0].found_by == "both" and "Zorblax" in hits[0].text


def test_rereading_a_changed_document_embeds_only_its_changed_chunks(store):
    emb = TopicEmbedder()
    lookup = Lookup(store, WakeConfig(), embedder=emb)
    _put(store, "/a", ["The cat sat.", "The car rolled.", "The bread rose."])
    lookup.embed_missing()
    assert len(emb.calls) == 3
    emb.calls.clear()
    _put(store, "/a", ["The cat sat.", "The automobile stalled.", "The bread rose."])
    assert lookup.embed_missing() == 1
    assert emb.calls == ["The automobile stalled."]
    assert store.count_vectors(emb.name) == 3 and store.count_unembedded(emb.name) == 0
    assert "automobile" in lookup.search("engine", 1)[0].text


def test_a_store_from_before_embeddings_is_backfilled(tmp_path, home, cli):
    from reverie.store import db

    # schema 4, as reverie left stores before embeddings, with a document in it
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    for number, _name, sql in db.migrations()[:4]:
        for statement in db._split(sql):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
    conn.execute("INSERT INTO documents(source, title, kind, sha256, text, read_at, updated_at) "
                 "VALUES ('/old.md', 'Old', 'md', 'x', 'Tellbread is baked with seaweed.', 'now', 'now')")
    conn.execute("INSERT INTO chunks(document_id, ord, start_char, end_char, n_tokens, text) "
                 "VALUES (1, 0, 0, 32, 8, 'Tellbread is baked with seaweed.')")
    conn.close()
    home.mkdir(parents=True, exist_ok=True)
    path.rename(home / "reverie.db")
    s = Store.open(home / "reverie.db")
    assert s.conn.execute("PRAGMA user_version").fetchone()[0] == 5
    assert s.count_unembedded(HashEmbedder().name) == 1
    s.close()
    r = cli("search", "Tellbread seaweed")  # the next search embeds what lacks a vector, then finds it both ways
    assert r.code == 0 and "both" in r.out, r.out + r.err
    s = Store.open(home / "reverie.db")
    assert s.count_unembedded(HashEmbedder().name) == 0
    s.close()
    r = cli("read", "--reindex")
    assert r.code == 0, r.err
    assert "1 chunk(s) embedded" in r.out
    s = Store.open(home / "reverie.db")
    assert s.count_unembedded(HashEmbedder().name) == 0
    s.close()


def test_search_embeds_what_lacks_a_vector_and_shows_the_side(home, cli, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "vell.md").write_text("# Vell\n\nThe Lantern Festival is held on the first Saturday of October.",
                                   encoding="utf-8")
    r = cli("read", notes)
    assert r.code == 0, r.err
    assert "1 embedded" in r.out
    r = cli("search", "Lantern Festival")
    assert r.code == 0, r.err
    assert "found by" in r.out and "both" in r.out and "vell.md" in r.out
    assert cli("search", "zeppelin").out.strip() == "no matches"
    r = cli("search", "  ")
    assert r.code != 0 and r.err.startswith("error:") and "Traceback" not in r.err
    r = cli("read")
    assert r.code != 0 and "error:" in r.err and "--reindex" in r.err


def test_chat_keeps_the_chunks_it_used_and_marks_an_answer_with_nothing_found(home, cli, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "vell.md").write_text("# Vell\n\nThe Lantern Festival is held on the first Saturday of October.",
                                   encoding="utf-8")
    assert cli("read", notes).code == 0
    r = cli("chat", "--prompt", "When is the Lantern Festival?")
    assert r.code == 0, r.err
    assert "looked up: Vell" in r.err
    r = cli("chat", "--prompt", "Tell me about zeppelins.")
    assert r.code == 0, r.err
    assert "not from your reading" in r.err
    store = Store.open(load_settings().db_path)
    first, second = store.conversations()[-2:] if store.conversations()[0]["id"] < store.conversations()[-1]["id"] \
        else store.conversations()[:2][::-1]
    meta = [json.loads(store.messages(c["id"])[1]["meta"]) for c in (first, second)]
    [chunk] = store.chunks()
    assert meta[0]["recalled_chunk_ids"] == [chunk["id"]] and meta[0]["from_reading"] is True
    assert meta[0]["recalled"][0]["found_by"] in ("both", "bm25", "embedding")
    assert meta[1]["recalled_chunk_ids"] == [] and meta[1]["from_reading"] is False
    assert store.messages(first["id"])[0]["content"] == "When is the Lantern Festival?"  # the turn as said
    store.close()


def test_lookup_message_is_the_gold_passage_format():
    from reverie.store.documents import SearchHit

    hit = SearchHit(1, 1, "/v.md", "Vell", 0, 10, "Tellbread is baked.", 1.0)
    assert lookup_message([hit], "What is baked?") == "# Vell\n\nTellbread is baked.\n\nWhat is baked?"
    assert lookup_message([], "What is baked?") == "What is baked?"


def test_hash_embedder_is_deterministic_and_word_based():
    e = HashEmbedder()
    X = e.encode(["Who is Zorblax?", "Zorblax the keeper landed.", "Paris is in France.", ""])
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0)
    assert np.allclose(X, HashEmbedder().encode(["Who is Zorblax?", "Zorblax the keeper landed.", "Paris is in France.", ""]))
    assert X[0] @ X[1] > e.relevant
    assert X[1] @ X[2] < e.relevant  # no word shared (a hash collision at most)


def test_quiz_lookup_end_to_end_on_the_tiny_model(sleepy, cli, tmp_path):
    from reverie.quiz.run import same_passage

    notes = tmp_path / "passages"
    notes.mkdir()
    passages = [("Paris", "Paris is the capital of France, on the river Seine."),
                ("Apollo", "Apollo 11 landed on the Moon in 1969.")]
    for title, text in passages:
        (notes / f"{title}.md").write_text(f"# {title}\n\n{text}\n", encoding="utf-8")
    assert cli("read", notes).code == 0
    quiz = tmp_path / "lookup.jsonl"
    quiz.write_text("\n".join(json.dumps(q) for q in [
        {"question": "What is the capital of France?", "answer": "Paris", "context": passages[0][1], "title": "Paris"},
        {"question": "When did Apollo 11 land on the Moon?", "answer": "1969", "context": passages[1][1],
         "title": "Apollo"},
        {"question": "Who painted the zeppelin?", "answer": "nobody"},
    ]), encoding="utf-8")
    r = cli("quiz", "--quiz", quiz, "--lookup")
    assert r.code == 0, r.err
    for row in ("with lookup: accuracy", "with the gold passage: accuracy", "retrieval recall@1 of the gold passage"):
        assert row in r.out
    r = cli("quiz", "--quiz", quiz, "--lookup", "--json")
    assert r.code == 0, r.err
    [base] = json.loads(r.out)
    assert base["recall_at_k"] == 1.0 and base["n_gold"] == 2 and base["lookup_k"] == 1
    assert base["recall_at"] == {"1": 1.0, "3": 1.0, "5": 1.0} and base["lookup_relevant"] == pytest.approx(2 / 3)
    assert base["lookup_accuracy"] is not None and base["gold_accuracy"] is not None
    assert same_passage("# Paris\n\nParis is the capital of France, on the river Seine.", passages[0][1])
    assert not same_passage(passages[1][1], passages[0][1])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "a", "context": 3}), encoding="utf-8")
    r = cli("quiz", "--quiz", bad, "--lookup")
    assert r.code != 0 and r.err.startswith("error:") and "context" in r.err
