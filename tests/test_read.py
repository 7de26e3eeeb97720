"""Reading documents: extraction of every kind, `reverie read` on files and folders, re-reads,
changed files, and every kind of bad input (one `error:` line, exit 1, no traceback)."""

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from reverie.config import WakeConfig
from reverie.errors import ReverieError
from reverie.store import Store
from reverie.wake import reader
from reverie.wake.extract import BINARY, EMPTY, Unreadable, extract, kind_of, looks_binary
from reverie.wake.reader import UNSUPPORTED, read_paths


def pdf_bytes(text: str, title: str | None = None) -> bytes:
    """A minimal one-page PDF showing `text` in Helvetica, with a correct cross-reference table."""
    stream = f"BT /F1 24 Tf 72 700 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if title:
        objects.append(f"<< /Title ({title}) >>".encode())
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    info = b" /Info %d 0 R" % len(objects) if title else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    return bytes(out)


HTML = (
    "<!DOCTYPE html><html><head><title> Tides &amp; Moons </title><style>p { color: red }</style>"
    "<script>var secret = 'scriptword';</script></head><body><h1>Heading</h1>"
    "<p>First paragraph\n   spans source lines.</p><p>Line one<br>line two</p>"
    "<pre>  code\n    indented</pre><ul><li>apple</li><li>pear <b>bold</b></li></ul>"
    "<!-- hidden comment --></body></html>"
)


# -- extraction -----------------------------------------------------------------------------------


def test_plain_text_normalised():
    raw = "\ufeffLine one\r\nLine two\rLine three\n".encode()
    doc = extract(raw, Path("/x/notes.txt"), "txt")
    assert doc.text == "Line one\nLine two\nLine three\n"
    assert (doc.title, doc.kind, doc.warnings) == ("notes", "txt", [])
    assert doc.sha256 == hashlib.sha256(raw).hexdigest()


def test_markdown_title_is_first_heading_outside_code():
    raw = b"Intro line\n\n```sh\n# not a title\n```\n\n## Sub\n\n# The Title #\n\nBody."
    doc = extract(raw, Path("a.md"), "md")
    assert doc.title == "The Title" and doc.kind == "md"
    assert extract(b"no heading here", Path("plain.md"), "md").title == "plain"


def test_rst_title():
    assert extract(b"Guide\n=====\n\nText.", Path("g.rst"), "txt").title == "Guide"


def test_html_text_title_and_paragraphs():
    doc = extract(HTML.encode(), Path("page.html"), "html")
    assert doc.title == "Tides & Moons"
    assert doc.text == (
        "Heading\n\nFirst paragraph spans source lines.\n\nLine one\nline two\n\n"
        "  code\n    indented\n\napple\n\npear bold"
    )
    assert "scriptword" not in doc.text and "color" not in doc.text and "hidden" not in doc.text


def test_html_title_falls_back_to_h1_then_stem():
    assert extract(b"<h1>Only H1</h1><p>x</p>", Path("p.htm"), "html").title == "Only H1"
    assert extract(b"<p>x</p>", Path("p.htm"), "html").title == "p"


def test_deeply_nested_html_does_not_recurse():
    raw = b"<div>" * 5000 + b"deep text" + b"</div>" * 5000
    assert extract(raw, Path("deep.html"), "html").text == "deep text"


def test_pdf_text_and_metadata_title():
    doc = extract(pdf_bytes("Hello PDF world", title="My Paper"), Path("paper.pdf"), "pdf")
    assert (doc.text, doc.title, doc.kind) == ("Hello PDF world", "My Paper", "pdf")
    assert extract(pdf_bytes("Untitled text"), Path("scan.pdf"), "pdf").title == "scan"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"%PDF-1.4\nthis is not really a pdf", "not a readable PDF"),
        (b"plain text named .pdf", "not a readable PDF"),
        (pdf_bytes(""), "no extractable text"),
    ],
)
def test_bad_pdfs(raw, reason):
    with pytest.raises(Unreadable, match=reason):
        extract(raw, Path("bad.pdf"), "pdf")


def test_binary_empty_latin1_and_utf16():
    with pytest.raises(Unreadable, match=BINARY):
        extract(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", Path("x.txt"), "txt")
    with pytest.raises(Unreadable, match=EMPTY):
        extract(b" \n\t\r\n", Path("x.md"), "md")
    doc = extract("café au lait".encode("latin-1"), Path("menu.txt"), "txt")
    assert doc.text == "caf\ufffd au lait"
    assert len(doc.warnings) == 1 and "not valid UTF-8" in doc.warnings[0]
    assert extract("hello wörld".encode("utf-16"), Path("u.txt"), "txt").text == "hello wörld"


def test_looks_binary_and_kinds():
    assert looks_binary(b"abc\x00def")
    assert looks_binary(bytes(range(1, 32)) * 10)
    assert not looks_binary("naïve text\twith tabs\n".encode())
    assert not looks_binary("latin-1 é".encode("latin-1"))
    assert [kind_of(Path(p)) for p in ("a.TXT", "b.markdown", "c.htm", "d.pdf", "e.rst", "f.py")] == [
        "txt", "md", "html", "pdf", "txt", None,
    ]  # fmt: skip


# -- reading through the CLI ---------------------------------------------------------------------


def words(tag: str, n: int = 400) -> str:
    return " ".join(f"{tag}{i % 17}" if i % 9 else f"{tag}. " for i in range(n))


@pytest.fixture
def mixed(tmp_path) -> Path:
    """txt, md, html (nested), latin-1 txt; a .bin, binary disguised as .txt, an empty file,
    and a hidden folder that must be ignored."""
    d = tmp_path / "docs"
    (d / "sub" / "deeper").mkdir(parents=True)
    (d / ".git").mkdir()
    (d / "alpha.txt").write_text("Alpha notes about zebras.\n\n" + words("zebra"))
    (d / "guide.md").write_text("# Guide to Otters\n\nOtters hold hands while they sleep.\n")
    (d / "sub" / "page.html").write_text(HTML)
    (d / "sub" / "deeper" / "menu.txt").write_bytes("Caf\xe9 menu: cr\xeape, th\xe9.".encode("latin-1"))
    (d / "blob.bin").write_bytes(os.urandom(512))
    (d / "sub" / "disguised.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00" + os.urandom(2000))
    (d / "empty.txt").write_bytes(b"")
    (d / ".git" / "HEAD.txt").write_text("ref: refs/heads/main")
    (d / ".hidden.md").write_text("# hidden")
    return d


def open_store(home: Path) -> Store:
    return Store.open(home / "reverie.db")


def snapshot(home: Path) -> tuple:
    with open_store(home) as store:
        docs = [tuple(r) for r in store.documents()]
        chunks = [tuple(r) for r in store.chunks()]
    return docs, chunks


def assert_error(result, *fragments: str) -> None:
    assert result.code == 1, (result.out, result.err)
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.err + result.out


def test_read_mixed_folder(home, cli, mixed):
    result = cli("read", mixed)
    assert result.code == 0, result.err
    assert "read 4 file(s): 4 new, 0 updated, 0 unchanged; 3 skipped" in result.out
    for name, reason in [("blob.bin", UNSUPPORTED), ("disguised.txt", BINARY), ("empty.txt", EMPTY)]:
        assert any(name in line and reason in line for line in result.out.splitlines()), result.out
    assert "not valid UTF-8" in result.err and "disguised.txt: binary file" in result.err
    assert "Traceback" not in result.err

    with open_store(home) as store:
        docs = {Path(d["source"]).name: d for d in store.documents()}
        assert set(docs) == {"alpha.txt", "guide.md", "page.html", "menu.txt"}
        assert Path(docs["guide.md"]["source"]) == (mixed / "guide.md").resolve()
        assert {d["title"] for d in docs.values()} == {"alpha", "Guide to Otters", "Tides & Moons", "menu"}
        for doc in docs.values():
            text = store.document_by_source(doc["source"])["text"]
            chunks = store.chunks([doc["id"]])
            assert chunks and [c["ord"] for c in chunks] == list(range(len(chunks)))
            assert all(c["text"] == text[c["start_char"] : c["end_char"]] for c in chunks)
        assert len(store.chunks([docs["alpha.txt"]["id"]])) > 1  # long enough for several windows
        assert [h.title for h in store.search("otters")] == ["Guide to Otters"]
        assert store.search("scriptword") == []


def test_reread_is_unchanged_then_a_change_replaces_chunks(home, cli, mixed):
    assert cli("read", mixed).code == 0
    before = snapshot(home)

    again = cli("read", mixed)
    assert again.code == 0
    assert "0 new, 0 updated, 4 unchanged" in again.out and "0 chunk(s) added" in again.out
    assert snapshot(home) == before

    (mixed / "guide.md").write_text("# Guide to Otters\n\nOtters juggle pebbles when bored.\n")
    changed = cli("read", mixed)
    assert "0 new, 1 updated, 3 unchanged" in changed.out
    with open_store(home) as store:
        assert store.search("hands") == []
        assert [h.text for h in store.search("pebbles")] == ["# Guide to Otters\n\nOtters juggle pebbles when bored."]
        assert store.counts()["documents"] == 4
        assert store.counts()["chunks"] == len(before[1])


def test_named_files_and_unknown_suffix(home, cli, tmp_path, mixed):
    log = tmp_path / "server.log"
    log.write_text("Kestrels hover over the motorway verge.")
    result = cli("read", log, mixed / "guide.md", mixed / "guide.md")
    assert result.code == 0, result.err
    assert "2 new" in result.out
    with open_store(home) as store:
        assert store.document_by_source(str(log.resolve()))["kind"] == "txt"
        assert store.counts()["documents"] == 2


def test_pdf_in_folder_and_broken_pdf_skipped(home, cli, tmp_path):
    d = tmp_path / "papers"
    d.mkdir()
    (d / "good.pdf").write_bytes(pdf_bytes("Quasars are very bright", title="Quasars"))
    (d / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj garbage")
    result = cli("read", d)
    assert result.code == 0, result.err
    assert "1 new" in result.out and "broken.pdf" in result.out and "not a readable PDF" in result.out
    with open_store(home) as store:
        assert [h.title for h in store.search("quasars")] == ["Quasars"]


def test_large_file_skipped_in_folder(home, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("REVERIE_WAKE__MAX_FILE_MB", "0.001")  # about 1 KB
    d = tmp_path / "d"
    d.mkdir()
    (d / "small.txt").write_text("small file")
    (d / "big.txt").write_text("big " * 1000)
    result = cli("read", d)
    assert result.code == 0
    assert "1 new" in result.out and "MB limit" in result.out and "warning: skipped" in result.err
    assert_error(cli("read", d / "big.txt"), "big.txt", "MB limit")


def test_symlink_loop_and_hidden_entries(home, cli, tmp_path):
    d = tmp_path / "loop"
    (d / "a").mkdir(parents=True)
    (d / "a" / "note.txt").write_text("Ravens remember faces.")
    (d / "a" / "up").symlink_to(d, target_is_directory=True)
    (d / "a" / "again.txt").symlink_to(d / "a" / "note.txt")
    result = cli("read", d)
    assert result.code == 0 and "1 new" in result.out


# -- bad input: one error line, exit 1, nothing half-done -----------------------------------------


def test_missing_path_writes_nothing(home, cli, mixed):
    result = cli("read", mixed / "guide.md", mixed / "nope.txt")
    assert_error(result, "no such file or folder", "nope.txt")
    with open_store(home) as store:
        assert store.counts()["documents"] == 0


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("empty.txt", b"", "empty"),
        ("blank.md", b"  \n\n \t\n", "empty"),
        ("disguised.txt", b"\x00\x01\x02binary" * 50, "binary file"),
        ("data.dat", b"\x00\x01\x02binary" * 50, "binary file"),
        ("broken.pdf", b"%PDF-1.4 nonsense", "not a readable PDF"),
        ("blank.pdf", pdf_bytes(""), "no extractable text"),
    ],
)
def test_bad_named_file_is_an_error(home, cli, tmp_path, name, content, fragment):
    (tmp_path / name).write_bytes(content)
    assert_error(cli("read", tmp_path / name), name, fragment)


def test_binary_named_second_stops_before_writing(home, cli, tmp_path, mixed):
    (tmp_path / "x.txt").write_bytes(b"\x00" * 100)
    assert_error(cli("read", mixed / "guide.md", tmp_path / "x.txt"), "binary file")
    with open_store(home) as store:
        assert store.counts()["documents"] == 0


def test_folders_with_nothing_readable(home, cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_error(cli("read", empty), "nothing readable", "no files with a supported suffix")

    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"\x89PNG")
    (junk / "b.txt").write_bytes(b"")
    (junk / ".c.txt").write_text("hidden text")
    assert_error(cli("read", junk), "nothing readable", "2 file(s) skipped")

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.pdf").write_bytes(b"%PDF-1.4 nonsense")
    (broken / "bin.txt").write_bytes(b"\x00" * 64)
    assert_error(cli("read", broken), "nothing readable", "bad.pdf: not a readable PDF")


def test_bad_chunk_settings(home, cli, mixed, monkeypatch):
    monkeypatch.setenv("REVERIE_WAKE__CHUNK_OVERLAP", "300")
    assert_error(cli("read", mixed), "chunk_overlap")


def test_corrupt_store_is_refused_and_left_alone(home, cli, mixed):
    home.mkdir(parents=True)
    garbage = b"this is not a database at all, just some bytes " * 200
    (home / "reverie.db").write_bytes(garbage)
    assert_error(cli("read", mixed), "not a reverie database or is corrupt")
    assert (home / "reverie.db").read_bytes() == garbage


# -- the Python API -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_unchanged_files_are_not_extracted_again(tmp_path, tok, mixed, monkeypatch):
    store = Store.open(tmp_path / "r.db")
    calls: list = []
    report = read_paths(store, [mixed], tok, WakeConfig(), progress=calls.append)
    assert len(report.new) == 4 and report.chunks_added == store.counts()["chunks"]
    # empty and unsupported files are skipped unopened; the binary one is found out on reading
    assert [(e.phase, e.done, e.total) for e in calls] == [("read", i, 5) for i in range(1, 6)]

    extracted: list[str] = []

    def spy(raw, path, kind):
        extracted.append(path.name)
        return extract(raw, path, kind)

    monkeypatch.setattr(reader, "extract", spy)
    report = read_paths(store, [mixed], tok, WakeConfig())
    assert len(report.unchanged) == 4 and report.chunks_added == 0
    assert extracted == ["disguised.txt"]  # only the file that is not in the store
    assert sorted(reason for _, reason in report.skipped) == [BINARY, EMPTY, UNSUPPORTED]


def test_warnings_reach_the_log(tmp_path, tok):
    (tmp_path / "menu.txt").write_bytes(b"cr\xeape")
    logged: list[str] = []
    report = read_paths(Store.open(tmp_path / "r.db"), [tmp_path / "menu.txt"], tok, WakeConfig(), log=logged.append)
    assert report.warnings and logged == [f"warning: {report.warnings[0]}"]


def test_store_errors_are_not_swallowed(tmp_path, tok, mixed):
    store = Store.open(tmp_path / "r.db")
    store.conn.execute("CREATE TRIGGER boom BEFORE INSERT ON chunks BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
    with pytest.raises(sqlite3.IntegrityError):
        read_paths(store, [mixed / "guide.md"], tok, WakeConfig())
    assert store.counts()["documents"] == 0


def test_nothing_named(tmp_path, tok):
    with pytest.raises(ReverieError, match="nothing to read"):
        read_paths(Store.open(tmp_path / "r.db"), [], tok, WakeConfig())


def test_overlapping_paths_read_each_file_once(tmp_path, tok, mixed):
    report = read_paths(Store.open(tmp_path / "r.db"), [mixed, mixed / "sub", mixed], tok, WakeConfig())
    assert len(report.new) == 4 and len(report.skipped) == 3
