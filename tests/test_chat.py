"""`reverie chat`, `reverie search`, `reverie status` end to end through the CLI entry point."""

import io
import json

import pytest

from reverie.config import load_settings
from reverie.store import Store
from reverie.store.documents import ChunkSpan
from reverie.wake.chat import recall_query

TEXT = "The Lantern Festival is held on the first Saturday of October. Tellbread is baked with seaweed."


@pytest.fixture
def store_with_doc(home):
    store = Store.open(load_settings().db_path)
    cut = TEXT.index(". ") + 1
    store.put_document(
        source="/notes/vell.md", title="Vell", kind="md", sha256="x", text=TEXT,
        spans=[ChunkSpan(0, cut, 12), ChunkSpan(cut + 1, len(TEXT), 8)],
    )
    yield store
    store.close()


def test_chat_prompt_answers_once_and_stores_the_exchange(home, cli):
    r = cli("--seed", "5", "chat", "--prompt", "What is the capital of France?")
    assert r.code == 0, r.err
    store = Store.open(load_settings().db_path)
    [conv] = store.conversations()
    msgs = store.messages(conv["id"])
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert msgs[0]["content"] == "What is the capital of France?"
    shown = lambda t: "".join(ch for ch in t if ch.isprintable() or ch in "\n\t").strip()  # noqa: E731
    assert shown(msgs[1]["content"]) == shown(r.out)  # the terminal drops control characters (tiny model's gibberish)
    meta = json.loads(msgs[1]["meta"])
    assert meta["sampling"]["seed"] == 5 and meta["model"].startswith("tiny-llama@")


def test_chat_recalls_relevant_chunks(store_with_doc, cli):
    r = cli("chat", "--prompt", "When is the lantern festival?")
    assert r.code == 0, r.err
    [conv] = store_with_doc.conversations()
    meta = json.loads(store_with_doc.messages(conv["id"])[1]["meta"])
    first_chunk = store_with_doc.chunks()[0]["id"]
    assert meta["recalled_chunk_ids"][0] == first_chunk


def test_recall_query_drops_common_words():
    assert recall_query("What is the capital of France?") == "capital France"


def test_interactive_chat_reads_until_eof(home, cli, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("hello there\nsecond question\n"))
    r = cli("chat")
    assert r.code == 0, r.err
    store = Store.open(load_settings().db_path)
    [conv] = store.conversations()
    assert [m["role"] for m in store.messages(conv["id"])] == ["user", "assistant"] * 2
    # continuing the conversation keeps its history
    monkeypatch.setattr("sys.stdin", io.StringIO("third\n/exit\nignored\n"))
    assert cli("chat", "--continue", conv["id"]).code == 0
    assert len(store.messages(conv["id"])) == 6


def test_chat_bad_input(home, cli):
    r = cli("chat", "--prompt", "   ")
    assert r.code == 1 and "empty prompt" in r.err
    r = cli("chat", "--continue", "99", "--prompt", "hi")
    assert r.code == 1 and "no conversation 99" in r.err and "Traceback" not in r.err


def test_search_lists_best_chunks_with_sources(store_with_doc, cli):
    r = cli("search", "seaweed bread")
    assert r.code == 0, r.err
    assert "/notes/vell.md" in r.out and "Tellbread" in r.out
    assert "Lantern" not in r.out.split("Tellbread")[0].split("/notes/vell.md")[-1]
    assert cli("search", "zeppelin").out.strip() == "no matches"


def test_status_counts(store_with_doc, cli):
    r = cli("status")
    assert r.code == 0, r.err
    lines = {ln.split()[0]: ln.split()[-1] for ln in r.out.splitlines() if ln.strip()}
    assert lines["documents"] == "1" and lines["chunks"] == "2" and lines["nights"] == "0"


@pytest.mark.slow
def test_default_model_answers_capital_of_france(default_home, cli):
    r = cli("chat", "--temperature", "0", "--prompt", "What is the capital of France?")
    assert r.code == 0, r.err
    assert "paris" in r.out.lower()
    store = Store.open(default_home / "reverie.db")
    [conv] = store.conversations()
    assert conv["model"].startswith("SmolLM2-135M-Instruct")
    assert len(store.messages(conv["id"])) == 2
