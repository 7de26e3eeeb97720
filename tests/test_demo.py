"""`reverie demo` end to end (tiny model), and the error path's robustness to odd file names."""

import json

import pytest

from reverie.config import load_settings
from reverie.store import Store


def test_demo_reads_searches_and_chats(home, cli):
    r = cli("demo")
    assert r.code == 0, r.err
    assert "Lantern Festival" in r.out  # the search step found the sample's festival section
    assert r.out.startswith("-- wake: read --\n") and "None" not in r.out
    store = Store.open(load_settings().db_path)
    counts = store.counts()
    assert counts["documents"] == 1 and counts["chunks"] >= 1
    assert counts["conversations"] == 1 and counts["messages"] == 4
    # running it again re-reads nothing
    assert "0 new, 0 updated, 1 unchanged" in cli("demo").out


def test_rich_markup_in_paths_does_not_break_errors(home, cli, tmp_path):
    r = cli("read", str(tmp_path / "a[/b].txt"))
    assert r.code == 1
    assert "a[/b].txt" in r.err and "Traceback" not in r.err


def test_missing_path_creates_no_store(home, cli, tmp_path):
    assert cli("read", str(tmp_path / "nope.txt")).code == 1
    assert not (home / "reverie.db").exists()


@pytest.mark.slow
def test_demo_on_default_model(default_home, cli):
    r = cli("demo")
    assert r.code == 0, r.err
    assert "paris" in r.out.lower()


def test_demo_cycle_reads_dreams_sleeps_and_shows_the_verdict(home, cli, monkeypatch):
    """The whole cycle on the tiny model: a night on the sample with its quiz, its dreams, the
    gate's figures and verdict, and questions asked of the base model and the night's adapter."""
    monkeypatch.setenv("REVERIE_MODEL__THREADS", "1")
    monkeypatch.setenv("REVERIE_MODEL__DTYPE", "float32")
    monkeypatch.setenv("REVERIE_SLEEP__EPOCHS", "1")
    monkeypatch.setenv("REVERIE_QUIZ__PROBE_N", "2")
    monkeypatch.setenv("REVERIE_QUIZ__PROBE_MAX_NEW_TOKENS", "6")
    monkeypatch.setenv("REVERIE_QUIZ__OWN_TEXT_PARAGRAPHS", "2")
    monkeypatch.setenv("REVERIE_QUIZ__MAX_NEW_TOKENS", "6")
    r = cli("demo", "--cycle")
    assert r.code == 0, r.err
    for part in ("wake: read", "dream and sleep", "its dreams", "cloze", "the gate", "what changed",
                 "Who founded Vell Harbour? (answer: Ada Korrin)", "night-1>"):
        assert part in r.out, (part, r.out)
    assert "kept: night-1" in r.out or "rejected: night-1" in r.out
    store = Store.open(load_settings().db_path)
    night = store.night(1)
    assert night["status"] in ("kept", "rejected") and json.loads(night["config"])["seed"] == 0
    # Again: after a kept night there is nothing new to sleep on (said, not an error); a rejected
    # night's dreams stay pending, so a second night sleeps on them.
    again = cli("demo", "--cycle")
    assert again.code == 0, again.err
    if night["status"] == "kept":
        assert "nothing new to sleep on" in again.err
    else:
        assert "night 2" in again.out
