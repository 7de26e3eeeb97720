"""Drift guards: signs that a set has left the "sweet spot" between collapse and nonsense.

Diversity metrics reward noise as much as variety, so they are read together with these guards:

- rare-word rate: a model drifting into nonsense invents or misuses words;
- degenerate repetition: a model collapsing inside a text gets caught in a loop.

(The third guard, perplexity under a reference model, needs a model: `reverie.meter.model_metrics`.)

    from reverie.meter.drift import rare_word_rate, degenerate_flags
    rare_word_rate(["the cat sat on the zorblax"])       # 1/6
    degenerate_flags(["ha " * 20, "a normal sentence"])  # [True, False]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

import numpy as np

from reverie.meter.tokens import TokenizedSet, as_tokenized

RARE_ZIPF = 3.0
WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")  # letters only, inner apostrophes allowed


@cache
def zipf(word: str, lang: str = "en") -> float:
    """wordfreq's Zipf frequency: log10 of occurrences per billion words (0 when unseen)."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, lang)


def rare_word_rate(texts: Sequence[str] | TokenizedSet, threshold: float = RARE_ZIPF, lang: str = "en") -> float:
    """Rare-word rate: the share of word tokens (letters only; numbers and punctuation are not
    words) in the whole set whose Zipf frequency (Speer 2022, `wordfreq`) is below `threshold`.
    Zipf 3 is once per million words: names and technical terms land below it, and so do the
    made-up words of a model drifting into nonsense. 0.0 for a set without words.

    Each distinct word is looked up once (and cached across calls), so the cost follows the
    vocabulary, not the length of the set."""
    ts = as_tokenized(texts)
    is_word = np.array([WORD_RE.fullmatch(t) is not None for t in ts.vocab], dtype=bool)
    is_rare = np.array([w and zipf(t, lang) < threshold for t, w in zip(ts.vocab, is_word, strict=True)], dtype=bool)
    occurrences = np.bincount(ts.ids, minlength=len(ts.vocab))
    words = occurrences[is_word].sum()
    return float(occurrences[is_rare].sum() / words) if words else 0.0


def degenerate_flags(
    texts: Sequence[str] | TokenizedSet, max_period: int = 32, min_repeats: int = 3, min_span: int = 12
) -> np.ndarray:
    """Degenerate repetition, per text: True when the text is caught in an n-gram loop, i.e. it
    contains a unit of 1 to `max_period` tokens that repeats back to back at least `min_repeats`
    times, the loop covering at least `min_span` tokens, and the unit holds at least one word
    (so a line of dashes or a table rule is not a loop). This is the "repetition" failure of
    Holtzman et al. 2020 ("The Curious Case of Neural Text Degeneration"): once a model repeats a
    phrase a few times it rarely stops. "very very very good" is not a loop; "ha ha ha ..." twelve
    times, or a sentence said three times in a row, is.

    A loop of period p is a run of positions i with token[i] == token[i + p]; a run of r such
    positions means a span of r + p tokens repeating a unit of p tokens (r + p) / p times.
    """
    ts = as_tokenized(texts)
    flags = np.zeros(ts.n_texts, dtype=bool)
    ids, text_of = ts.ids, ts.text_of
    is_word = np.array([any(ch.isalnum() for ch in t) for t in ts.vocab], dtype=bool)
    words_before = np.concatenate([[0], np.cumsum(is_word[ids])]) if len(ids) else np.zeros(1, np.int64)
    for period in range(1, max_period + 1):
        if len(ids) <= period:
            break
        same = (ids[:-period] == ids[period:]) & (text_of[:-period] == text_of[period:])
        edges = np.diff(np.concatenate([[0], same.view(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        run = ends - starts
        loop = (run >= (min_repeats - 1) * period) & (run + period >= min_span)
        loop &= words_before[starts + period] - words_before[starts] > 0
        flags[text_of[starts[loop]]] = True
    return flags
