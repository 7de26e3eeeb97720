"""Users, isolation, forgetting and export (issue 22 parts 4 and 6), on the tiny model.

A served home with the owner's shared reading and two users, alice and bob, each with a token:
whatever alice sends or says, or is trained for her, bob never sees by any route. Then the CLI
(`reverie users`, `sleep --user`, `forget`, `export`), a forget after a kept night, and the
migration of a store from before users existed."""

from __future__ import annotations

import json
import sqlite3

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fastapi.testclient import TestClient  # noqa: E402
from test_serve import TEXT, Live, http, tiny_settings  # noqa: E402

from reverie.serve.app import create_app  # noqa: E402
from reverie.store import Store, db  # noqa: E402
from reverie.store.documents import ChunkSpan  # noqa: E402
from reverie.store.users import adapter_key, scoped_source  # noqa: E402

OWNER_KEY = "owner-key-for-tests"
ROUTES = [("POST", "/v1/chat/completions", {"model": "reverie", "messages": [{"role": "user", "content": "a trace?"}]}),
          ("POST", "/v1/completions", {"model": "reverie", "prompt": "a trace?"}),
          ("POST", "/v1/documents", {"text": "a trace?", "source": "trace.txt"}),
          ("POST", "/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": "a trace?"}),
          ("GET", "/v1/models", None), ("GET", "/v1/models/reverie", None), ("GET", "/v1/documents", None)]


def _shared(store):
    cut = TEXT.index(". ") + 1
    store.put_document(source="/notes/vell.md", title="Vell", kind="md", sha256="x", text=TEXT,
                       spans=[ChunkSpan(0, cut, 12), ChunkSpan(cut + 1, len(TEXT), 8)])


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    home = tmp_path_factory.mktemp("users") / "home"
    settings = tiny_settings(home, tiny_model_dir, REVERIE_SERVE__API_KEY=OWNER_KEY)
    with Store.open(settings.db_path) as store:
        _shared(store)
        tokens = {name: store.add_user(name) for name in ("alice", "bob")}
        ids = {name: store.user(name)["id"] for name in tokens}
    with Live(settings) as server:
        server.tokens, server.ids = tokens, ids
        yield server
    torch.set_num_threads(threads)


def as_(served, name: str) -> openai.OpenAI:
    key = OWNER_KEY if name == "owner" else served.tokens[name]
    return openai.OpenAI(base_url=f"{served.url}/v1", api_key=key, max_retries=0)


def chat(client, text, **kw):
    return client.chat.completions.create(model="reverie", messages=[{"role": "user", "content": text}],
                                          max_tokens=3, **kw)


def send(served, name: str, text: str, source: str) -> dict:
    key = OWNER_KEY if name == "owner" else served.tokens[name]
    status, _, body = http("POST", f"{served.url}/v1/documents", {"text": text, "source": source},
                           {"Authorization": f"Bearer {key}"})
    assert status == 200, body
    return json.loads(body)


def sources(response) -> set[str]:
    return {c["source"] for c in response.model_extra["citations"]}


# -- tokens ----------------------------------------------------------------------------------------
def test_tokens_are_kept_hashed_and_a_wrong_one_leaves_no_trace(served):
    raw = b"".join(p.read_bytes() for p in served.settings.home.glob("reverie.db*"))
    assert all(t.encode() not in raw for t in served.tokens.values())  # only their sha256
    with served.store() as store:
        before = store.counts()
    for method, path, body in ROUTES:
        for headers in ({}, {"Authorization": "Bearer rv-wrong"}, {"Authorization": f"Basic {OWNER_KEY}"}):
            status, _, text = http(method, served.url + path, body, headers)
            assert status == 401, (path, headers, text)
            assert json.loads(text)["error"]["code"] == "invalid_api_key"
    assert http("GET", f"{served.url}/health")[0] == 200  # public
    with pytest.raises(openai.AuthenticationError):
        chat(openai.OpenAI(base_url=f"{served.url}/v1", api_key="sk-dummy", max_retries=0), "no such key")
    with served.store() as store:
        assert store.counts() == before  # refused: nothing stored


# -- isolation -------------------------------------------------------------------------------------
def test_a_user_never_sees_another_users_documents_or_conversations(served):
    alice, bob, owner = as_(served, "alice"), as_(served, "bob"), as_(served, "owner")
    sent = alice.post("/documents", cast_to=object,  # the openai client's own way to a route it does not know
                      body={"text": "Alice's locker code is zebra quartz. Her parrot is called Quillon.",
                            "source": "locker.txt"})
    assert sent["status"] == "new" and sent["source"] == "locker.txt" and sent["chunks"] >= 1
    chat(alice, "Remember that my bicycle is painted vermilion.")
    mine = chat(alice, "What is my zebra quartz locker code? What colour is my vermilion bicycle?")
    alice_sources = sources(mine)
    assert "serve:document/locker.txt" in alice_sources  # her document (its source as she named it)...
    assert any(s.startswith("serve:conversation/") for s in alice_sources)  # ...and her conversation
    for client in (bob, owner):  # neither bob nor the owner recalls them
        theirs = chat(client, "What is my zebra quartz locker code? What colour is my vermilion bicycle?",
                      store=False)
        assert not sources(theirs) & alice_sources
        assert not any("zebra" in c["text"] or "vermilion" in c["text"] for c in theirs.model_extra["citations"])
    shared = {c["source"] for c in chat(bob, "When is the lantern festival?", store=False).model_extra["citations"]}
    assert shared == {"/notes/vell.md"}  # the shared reading, for bob as for alice
    hers = sources(chat(alice, "When is the lantern festival?", store=False))
    # ... beside which alice's own conversations may come up: the tiny model's random replies in them
    # can share words with any question (only alice's store=True chats were kept).
    assert "/notes/vell.md" in hers and all(s == "/notes/vell.md" or s.startswith("serve:") for s in hers), hers
    status, _, body = http("GET", f"{served.url}/v1/documents", headers={"Authorization": f"Bearer {served.tokens['bob']}"})
    assert status == 200 and json.loads(body)["data"] == []
    status, _, body = http("GET", f"{served.url}/v1/documents",
                           headers={"Authorization": f"Bearer {served.tokens['alice']}"})
    assert [d["source"] for d in json.loads(body)["data"]] == ["locker.txt"]
    # the same source from bob is bob's own document, not alice's replaced
    assert send(served, "bob", "Bob's locker holds a trombone.", "locker.txt")["status"] == "new"
    with served.store() as store:
        rows = store.conn.execute("SELECT user_id, text FROM documents WHERE source LIKE '%:serve:document/locker.txt'").fetchall()
        assert {(r["user_id"], r["text"][:5]) for r in rows} == {(served.ids["alice"], "Alice"),
                                                                (served.ids["bob"], "Bob's")}
        owners = {r["user_id"] for r in store.conn.execute("SELECT user_id FROM conversations")}
        assert served.ids["alice"] in owners


def test_resending_another_users_history_does_not_continue_their_conversation(served):
    alice, bob = as_(served, "alice"), as_(served, "bob")
    q = "Alice's secret plan involves a hot air balloon."
    a = chat(alice, q, seed=1).choices[0].message.content
    history = [{"role": "user", "content": q}, {"role": "assistant", "content": a},
               {"role": "user", "content": "What is the plan?"}]
    bob.chat.completions.create(model="reverie", messages=history, max_tokens=3)
    with served.store() as store:
        rows = store.conn.execute(
            "SELECT c.user_id, count(m.id) AS n FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "WHERE m.content = ? GROUP BY c.id", (q,)).fetchall()
    assert sorted((r["user_id"], r["n"]) for r in rows) == [(served.ids["alice"], 1), (served.ids["bob"], 1)]


def test_a_users_adapter_answers_only_them(served, tiny):
    from reverie.models.lora import save_adapter
    from reverie.models.tiny import moved_lora

    lora = moved_lora(tiny.model, served.settings.sleep, std=0.5)
    with served.store() as store:
        night = store.start_night(seed=0, config={}, user_id=served.ids["alice"])
        name = f"night-{night}"
        path = save_adapter(lora, served.settings.adapters_dir / name, tiny.identity)
        store.add_adapter(name, str(path), tiny.identity, night, "kept", {}, user_id=served.ids["alice"])
        store.set_state(adapter_key(served.ids["alice"]), name)
    alice, bob, owner = as_(served, "alice"), as_(served, "bob"), as_(served, "owner")
    assert name in [m.id for m in alice.models.list()]
    kw = {"seed": 4, "temperature": 0, "store": False}
    mine = chat(alice, "hello", **kw)
    assert mine.system_fingerprint.endswith(f"/{name}/night-{night}")  # `reverie` is base + her adapter
    for client in (bob, owner):
        assert name not in [m.id for m in client.models.list()]
        assert chat(client, "hello", **kw).system_fingerprint.endswith("/base")
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        with pytest.raises(openai.NotFoundError):
            client.completions.create(model=name, prompt="hi", max_tokens=2)
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve(name)
    assert alice.completions.create(model=name, prompt="hi", max_tokens=2).system_fingerprint.endswith(
        f"/night-{night}")


# -- the CLI ---------------------------------------------------------------------------------------
def test_users_add_list_remove(home, cli, tiny_model_dir):
    r = cli("users", "add", "carol")
    assert r.code == 0, r.err
    token = r.out.strip().splitlines()[-1]
    assert token.startswith("rv-") and len(token) > 40
    r = cli("users", "add", "carol")
    assert r.code == 1 and "exists" in r.err and "Traceback" not in r.err
    assert cli("users", "add", "no spaces please").code == 1
    r = cli("users", "list")
    assert "carol" in r.out and "active" in r.out and token not in r.out
    settings = tiny_settings(home, tiny_model_dir)
    app = create_app(settings, autoload=False)
    with TestClient(app) as c:
        app.state.service.load()
        auth = {"Authorization": f"Bearer {token}"}
        assert c.get("/v1/models").status_code == 401  # a user exists: a token is needed
        assert c.get("/v1/models", headers=auth).status_code == 200
        assert cli("users", "remove", "carol").code == 0
        assert c.get("/v1/models", headers=auth).status_code == 401  # revoked at once
        r = cli("users", "add", "carol")
        assert r.code == 0
        fresh = r.out.strip().splitlines()[-1]
        assert fresh != token and c.get("/v1/models", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    for args, message in ((("users", "remove", "nobody"), "no user"), (("sleep", "--user", "nobody"), "no user"),
                          (("export", "--user", "nobody"), "no user"), (("forget",), "say what to forget"),
                          (("forget", "/nowhere.md"), "no document"), (("forget", "--conversation", "99"),
                                                                       "no conversation"),
                          (("serve", "--no-auth", "--host", "0.0.0.0"), "loopback only")):
        r = cli(*args)
        assert r.code == 1 and message in r.err and "Traceback" not in r.err, (args, r.err)


def test_no_auth_on_loopback_makes_every_caller_the_owner(home, tiny_model_dir):
    settings = tiny_settings(home, tiny_model_dir)
    with Store.open(settings.db_path) as store:
        store.add_user("dave")
    app = create_app(settings, autoload=False, no_auth=True)
    with TestClient(app) as c:
        app.state.service.load()
        assert c.get("/v1/models").status_code == 200


# -- a user's night --------------------------------------------------------------------------------
def _qa_dreams(store, chunk_ids, qa):
    from reverie.store.dreams import DreamRecord

    return store.add_dreams([DreamRecord("qa", f"Q: {q}\nA: {a}", "tiny", 1, chunk_ids) for q, a in qa])


def _read(store, source, text, user_id=None, kind="md"):
    doc, _ = store.put_document(source=source, title=source, kind=kind, sha256=text, text=text,
                                spans=[ChunkSpan(0, len(text), 8)], user_id=user_id)
    return [c["id"] for c in store.chunks([doc])]


def test_each_night_learns_the_shared_reading_and_its_own_only(kept_nights, cli):
    """Who learns what (the gate is not tested here: alice's quiz asks bob's fact too)."""
    from conftest import QA

    from reverie.app import Reverie
    from reverie.dream.run import since_last_night
    from reverie.sleep import records

    rv = Reverie.from_settings()
    store = rv.store
    for name in ("alice", "bob"):
        store.add_user(name)
    alice, bob = store.user("alice")["id"], store.user("bob")["id"]
    shared = _qa_dreams(store, _read(store, "/notes/facts.md", "Paris is the capital of France."), QA[:1])
    owners = _qa_dreams(store, _read(store, "serve:conversation/1", "User: hi", kind="conversation"), QA[1:2])
    alices = _qa_dreams(store, _read(store, "serve:conversation/2", "User: apollo", alice, "conversation"), QA[1:2])
    bobs = _qa_dreams(store, _read(store, scoped_source(bob, "serve:b.txt"), "Water boils.", bob, "txt"), QA[2:])
    ids = lambda rows: {r["id"] for r in rows}  # noqa: E731
    assert ids(records.pending_dreams(store)) == set(shared + owners)
    assert ids(records.pending_dreams(store, alice)) == set(shared + alices)
    assert ids(records.pending_dreams(store, bob)) == set(shared + bobs)
    assert {c.document_id for c in since_last_night(store, alice)} == set()  # every chunk she may read is dreamt

    r = cli("sleep", "--quiz", kept_nights, "--user", "alice")
    assert r.code == 0, r.err
    assert "kept: night-1 is now in use for alice" in r.out, r.out
    rv = Reverie.from_settings()
    store = rv.store
    trained = {d["id"] for d in records.night_dreams(store, 1, ("train", "replay"))}
    assert trained == set(shared + alices)  # the shared reading and her own conversation, nothing else
    assert store.night(1)["user_id"] == alice and store.adapter("night-1")["user_id"] == alice
    assert store.get_state(adapter_key(alice)) == "night-1" and store.get_state("adapter") is None
    assert ids(records.pending_dreams(store, alice)) == set()
    assert ids(records.pending_dreams(store)) == set(shared + owners)  # the owner's night still learns them
    assert ids(records.pending_dreams(store, bob)) == set(shared + bobs)


# -- forgetting ------------------------------------------------------------------------------------
@pytest.fixture
def kept_nights(sleepy, monkeypatch):
    """Every night kept (the gate is not what is tested here), two epochs: fast."""
    from reverie.sleep import verdict

    real = verdict.decide
    monkeypatch.setattr(verdict, "decide", lambda *a: dataclass_replace(real(*a), keep=True))
    monkeypatch.setenv("REVERIE_SLEEP__EPOCHS", "2")
    return sleepy


def dataclass_replace(obj, **kw):
    import dataclasses

    return dataclasses.replace(obj, **kw)


def _night_texts(store, night_id):
    from reverie.sleep import records

    return [d["text"] for d in records.night_dreams(store, night_id, ("train", "replay"))]


def test_a_forgotten_document_is_gone_and_the_adapter_rolls_back(kept_nights, cli, tmp_path):
    from conftest import QA

    from reverie.app import Reverie

    quiz = kept_nights
    notes = tmp_path / "docs"
    notes.mkdir()
    (notes / "france.md").write_text("Paris is the capital of France, on the river Seine.", encoding="utf-8")
    secret = notes / "zorblax.md"
    secret.write_text("Zorblax the lighthouse keeper landed on the Moon in 1969 with Apollo 11.", encoding="utf-8")

    def read_and_dream(path, qa):
        assert cli("read", path).code == 0
        rv = Reverie.from_settings()
        doc = rv.store.document_by_source(str(path.resolve()))
        return _qa_dreams(rv.store, [c["id"] for c in rv.store.chunks([doc["id"]])], qa)

    read_and_dream(notes / "france.md", QA[:1])
    r = cli("sleep", "--quiz", quiz)
    assert r.code == 0 and "kept: night-1" in r.out, r.err
    secret_dreams = read_and_dream(secret, [("Who landed on the Moon?", "Zorblax")])
    r = cli("sleep", "--quiz", quiz)
    assert r.code == 0 and "kept: night-2" in r.out, r.err
    rv = Reverie.from_settings()
    night2 = rv.store.adapter("night-2")
    assert rv.store.get_state("adapter") == "night-2" and any("Zorblax" in t for t in _night_texts(rv.store, 2))

    settings = rv.settings
    app = create_app(settings, autoload=False)
    with TestClient(app) as c:
        app.state.service.load()

        def ask():
            r = c.post("/v1/chat/completions", json={"model": "reverie", "max_tokens": 2, "store": False,
                                                      "messages": [{"role": "user", "content": "Who is Zorblax?"}]})
            assert r.status_code == 200, r.text
            return r.json()

        before = ask()
        assert str(secret.resolve()) in {x["source"] for x in before["citations"]}
        assert before["system_fingerprint"].endswith("/night-2/night-2")

        r = cli("forget", secret)
        assert r.code == 0, r.err
        assert "adapters that learned from it, files deleted: night-2" in r.out
        assert "in use for owner: night-1 (was night-2)" in r.out

        after = ask()
        assert after["citations"] == []  # gone from citations...
        assert after["system_fingerprint"].endswith("/night-1/night-1")  # ...and the adapter is from before it
        r = c.post("/v1/chat/completions", json={"model": "night-2", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 404
    rv = Reverie.from_settings()
    store = rv.store
    assert rv.search("Zorblax") == [] and store.document_by_source(str(secret.resolve())) is None
    assert store.adapter("night-2")["verdict"] == "forgotten" and not (settings.adapters_dir / "night-2").exists()
    assert store.get_state("adapter") == "night-1"
    assert not set(secret_dreams) & {d["id"] for d in store.dreams(status=None)}
    assert store.integrity_ok()
    raw = b"".join(p.read_bytes() for p in settings.home.glob("reverie.db*")).lower()
    assert b"zorblax" not in raw  # not in a free page, the full-text index or the log either
    assert cli("use", "night-2").code == 1

    # the next night continues night-1 and never trains on it; night-2's other dreams are learned again
    read_and_dream(_write(notes / "water.md", "Water boils at 100 degrees."), QA[2:])
    r = cli("sleep", "--quiz", quiz)
    assert r.code == 0 and "kept: night-3" in r.out, r.err
    store = Reverie.from_settings().store
    texts = _night_texts(store, 3)
    assert texts and not any("zorblax" in t.lower() for t in texts)
    from reverie.models.lora import read_meta

    assert read_meta(store.adapter("night-3")["path"])["parent"] == "night-1"
    assert night2["night_id"] == 2


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_forget_a_conversation_and_a_whole_user_and_export(served, home, cli, tmp_path, monkeypatch):
    alice = as_(served, "alice")
    chat(alice, "My cat is named Pumpernickel.")
    send(served, "alice", "Alice keeps bees on the roof.", "bees.txt")
    monkeypatch.setenv("REVERIE_HOME", str(served.settings.home))
    out = tmp_path / "alice.jsonl"
    r = cli("export", "--user", "alice", "--out", out)
    assert r.code == 0, r.err
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    kinds = {r["type"] for r in records}
    assert records[0]["type"] == "user" and records[0]["name"] == "alice" and "token_sha256" not in records[0]
    assert {"conversation", "document"} <= kinds
    text = out.read_text(encoding="utf-8")
    assert "Pumpernickel" in text and "bees on the roof" in text
    assert "trombone" not in text and "Vell" not in text  # bob's and the shared reading are not hers
    conv = next(r for r in records if r["type"] == "conversation" and "Pumpernickel" in json.dumps(r))
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]

    r = cli("forget", "--conversation", conv["id"])
    assert r.code == 0 and "forgot conversation" in r.out, r.err
    with served.store() as store:
        assert not store.conn.execute("SELECT 1 FROM messages WHERE content LIKE '%Pumpernickel%'").fetchall()
        assert store.document_by_source(f"serve:conversation/{conv['id']}") is None
    assert "Pumpernickel" not in json.dumps(chat(alice, "What is my cat Pumpernickel called?",
                                                 store=False).model_extra["citations"])

    r = cli("forget", "bees.txt", "--user", "alice")  # a document she sent, by the name she sent it with
    assert r.code == 0 and "forgot serve:document/bees.txt of alice: 1 document(s)" in r.out, r.out
    with served.store() as store:
        assert not store.conn.execute("SELECT 1 FROM documents WHERE text LIKE '%bees on the roof%'").fetchall()

    r = cli("forget", "--user", "alice")
    assert r.code == 0 and "forgot the user alice" in r.out, r.err
    with served.store() as store:
        assert store.conn.execute("SELECT count(*) FROM users WHERE name = 'alice'").fetchone()[0] == 0
        for table in ("documents", "conversations", "nights", "adapters"):
            assert store.conn.execute(f"SELECT count(*) FROM {table} WHERE user_id = ?",
                                      (served.ids["alice"],)).fetchone()[0] == 0
        assert store.get_state(adapter_key(served.ids["alice"])) is None
        assert store.document_by_source("/notes/vell.md") is not None  # the shared reading stays
    with pytest.raises(openai.AuthenticationError):
        chat(alice, "still here?")
    assert cli("export", "--user", "alice").code == 1


# -- the migration ---------------------------------------------------------------------------------
def test_a_store_from_before_users_upgrades_and_keeps_its_data(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    for number, _name, sql in db.migrations()[:3]:  # the schema as it was before 0004
        for statement in db._split(sql):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
    cut = TEXT.index(". ") + 1
    conn.execute("INSERT INTO documents(source, title, kind, sha256, text, read_at, updated_at) "
                 "VALUES ('/notes/vell.md', 'Vell', 'md', 'x', ?, 't', 't')", (TEXT,))
    conn.executemany("INSERT INTO chunks(document_id, ord, start_char, end_char, n_tokens, text) VALUES (1, ?, ?, ?, 8, ?)",
                     [(0, 0, cut, TEXT[:cut]), (1, cut + 1, len(TEXT), TEXT[cut + 1 :])])
    conn.execute("INSERT INTO nights(status, seed, config, started_at) VALUES ('kept', 7, '{}', 't')")
    conn.execute("INSERT INTO dreams(night_id, generator, text, model, seed, created_at) "
                 "VALUES (1, 'qa', 'Q: When? A: October.', 'm@1', 3, 't')")
    conn.execute("INSERT INTO dream_sources(dream_id, chunk_id) VALUES (1, 1)")
    conn.execute("INSERT INTO night_dreams(night_id, dream_id, role) VALUES (1, 1, 'train')")
    conn.execute("INSERT INTO adapters(name, path, base_model, night_id, verdict, metrics, created_at) "
                 "VALUES ('night-1', '/a', 'base@1', 1, 'kept', '{}', 't')")
    conn.execute("INSERT INTO conversations(title, model, adapter_id, started_at) VALUES ('c', 'm', 1, 't')")
    conn.execute("INSERT INTO messages(conversation_id, ord, role, content, created_at) VALUES (1, 0, 'user', 'hi', 't')")
    conn.execute("INSERT INTO state(key, value) VALUES ('adapter', 'night-1')")
    conn.close()

    from reverie.sleep import records

    store = Store.open(path)  # migrates
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(db.migrations())
    assert store.integrity_ok() and store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert [h.source for h in store.search("lantern festival")] == ["/notes/vell.md"]
    assert [h.source for h in store.search("lantern festival", user_id=1)] == ["/notes/vell.md"]  # shared reading
    [adapter] = store.adapters()
    assert adapter["name"] == "night-1" and adapter["verdict"] == "kept" and adapter["user_id"] is None
    [conv] = store.conversations()
    assert conv["adapter_id"] == adapter["id"] and conv["user_id"] is None and conv["n_messages"] == 1
    assert store.get_state("adapter") == "night-1"
    assert [r["id"] for r in records.learned_dreams(store)] == [1]
    assert records.visible_ids(store, None) == {1} == records.visible_ids(store, 1)  # from the shared reading
    assert {tuple(r) for r in store.conn.execute("SELECT chunk_id, document_id FROM chunk_documents")} == {(1, 1), (2, 1)}
    assert store.add_adapter("night-2", "/b", "base@1", None, "candidate", {}) == 2  # ids go on
    store.set_adapter_verdict(adapter["id"], "forgotten")  # the new verdict is allowed
    assert [r["id"] for r in records.learned_dreams(store)] == []  # its night's adapter is forgotten: unlearned
    store.close()
