"""Reading files and folders into the store: `reverie read PATH...` and `Reverie.read`.

    report = read_paths(store, ["notes/", "paper.pdf"], tokenizer, settings.wake,
                        progress=lambda done, total, path: ..., log=print)
    report.new, report.updated, report.unchanged, report.skipped, report.warnings

Rules, so that a command line can never do half of what it was asked silently:
- Every named path is checked (it exists; a named file is not empty, too large or binary)
  before anything is written. A missing path, or a folder with nothing readable in it, is an
  error. Only what shows on extraction (a broken PDF named alone, a folder whose every file
  fails) stops a run midway, and then the documents already written are complete.
- Inside a folder (walked recursively, a folder's files in name order before its subfolders;
  hidden entries such as .git skipped; symlinked folders followed once) a file that cannot be
  read is skipped with its reason: unsupported type, empty, binary, too large, a broken PDF.
  Named on its own, the same file is an error; a named file with an unknown suffix is read as
  plain text unless it is binary.
- Text that is not valid UTF-8 is read with U+FFFD replacements and a warning.
- Each document is written in one transaction (`Store.put_document`): a kill leaves every
  document either complete or absent. An unchanged file (same SHA-256 of its bytes) is
  recognised before extraction and tokenization, so reading a folder again is cheap; a changed
  one has its chunks replaced; the vectors of its unchanged chunks are kept, and only new or
  changed chunks are embedded (after every file is written: a kill before leaves chunks without a
  vector, which the next read or search embeds).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from reverie.config import WakeConfig
from reverie.errors import ReverieError
from reverie.progress import Event, Progress
from reverie.wake.chunking import check_window, chunk_spans
from reverie.wake.extract import EMPTY, SNIFF_BYTES, SUFFIXES, Unreadable, extract, kind_of, sniff

UNSUPPORTED = "unsupported type"
_MIB = 1 << 20  # max_file_mb counts mebibytes



@dataclass
class ReadReport:
    """What one `read_paths` call did. Paths are the resolved absolute paths (the sources)."""

    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    warnings: list[str] = field(default_factory=list)
    chunks_added: int = 0
    chunks_embedded: int = 0  # chunks given a vector: the changed ones, and any read without one

    @property
    def read(self) -> int:
        """Files that are in the store now: new, updated or unchanged."""
        return len(self.new) + len(self.updated) + len(self.unchanged)


@dataclass(frozen=True)
class _Item:
    path: Path  # resolved
    kind: str
    folder: Path | None  # the named folder it was found in; None when named itself


@dataclass
class _Run:
    """One call's bookkeeping: the report, the log, and what happened inside each named folder."""

    report: ReadReport
    log: Callable[[str], None] | None
    read_in: dict[Path, int] = field(default_factory=dict)
    skipped_in: dict[Path, list[tuple[str, str]]] = field(default_factory=dict)

    def warn(self, msg: str) -> None:
        self.report.warnings.append(msg)
        if self.log is not None:
            self.log(f"warning: {msg}")

    def skip(self, path: Path, reason: str, folder: Path) -> None:
        self.report.skipped.append((str(path), reason))
        self.skipped_in.setdefault(folder, []).append((str(path), reason))
        # An empty or unsupported file is unremarkable; a broken or oversized one deserves a word.
        if reason not in (EMPTY, UNSUPPORTED):
            self.warn(f"skipped {path}: {reason}")

    def nothing_readable(self, folder: Path) -> ReverieError:
        skipped = self.skipped_in.get(folder, [])
        supported = ", ".join(sorted(SUFFIXES))
        if not skipped:
            return ReverieError(f"nothing readable in {folder}: no files with a supported suffix ({supported})")
        shown = "; ".join(f"{Path(p).name}: {r}" for p, r in skipped[:3])
        more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        return ReverieError(
            f"nothing readable in {folder}: {len(skipped)} file(s) skipped ({shown}{more}); supported: {supported}"
        )


def read_paths(
    store,
    paths: Iterable[str | os.PathLike],
    tokenizer,
    wake_cfg: WakeConfig,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    lookup=None,
) -> ReadReport:
    """Read files and folders into `store`; see the module docstring for the rules.

    `progress(Event('read', done, total, path))` after each file (reverie.progress); `log(msg)` gets each warning.
    `lookup` (reverie.wake.lookup.Lookup): then every chunk without a vector is embedded
    (Event('embed', ...)), changed and new chunks and any a store read before had none for.
    Raises ReverieError for the errors listed in the module docstring.
    """
    check_window(wake_cfg.chunk_tokens, wake_cfg.chunk_overlap)
    run = _Run(ReadReport(), log)
    items = _plan(run, [Path(p) for p in paths], int(wake_cfg.max_file_mb * _MIB))
    report = run.report
    for done, item in enumerate(items, start=1):
        try:
            outcome, n_chunks, warnings = _read_one(store, item, tokenizer, wake_cfg)
        except Unreadable as exc:
            if item.folder is None:
                raise ReverieError(f"cannot read {item.path}: {exc.reason}") from None
            run.skip(item.path, exc.reason, item.folder)
        else:
            getattr(report, outcome).append(str(item.path))
            report.chunks_added += n_chunks
            for msg in warnings:
                run.warn(msg)
            if item.folder is not None:
                run.read_in[item.folder] += 1
        if progress is not None:
            progress(Event("read", done, len(items), str(item.path)))
    for folder, count in run.read_in.items():
        if count == 0:
            raise run.nothing_readable(folder)
    if lookup is not None:
        report.chunks_embedded = lookup.embed_missing(progress)
    return report


def _read_one(store, item: _Item, tokenizer, wake_cfg: WakeConfig) -> tuple[str, int, list[str]]:
    """(outcome, chunks added, warnings) for one file; raises Unreadable."""
    try:
        raw = item.path.read_bytes()
    except OSError as exc:
        raise Unreadable(f"cannot open ({exc.strerror})") from None
    source = str(item.path)
    row = store.document_by_source(source)
    if row is not None and row["sha256"] == hashlib.sha256(raw).hexdigest():
        return "unchanged", 0, []
    doc = extract(raw, item.path, item.kind)
    spans = chunk_spans(doc.text, tokenizer, wake_cfg.chunk_tokens, wake_cfg.chunk_overlap)
    _, outcome = store.put_document(
        source=source, title=doc.title, kind=doc.kind, sha256=doc.sha256, text=doc.text, spans=spans
    )
    return outcome, len(spans), doc.warnings


def _plan(run: _Run, paths: list[Path], max_bytes: int) -> list[_Item]:
    """Check every named path and list the files to read, before anything is written.

    Files in folders that need not be opened (unsupported suffix, empty, too large) are skipped
    here. A file reached twice (named twice, named and inside a named folder, through a symlink)
    is read once.
    """
    if not paths:
        raise ReverieError("nothing to read: name at least one file or folder")
    for path in paths:
        if not path.exists():
            raise ReverieError(f"no such file or folder: {path}")
    items: list[_Item] = []
    seen: set[Path] = set()
    for path in paths:
        real = path.resolve()
        if path.is_dir():
            found = 0  # readable files in this folder, including ones another named path reaches first
            added = len(items)
            for file in _walk(real):
                kind, real_file = kind_of(file), file.resolve()
                if real_file in seen:
                    found += kind is not None
                    continue
                seen.add(real_file)
                reason = UNSUPPORTED if kind is None else _screen(real_file, max_bytes)
                if reason is not None:
                    run.skip(real_file, reason, real)
                    continue
                items.append(_Item(real_file, kind, real))
                found += 1
            if found == 0:
                raise run.nothing_readable(real)
            if len(items) > added:  # judged again after reading: extraction may still skip them all
                run.read_in.setdefault(real, 0)
        elif real not in seen:
            seen.add(real)
            kind = kind_of(path) or "txt"  # named explicitly: an unknown suffix is read as text
            reason = _screen(real, max_bytes) or _sniff_file(real, kind)
            if reason is not None:
                raise ReverieError(f"cannot read {path}: {reason}")
            items.append(_Item(real, kind, None))
    return items


def _screen(path: Path, max_bytes: int) -> str | None:
    """Why `path` need not be opened at all (empty, too large, not a regular file), else None."""
    try:
        st = path.stat()
    except OSError as exc:
        return f"cannot open ({exc.strerror})"
    if not path.is_file():
        return "not a regular file"
    if st.st_size == 0:
        return EMPTY
    if st.st_size > max_bytes:
        return f"larger than the {max_bytes / _MIB:g} MB limit ({st.st_size / _MIB:.1f} MB; see wake.max_file_mb)"
    return None


def _sniff_file(path: Path, kind: str) -> str | None:
    """The binary check of `extract`, done early for named files so a bad one stops the run
    before anything is written."""
    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(SNIFF_BYTES), kind)
    except OSError as exc:
        return f"cannot open ({exc.strerror})"


def _walk(root: Path) -> Iterable[Path]:
    """Files under `root`: a folder's files in name order, then its subfolders the same way.

    Hidden entries (.git, .DS_Store) are left out. Symlinked folders are followed, but each real
    folder is entered once: a link pointing back up the tree cannot loop.
    """
    visited: set[Path] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        real = folder.resolve()
        if real in visited:
            continue
        visited.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue  # an unreadable subfolder has nothing we can read
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                subfolders.append(Path(entry.path))
            else:
                yield Path(entry.path)
        stack.extend(reversed(subfolders))  # the stack pops the last first: keep name order
