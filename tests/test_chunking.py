"""Chunking: exact offsets, token bounds, overlap, snapping to boundaries, long and odd texts."""

import itertools
import random

import pytest

from reverie.errors import ReverieError
from reverie.wake.chunking import boundary_rank, check_window, chunk_spans, token_offsets

WORDS = "the quick brown fox jumps over lazy dog Paris capital France water boils cell river".split()


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def prose(n_paragraphs: int, seed: int = 0, max_sentences: int = 6) -> str:
    rng = random.Random(seed)
    paragraphs = []
    for _ in range(n_paragraphs):
        sentences = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))).capitalize() + "."
            for _ in range(rng.randint(1, max_sentences))
        ]
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def n_tokens(tok, text: str) -> int:
    return len(tok(text, add_special_tokens=False)["input_ids"])


def check_exact(text: str, spans, chunk_tokens: int) -> None:
    """Offsets index `text`, chunks are trimmed, bounded, in order, and together cover all words."""
    assert spans
    for s in spans:
        chunk = text[s.start_char : s.end_char]
        assert 0 <= s.start_char < s.end_char <= len(text)
        assert chunk == chunk.strip()
        assert 0 < s.n_tokens <= chunk_tokens
    assert spans[0].start_char == len(text) - len(text.lstrip())
    assert spans[-1].end_char == len(text.rstrip())
    for a, b in itertools.pairwise(spans):
        assert a.start_char < b.start_char
        assert b.start_char <= a.end_char or text[a.end_char : b.start_char].isspace()


def test_offsets_exact_bounded_and_whole_words(tok):
    text = prose(40)
    spans = chunk_spans(text, tok, chunk_tokens=64, overlap=8)
    check_exact(text, spans, 64)
    assert len(spans) > 5
    for s in spans:
        # Alone, a chunk re-tokenizes to about as many tokens (its first word loses its space).
        assert n_tokens(tok, text[s.start_char : s.end_char]) <= 64 + 2
    for a in spans[:-1]:
        assert text[a.end_char].isspace(), "a chunk ends inside a word"
    for b in spans[1:]:
        assert text[b.start_char - 1].isspace(), "a chunk starts inside a word"


def test_overlap_is_about_the_requested_tokens(tok):
    text = prose(40, seed=1)
    spans = chunk_spans(text, tok, chunk_tokens=64, overlap=16)
    for a, b in itertools.pairwise(spans):
        assert b.start_char < a.end_char
        shared = n_tokens(tok, text[b.start_char : a.end_char])
        assert 16 // 2 - 2 <= shared <= 16 + 2


def test_no_overlap_means_adjacent_chunks(tok):
    text = prose(30, seed=2)
    spans = chunk_spans(text, tok, chunk_tokens=48, overlap=0)
    check_exact(text, spans, 48)
    for a, b in itertools.pairwise(spans):
        assert a.end_char <= b.start_char and text[a.end_char : b.start_char].isspace()


def test_ends_snap_back_to_paragraph_breaks(tok):
    # Paragraphs of one short sentence: a break always lies in a window's last quarter.
    text = prose(60, seed=3, max_sentences=1)
    spans = chunk_spans(text, tok, chunk_tokens=96, overlap=0)
    assert len(spans) > 3
    for a in spans[:-1]:
        assert text[a.end_char : a.end_char + 2] == "\n\n"


def test_boundary_rank():
    text = "One two. Three four\nfive six.\n\nSeven"
    assert boundary_rank(text, text.index("wo.")) == 0  # inside a word
    assert boundary_rank(text, text.index(" two")) == 1
    assert boundary_rank(text, text.index(" Three")) == 2  # after a sentence
    assert boundary_rank(text, text.index("five")) == 2  # a line break
    assert boundary_rank(text, text.index("\n\nSeven")) == 3
    assert boundary_rank(text, text.index("Seven")) == 3
    assert boundary_rank("日本。東京", 3) == 2


def test_text_without_any_boundary_is_cut_hard(tok):
    text = "abcdefghij" * 500
    spans = chunk_spans(text, tok, chunk_tokens=32, overlap=4)
    check_exact(text, spans, 32)
    assert max(s.n_tokens for s in spans) == 32


def test_multibyte_text_offsets(tok):
    text = "Café déjà vu. 日本語のテキスト。Ünïcödé ✨ emoji 🎉 here.\n\n" * 40
    spans = chunk_spans(text, tok, chunk_tokens=40, overlap=6)
    check_exact(text, spans, 40)
    joined = "".join(text[s.start_char : s.end_char] for s in spans)
    assert "🎉" in joined and "日本語" in joined


def test_short_empty_and_whitespace_texts(tok):
    assert chunk_spans("", tok, 64, 8) == []
    assert chunk_spans(" \n\n\t ", tok, 64, 8) == []
    (only,) = chunk_spans("  Hello there.  \n", tok, 64, 8)
    assert (only.start_char, only.end_char) == (2, 14)


def test_long_text_is_tokenized_in_pieces_consistently(tok):
    text = prose(1200, seed=4)
    assert len(text) > 3 * (1 << 16)
    starts, ends = token_offsets(text, tok)
    whole = tok(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    assert abs(len(starts) - len(whole)) <= 4
    assert list(starts) == sorted(starts)
    spans = chunk_spans(text, tok, chunk_tokens=256, overlap=32)
    check_exact(text, spans, 256)


@pytest.mark.parametrize(("chunk_tokens", "overlap"), [(32, 32), (32, 40), (32, -1), (0, 0)])
def test_bad_window_settings_are_refused(tok, chunk_tokens, overlap):
    with pytest.raises(ReverieError, match="chunk_"):
        check_window(chunk_tokens, overlap)
    with pytest.raises(ReverieError, match="chunk_"):
        chunk_spans("some text", tok, chunk_tokens, overlap)


def test_slow_tokenizer_is_refused():
    class Slow:
        is_fast = False

    with pytest.raises(ReverieError, match="fast"):
        chunk_spans("some text", Slow(), 32, 4)
