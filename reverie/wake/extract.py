"""Text and a title from a file's bytes: plain text, Markdown, reStructuredText, HTML and PDF.

    doc = extract(path.read_bytes(), path, kind_of(path) or "txt")
    doc.text, doc.title, doc.kind, doc.sha256, doc.warnings

`extract` raises `Unreadable(reason)` for bytes it cannot turn into text (binary data, a broken
or image-only PDF, nothing but whitespace); the reader decides whether that skips the file or
stops the run. Text is normalised the same way for every kind: a UTF-8 BOM is dropped, line
endings become "\\n", NUL characters are removed, so stored chunk offsets mean the same thing
everywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

# Suffix -> the kind stored with the document (the store documents txt | md | html | pdf).
SUFFIXES: dict[str, str] = {
    ".txt": "txt",
    ".text": "txt",
    ".rst": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}

EMPTY = "empty"
BINARY = "binary file"
SNIFF_BYTES = 8192
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Control bytes that plain text never contains (tab, newlines, form feed, backspace and ESC do occur).
_CONTROL = frozenset(range(32)) - {8, 9, 10, 12, 13, 27} | {127}


class Unreadable(Exception):
    """The file holds no text we can read; `reason` is short, e.g. 'binary file'."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Extracted:
    text: str
    title: str
    kind: str
    sha256: str  # of the raw bytes, so an unchanged file is recognised before extraction
    warnings: list[str] = field(default_factory=list)


def kind_of(path: Path) -> str | None:
    """The kind for a supported suffix, else None."""
    return SUFFIXES.get(path.suffix.lower())


def sniff(head: bytes, kind: str) -> str | None:
    """Why the file starting with `head` cannot be read as `kind` (BINARY), else None."""
    # A PDF is binary by design; UTF-16 text is full of NUL bytes, and its BOM says so.
    if kind == "pdf" or head.startswith(_UTF16_BOMS):
        return None
    return BINARY if looks_binary(head) else None


def looks_binary(head: bytes) -> bool:
    """True for data that is not text: a NUL byte, or more than 5% control bytes.

    Bytes >= 0x80 count as text: they are UTF-8 or a legacy 8-bit encoding, both of which we read.
    """
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b in _CONTROL)
    return controls > 0.05 * len(head)


def extract(raw: bytes, path: Path, kind: str) -> Extracted:
    """Extract text and title from `raw`, the bytes of `path`, read as `kind` (see SUFFIXES)."""
    warnings: list[str] = []
    if kind == "pdf":
        text, title = _pdf(raw)
    else:
        if (reason := sniff(raw[:SNIFF_BYTES], kind)) is not None:
            raise Unreadable(reason)
        if raw.startswith(_UTF16_BOMS):
            source = raw.decode("utf-16", errors="replace")
        else:
            source = _decode(raw, path, warnings)
        if kind == "html":
            text, title = _html(source)
        else:
            text = _normalise(source)
            title = _markdown_title(text) if kind == "md" else _rst_title(text)
    if not text.strip():
        raise Unreadable(EMPTY if kind != "pdf" else "PDF has no extractable text (scanned images?)")
    return Extracted(
        text=text,
        title=title or path.stem,
        kind=kind,
        sha256=hashlib.sha256(raw).hexdigest(),
        warnings=warnings,
    )


def _decode(raw: bytes, path: Path, warnings: list[str]) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        warnings.append(
            f"{path} is not valid UTF-8 (first bad byte at {exc.start}); undecodable bytes were replaced with U+FFFD"
        )
        return raw.decode("utf-8", errors="replace")


def _normalise(text: str) -> str:
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


# -- titles -------------------------------------------------------------------------------------

_ATX_H1 = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+.:_])\1{2,}\s*$")


def _markdown_title(text: str) -> str:
    """The first `# heading` outside fenced code (where '#' starts a shell comment, not a title)."""
    in_fence = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := _ATX_H1.match(line)):
            return m.group(1).strip()
    return ""


def _rst_title(text: str) -> str:
    """A reStructuredText title: the first line underlined at least its own length.

    Plain text that happens to be underlined the same way gets a sensible title too.
    """
    lines = text.split("\n", 200)[:200]  # a title sits at the top; don't scan a whole book
    for line, under in itertools.pairwise(lines):
        if line.strip() and _RST_UNDERLINE.match(under) and len(under.rstrip()) >= len(line.rstrip()):
            return line.strip()
    return ""


# -- HTML ---------------------------------------------------------------------------------------

# <title> is read separately; <head> itself is not dropped because html.parser nests the whole
# body inside it when </head> is missing.
_DROP = frozenset({"script", "style", "noscript", "template", "title", "svg", "iframe", "object"})
_SPACES = re.compile(r"\s+")
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "dd", "details", "dialog", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "nav", "ol", "p", "section", "summary", "table", "tr", "ul",
        "caption", "body", "html",
    }
)  # fmt: skip


def _html(source: str) -> tuple[str, str]:
    """Visible text with one blank line between blocks (paragraphs, headings, list items, rows),
    and the page's title (its <title>, else its first <h1>)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_normalise(source), "html.parser")
    title = " ".join(soup.title.get_text().split()) if soup.title else ""
    if not title and (h1 := soup.find("h1")):
        title = " ".join(h1.get_text().split())
    return _Blocks().walk(soup), title


class _Blocks:
    """The text of an HTML tree as blocks. Whitespace inside a block is collapsed as a browser
    would; <pre> keeps its own. The walk uses an explicit stack: deeply nested (or never closed)
    tags must not hit the recursion limit."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.current: list[str] = []

    def close(self) -> None:
        lines = (line.strip() for line in "".join(self.current).split("\n"))  # "\n" only from <br>
        block = "\n".join(line for line in lines if line)
        if block:
            self.blocks.append(block)
        self.current.clear()

    def walk(self, soup) -> str:
        from bs4 import Comment, Declaration, Doctype, NavigableString, ProcessingInstruction

        skipped = (Comment, Declaration, Doctype, ProcessingInstruction)
        stack = [(iter(soup.children), False)]
        while stack:
            children, is_block = stack[-1]
            node = next(children, None)
            if node is None:
                stack.pop()
                if is_block:
                    self.close()
            elif isinstance(node, NavigableString):
                if not isinstance(node, skipped):
                    self.current.append(_SPACES.sub(" ", node))  # source line breaks are just spaces
            elif node.name in _DROP:
                continue
            elif node.name == "br":
                self.current.append("\n")
            elif node.name == "pre":
                self.close()
                if pre := node.get_text().strip("\n"):
                    self.blocks.append(pre)
            else:
                block = node.name in _BLOCK
                if block:
                    self.close()
                elif node.name in ("td", "th"):
                    self.current.append(" ")  # cells of a row stay on one line, apart
                stack.append((iter(node.children), block))
        self.close()
        return "\n\n".join(self.blocks)


# -- PDF ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet(logger_name: str):
    """pypdf logs every quirk of a malformed file; our one skip reason or error says enough."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _pdf(raw: bytes) -> tuple[str, str]:
    from pypdf import PdfReader

    with _quiet("pypdf"):
        # pypdf raises many exception types on damaged files; any of them means the same to the user.
        try:
            reader = PdfReader(io.BytesIO(raw))
            if reader.is_encrypted and not reader.decrypt(""):
                raise Unreadable("encrypted PDF (needs a password)")
            pages = [page.extract_text() or "" for page in reader.pages]
        except Unreadable:
            raise
        except Exception as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise Unreadable(f"not a readable PDF ({detail})") from None
        try:
            title = (reader.metadata.title or "") if reader.metadata else ""
        except Exception:  # a broken info dictionary costs only the title
            title = ""
    text = "\n\n".join(_normalise(p).strip() for p in pages if p.strip())
    return text, " ".join(str(title).split())
