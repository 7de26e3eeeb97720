"""Cutting a document into overlapping, token-bounded chunks with exact character offsets.

    spans = chunk_spans(text, tokenizer, chunk_tokens=256, overlap=32)
    [text[s.start_char : s.end_char] for s in spans]   # the chunk texts

Why tokens and not characters: chunks are recalled into the model's context and become
training text, so their cost is counted in the model's own tokens. Why offsets: the store keeps
the document once and each chunk as `text[start:end]`, so a chunk can always be traced back to
the exact place it came from. Why overlap: a fact that straddles a cut is still whole in one of
the two neighbouring chunks. Why snapping: a window whose end falls inside a word (or mid-sentence)
makes a poor memory, so the end moves back to the best paragraph, sentence or word boundary in
its last quarter, and the next window's start moves forward to a word boundary in the overlap.
"""

from __future__ import annotations

from array import array

from reverie.errors import ReverieError
from reverie.store.documents import ChunkSpan

# Texts are tokenized in pieces of about this many characters, cut after a newline: token
# offsets for a 20 MB file as one list of Python tuples would take gigabytes. A cut at a line
# break is a pre-tokenizer boundary for every common tokenizer, so counts barely change.
_PIECE_CHARS = 1 << 16
_SENTENCE_END = ".!?。！？"
_LOOK = 16  # characters examined on each side of a boundary


def check_window(chunk_tokens: int, overlap: int) -> None:
    """Refuse settings under which windows could not advance."""
    if chunk_tokens < 1:
        raise ReverieError(f"wake.chunk_tokens must be at least 1 (got {chunk_tokens})")
    if not 0 <= overlap < chunk_tokens:
        raise ReverieError(
            f"wake.chunk_overlap ({overlap}) must be at least 0 and smaller than wake.chunk_tokens ({chunk_tokens})"
        )


def token_offsets(text: str, tokenizer) -> tuple[array, array]:
    """(starts, ends): the character span in `text` of every token, without special tokens."""
    if not getattr(tokenizer, "is_fast", False):
        raise ReverieError("reading needs a fast (Rust) tokenizer with offset mapping; this model has none")
    starts, ends = array("q"), array("q")
    pos = 0
    while pos < len(text):
        stop = len(text)
        if stop - pos > _PIECE_CHARS:
            newline = text.rfind("\n", pos + _PIECE_CHARS // 2, pos + _PIECE_CHARS)
            stop = newline + 1 if newline != -1 else pos + _PIECE_CHARS
        enc = tokenizer(
            text[pos:stop],
            add_special_tokens=False,
            return_offsets_mapping=True,
            return_attention_mask=False,
            verbose=False,  # no "longer than the model's maximum length" warning: we cut it ourselves
        )
        for s, e in enc["offset_mapping"]:
            starts.append(pos + s)
            ends.append(pos + e)
        pos = stop
    return starts, ends


def boundary_rank(text: str, p: int) -> int:
    """How good character position `p` is for a cut: 3 paragraph break, 2 sentence end or line
    break, 1 between words, 0 inside a word."""
    before = text[max(0, p - _LOOK) : p]
    after = text[p : p + _LOOK]
    gap = before[len(before.rstrip()) :] + after[: len(after) - len(after.lstrip())]
    last = before.rstrip()[-1:]
    if "\n\n" in gap:
        return 3
    # CJK sentence marks end a sentence without a following space.
    if "\n" in gap or (last and last in _SENTENCE_END and (gap or last in "。！？")):
        return 2
    return 1 if gap else 0


def chunk_spans(text: str, tokenizer, chunk_tokens: int, overlap: int) -> list[ChunkSpan]:
    """Windows of at most `chunk_tokens` tokens over `text`, consecutive ones sharing about
    `overlap` tokens, each trimmed of surrounding whitespace. Offsets index `text` exactly."""
    check_window(chunk_tokens, overlap)
    starts, ends = token_offsets(text, tokenizer)
    n = len(starts)
    spans: list[ChunkSpan] = []
    snap_from = max(1, chunk_tokens - chunk_tokens // 4)  # the window's last quarter
    i = 0
    while i < n:
        end = min(i + chunk_tokens, n)
        if end < n:
            end = _snap_end(text, starts, i + snap_from, end)
        span = _trimmed(text, starts, ends, i, end)
        if span is not None:
            spans.append(span)
        if end >= n:
            break
        i = _snap_start(text, starts, max(end - overlap, i + 1), end, overlap)
    return spans


def _snap_end(text: str, starts: array, lo: int, hi: int) -> int:
    """The token index in [lo, hi] where cutting is best; the latest one among equals."""
    best, best_rank = hi, boundary_rank(text, starts[hi])
    k = hi - 1
    while best_rank < 3 and k >= lo:
        rank = boundary_rank(text, starts[k])
        if rank > best_rank:
            best, best_rank = k, rank
        k -= 1
    return best


def _snap_start(text: str, starts: array, lo: int, end: int, overlap: int) -> int:
    """The first token in the first half of the overlap that begins a word, else `lo`."""
    for k in range(lo, min(end, lo + overlap // 2 + 1)):
        if boundary_rank(text, starts[k]) > 0:
            return k
    return lo


def _trimmed(text: str, starts: array, ends: array, i: int, end: int) -> ChunkSpan | None:
    """Tokens [i, end) as a span without surrounding whitespace; None if they are all whitespace."""
    start_char, end_char = starts[i], ends[end - 1]
    while start_char < end_char and text[start_char].isspace():
        start_char += 1
    while end_char > start_char and text[end_char - 1].isspace():
        end_char -= 1
    if start_char == end_char:
        return None
    # Count only the tokens that overlap the trimmed span.
    first, last = i, end
    while first < last and ends[first] <= start_char:
        first += 1
    while last > first and starts[last - 1] >= end_char:
        last -= 1
    return ChunkSpan(start_char, end_char, last - first)
