"""`reverie demo` end to end (tiny model), and the error path's robustness to odd file names."""

import pytest

from reverie.config import load_settings
from reverie.store import Store


def test_demo_reads_searches_and_chats(home, cli):
    r = cli("demo")
    assert r.code == 0, r.err
    assert "Lantern Festival" in r.out  # the search step found the sample's festival section
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
