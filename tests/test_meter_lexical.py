"""Lexical set metrics against hand-computed values and a plain-Python BLEU reference."""

from __future__ import annotations

import gzip
import math
import random
from collections import Counter

import numpy as np
import pytest

from reverie.meter.lexical import (
    compression_ratio,
    distinct_n,
    reference_groups,
    self_bleu,
    self_repetition,
)
from reverie.meter.tokens import tokenize, tokenize_set


def test_tokens_are_lowercased_words_and_punctuation():
    assert tokenize("The cat's hat, isn’t it?") == ["the", "cat's", "hat", ",", "isn't", "it", "?"]


def test_ngram_ids_match_tuples_and_stay_inside_texts():
    texts = ["a b a b", "b a", "a", "", "a b a"]
    ts = tokenize_set(texts)
    for n in (1, 2, 3):
        grams, owner = ts.ngrams(n)
        expected = [(i, tuple(tokenize(t)[j : j + n])) for i, t in enumerate(texts) for j in range(len(tokenize(t)) - n + 1)]
        assert owner.tolist() == [i for i, _ in expected]
        # Same id exactly when same tuple.
        by_tuple: dict = {}
        for gid, (_, tup) in zip(grams.tolist(), expected, strict=True):
            assert by_tuple.setdefault(tup, gid) == gid
        assert len(set(by_tuple.values())) == len(by_tuple)


def test_distinct_n_hand_count():
    texts = ["the cat sat", "the cat ran"]
    # unigrams: the cat sat the cat ran -> 4 unique of 6; bigrams: the-cat x2, cat-sat, cat-ran -> 3 of 4
    assert distinct_n(texts, 1) == pytest.approx(4 / 6)
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)
    assert distinct_n(texts, 3) == pytest.approx(2 / 2)
    assert distinct_n(texts, 4) == 0.0  # no text has four tokens


def test_distinct_n_counts_punctuation_and_ignores_case():
    # "Hi, hi!" -> hi , hi !  : 3 unique unigrams of 4
    assert distinct_n(["Hi, hi!"], 1) == pytest.approx(3 / 4)


def test_compression_ratio_is_bytes_over_gzip_bytes():
    texts = ["one text", "another text"]
    data = b"one text another text"
    assert compression_ratio(texts) == pytest.approx(len(data) / len(gzip.compress(data, 9)))


def test_repeated_text_compresses_far_better_than_varied_text():
    rng = random.Random(0)
    words = [f"w{i}" for i in range(5000)]
    varied = [" ".join(rng.choice(words) for _ in range(30)) for _ in range(100)]
    repeated = [varied[0]] * 100
    assert compression_ratio(repeated) > 20
    assert compression_ratio(varied) < 4


def test_self_repetition_hand_value():
    # 4-grams: T1 {abcd, bcde}, T2 {abcd, bcdf}, T3 {xyzw, yzwv}; abcd is in 2 texts.
    # Shared counts: T1 1, T2 1, T3 0 -> mean(log 2, log 2, log 1)
    texts = ["a b c d e", "a b c d f", "x y z w v"]
    assert self_repetition(texts) == pytest.approx(2 * math.log(2) / 3)
    assert self_repetition(["a b c d", "e f g h"]) == 0.0


def test_self_bleu_hand_values():
    # "a b c d" vs "a b c e": p = 3/4, 2/3, 1/2, (0 -> 0.1)/1; equal lengths, no brevity penalty.
    one = (0.75 * (2 / 3) * 0.5 * 0.1) ** 0.25
    assert self_bleu(["a b c d", "a b c e"]) == pytest.approx(one)
    # "a b" against "a b c d": BP = exp(1 - 4/2); p = 1, 1, 0.1/1, 0.1/1
    short = math.exp(-1) * (1 * 1 * 0.1 * 0.1) ** 0.25
    # "a b c d" against "a b": BP = 1; p = 2/4, 1/3, 0.1/2, 0.1/1
    long = (0.5 * (1 / 3) * 0.05 * 0.1) ** 0.25
    assert self_bleu(["a b", "a b c d"]) == pytest.approx((short + long) / 2)
    assert self_bleu(["same words here again", "same words here again"]) == pytest.approx(1.0)
    assert self_bleu(["x", "y"]) == 0.0  # no unigram match


def test_self_bleu_clips_repeated_words():
    # hyp "the the the the" vs ref "the cat": unigram matches clipped to 1 of 4
    # p = 1/4, then no 2/3/4-gram matches: 0.1/3, 0.1/2, 0.1/1; hyp longer -> BP 1
    hyp = (0.25 * (0.1 / 3) * (0.1 / 2) * 0.1) ** 0.25
    # "the cat" vs "the the the the": p1 = 1/2, p2 = 0.1/1, p3 = p4 = 0.1/1; BP = exp(1 - 4/2)
    ref = math.exp(-1) * (0.5 * 0.1 * 0.1 * 0.1) ** 0.25
    assert self_bleu(["the the the the", "the cat"]) == pytest.approx((hyp + ref) / 2)


def _ngrams(tokens, n):
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _bleu_reference(hyp: list[str], refs: list[list[str]]) -> float:
    """nltk sentence_bleu(method1) written out plainly."""
    logs = []
    for n in range(1, 5):
        h = _ngrams(hyp, n)
        most = Counter()
        for r in refs:
            most |= _ngrams(r, n)
        matches = sum(min(c, most[g]) for g, c in h.items())
        total = max(1, sum(h.values()))
        if n == 1 and matches == 0:
            return 0.0
        logs.append(math.log((matches or 0.1) / total))
    c = len(hyp)
    r = min((len(x) for x in refs), key=lambda L: (abs(L - c), L))
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(sum(logs) / 4)


def _random_texts(rng: random.Random, count: int) -> list[str]:
    vocab = "a b c d e f g".split()
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 12))) for _ in range(count)]


def test_self_bleu_equals_reference_implementation_on_small_sets():
    rng = random.Random(1)
    for _ in range(20):
        texts = _random_texts(rng, rng.randint(2, 9))
        toks = [tokenize(t) for t in texts]
        expected = np.mean([_bleu_reference(toks[i], toks[:i] + toks[i + 1 :]) for i in range(len(toks))])
        assert self_bleu(texts) == pytest.approx(expected)


def test_self_bleu_reference_sample_uses_groups_of_fixed_size():
    rng = random.Random(2)
    texts = _random_texts(rng, 53)
    group = reference_groups(len(texts), max_refs=8, seed=5)
    sizes = np.bincount(group)
    assert len(sizes) == 53 // 9 and sizes.min() >= 9  # every text has at least 8 references
    toks = [tokenize(t) for t in texts]
    expected = np.mean([
        _bleu_reference(toks[i], [toks[j] for j in range(len(toks)) if j != i and group[j] == group[i]])
        for i in range(len(toks))
    ])
    assert self_bleu(texts, max_refs=8, seed=5) == pytest.approx(expected)
