"""Lexical set metrics against hand-computed values and a plain-Python BLEU reference; two sets
compared per source chunk at equal count."""

from __future__ import annotations

import gzip
import math
import random
from collections import Counter

import numpy as np
import pytest

from reverie.errors import ReverieError
from reverie.meter.lexical import (
    compression_ratio,
    distinct_n,
    reference_groups,
    self_bleu,
    self_repetition,
)
from reverie.meter.sets import compare_per_chunk, meter_texts
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


class _OneHot:
    """Every distinct text its own direction: the Vendi score of n distinct texts is exactly n."""

    name = "onehot"

    def __init__(self):
        self.index: dict[str, int] = {}

    def encode(self, texts):
        rows = [self.index.setdefault(t, len(self.index)) for t in texts]
        X = np.zeros((len(texts), 256), dtype=np.float32)
        X[np.arange(len(texts)), rows] = 1.0
        return X


def _texts(side: str, chunk: int, n: int) -> list[str]:
    """n texts of seven words that occur nowhere else: every sample of k has distinct-2 1.0."""
    return [" ".join(f"{side}{chunk}t{i}w{j}" for j in range(7)) + "." for i in range(n)]


def test_per_chunk_comparison_is_not_moved_by_one_side_having_3x_the_texts():
    """Whole sets of 12 naive texts a chunk against 4 dreams a chunk: the naive side's whole-set
    Vendi triples with its count. Per chunk at equal count, k = 4 either way, and the figures stay."""
    emb = _OneHot()
    dreams = {c: _texts("d", c, 4) for c in (1, 2, 3)}
    naive = {c: _texts("b", c, 4) for c in (1, 2, 3)}
    naive3 = {c: _texts("b", c, 12) for c in (1, 2, 3)}
    fair = compare_per_chunk({"dreams": dreams, "baseline": naive}, embedder=emb, seed=1)
    tripled = compare_per_chunk({"dreams": dreams, "baseline": naive3}, embedder=emb, seed=1)
    assert fair["chunks"] == tripled["chunks"] == 3
    assert fair["texts_per_chunk"] == tripled["texts_per_chunk"] == 4
    for side in ("dreams", "baseline"):
        assert tripled["sets"][side]["n_texts"] == 12
        for key in ("vendi", "distinct_2", "mean_tokens"):
            assert tripled["sets"][side][key] == pytest.approx(fair["sets"][side][key])
        assert tripled["sets"][side]["compression_ratio"] == pytest.approx(
            fair["sets"][side]["compression_ratio"], rel=0.02)
    assert tripled["sets"]["baseline"]["vendi"] == pytest.approx(4.0)
    assert tripled["vendi_ratio"] == pytest.approx(fair["vendi_ratio"]) == pytest.approx(1.0)
    flat = lambda sets: [t for ts in sets.values() for t in ts]  # noqa: E731
    whole = meter_texts(flat(naive), embedder=emb)["vendi"]
    whole3 = meter_texts(flat(naive3), embedder=emb)["vendi"]
    assert whole3 == pytest.approx(3 * whole) == pytest.approx(36.0)  # the whole set counts texts


def test_per_chunk_comparison_cuts_to_the_smaller_side_and_skips_thin_chunks():
    emb = _OneHot()
    dreams = {1: _texts("d", 1, 6), 2: _texts("d", 2, 1), 3: _texts("d", 3, 3)}
    naive = {1: _texts("b", 1, 2), 2: _texts("b", 2, 5), 4: _texts("b", 4, 5)}
    out = compare_per_chunk({"dreams": dreams, "baseline": naive}, embedder=emb, seed=0)
    assert out["chunks"] == 1 and out["skipped_chunks"] == 3  # chunk 2 has one dream, 3 and 4 one side
    assert [(r["chunk"], r["k"]) for r in out["per_chunk"]] == [(1, 2)]
    assert out["sets"]["dreams"]["vendi"] == pytest.approx(2.0)
    again = compare_per_chunk({"dreams": dreams, "baseline": naive}, embedder=emb, seed=0)
    assert again == out  # the same seed draws the same texts
    assert compare_per_chunk({"dreams": {1: ["a b"]}, "baseline": {1: ["c d", "e f"]}}, embedder=emb) == {}
    lexical = compare_per_chunk({"dreams": dreams, "baseline": naive}, semantic=False)
    assert "vendi" not in lexical["sets"]["dreams"] and "embedder" not in lexical
    with pytest.raises(ReverieError, match="two sets"):
        compare_per_chunk({"dreams": dreams}, embedder=emb)
