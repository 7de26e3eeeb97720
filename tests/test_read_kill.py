"""SIGKILL in the middle of `reverie read`: every stored document is complete, the database is
sound, and reading again finishes the job, with the earlier documents unchanged."""

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reverie.store import Store

N_FILES = 400
KILL_AFTER = 20  # documents committed before the kill


def write_files(folder: Path, paragraphs: int) -> None:
    folder.mkdir(exist_ok=True)
    for i in range(N_FILES):
        body = "\n\n".join(
            f"Note {i}, paragraph {p}: the heron number {i * 7 + p} waits by the river for fish." * 3
            for p in range(paragraphs)
        )
        (folder / f"note{i:03d}.txt").write_text(body)


def committed(db: Path) -> int | None:
    """Documents committed so far, read without disturbing the writer; None while unknowable
    (no file yet, tables not created yet, or a lock held just now)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
        try:
            return conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return None


def kill_mid_read(folder: Path, db: Path) -> bool:
    """Start `reverie read folder`, SIGKILL it once KILL_AFTER documents are in; False when it
    finished first."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reverie", "read", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                assert proc.returncode == 0, proc.stderr.read().decode()
                return False
            if (committed(db) or 0) >= KILL_AFTER:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.01)
        pytest.fail("reverie read neither finished nor committed documents in time")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_kill_leaves_only_whole_documents(home, cli, tmp_path):
    folder = tmp_path / "notes"
    db = home / "reverie.db"
    # Bigger files make each document slower to read; keep growing them until the kill lands.
    for paragraphs in (8, 40, 200):
        for leftover in home.glob("reverie.db*"):
            leftover.unlink()
        write_files(folder, paragraphs)
        if kill_mid_read(folder, db):
            break
    else:
        pytest.fail("reverie read always finished before it could be killed")

    with Store.open(db) as store:
        assert store.integrity_ok()
        store.conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
        docs = store.documents()
        assert KILL_AFTER <= len(docs) < N_FILES
        for doc in docs:
            text = store.document_by_source(doc["source"])["text"]
            assert text == Path(doc["source"]).read_text()
            chunks = store.chunks([doc["id"]])
            assert [c["ord"] for c in chunks] == list(range(len(chunks))) and chunks
            assert all(c["text"] == text[c["start_char"] : c["end_char"]] for c in chunks)
            assert chunks[-1]["end_char"] == len(text.rstrip())
        done_before = len(docs)

    result = cli("read", folder)
    assert result.code == 0, result.err
    assert f"read {N_FILES} file(s): {N_FILES - done_before} new, 0 updated, {done_before} unchanged" in result.out
    with Store.open(db) as store:
        assert store.counts()["documents"] == N_FILES
        assert store.integrity_ok()
