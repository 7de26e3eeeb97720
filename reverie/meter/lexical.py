"""Lexical diversity of a set of texts: distinct-n, compression ratio, self-BLEU, self-repetition.

    from reverie.meter.lexical import distinct_n, compression_ratio, self_bleu, self_repetition
    distinct_n(["the cat sat", "the cat ran"], 2)   # 0.75

All functions take a list of texts or a `TokenizedSet` (tokenise once, meter many times); tokens
are those of `reverie.meter.tokens` (lower-cased words and punctuation marks). Every metric is a
vectorised pass over the set's n-gram ids: 10,000 texts of 100 words take about two seconds in all.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence

import numpy as np

from reverie.meter.tokens import TokenizedSet, as_tokenized, unique_counts

# Texygen's self-BLEU smoothing (nltk SmoothingFunction().method1): a precision with no match
# counts as epsilon matches, so one missing 4-gram does not zero the whole score.
BLEU_EPSILON = 0.1


def distinct_n(texts: Sequence[str] | TokenizedSet, n: int) -> float:
    """distinct-n (Li et al. 2016, "A Diversity-Promoting Objective Function for Neural
    Conversation Models"): the number of unique n-grams in the whole set divided by the total
    number of n-grams in the set. 1.0 means no n-gram occurs twice; a set of copies tends to
    1/copies. 0.0 when no text has n tokens."""
    grams, _ = as_tokenized(texts).ngrams(n)
    if len(grams) == 0:
        return 0.0
    return float(len(unique_counts(grams)[0]) / len(grams))


def compression_ratio(texts: Sequence[str]) -> float:
    """Compression ratio (Shaib et al. 2024, "Standardizing the Measurement of Text Diversity"):
    the UTF-8 size of the texts joined by spaces divided by the size of its gzip compression
    (level 9). Redundant sets compress well: copies of one text score high, varied text about
    2-3. gzip sees 32 KB back, so repetition between texts further apart than that is missed."""
    data = " ".join(texts).encode("utf-8")
    return len(data) / len(gzip.compress(data, compresslevel=9))


def self_repetition(texts: Sequence[str] | TokenizedSet, n: int = 4) -> float:
    """Self-repetition (Salkar et al. 2022, as standardised by Shaib et al. 2024): for each text,
    sum over its distinct n-grams of the number of *other* texts that contain that n-gram; the
    score is the mean over texts of log(sum + 1). 0 when no text shares an n-gram with another;
    it grows with how many of a text's phrases are reused across the set."""
    ts = as_tokenized(texts)
    grams, text = ts.ngrams(n)
    if len(grams) == 0:
        return 0.0
    n_grams = int(grams.max()) + 1
    pairs, _ = unique_counts(text * n_grams + grams)  # each (text, n-gram) once
    pair_text, pair_gram = pairs // n_grams, pairs % n_grams
    doc_freq = np.bincount(pair_gram, minlength=n_grams)
    shared = np.bincount(pair_text, weights=doc_freq[pair_gram] - 1, minlength=ts.n_texts)
    return float(np.mean(np.log(shared + 1)))


def self_bleu(
    texts: Sequence[str] | TokenizedSet, max_refs: int = 64, seed: int = 0, max_n: int = 4
) -> float:
    """Self-BLEU (Zhu et al. 2018, "Texygen"): the mean over texts of the sentence BLEU-4 of the
    text against the other texts as references. 1.0 means every text is covered by the others;
    lower is more diverse.

    BLEU (Papineni et al. 2002) here is exactly nltk's `sentence_bleu` with `method1` smoothing:
    precisions p_n (n = 1..4) count each hypothesis n-gram at most as often as it occurs in the
    reference that has the most of it; a precision with no match counts 0.1 matches; the score is
    the brevity penalty (against the reference length closest to the hypothesis, the shorter on a
    tie) times the geometric mean of the p_n; a text with no unigram match scores 0.

    Reference sample: with more than `max_refs + 1` texts, the texts are shuffled (seeded) into
    groups of `max_refs + 1` to `2 * max_refs + 1` and each text's references are the others in its
    group: every text still gets a uniformly random set of at least `max_refs` references, and the
    cost is linear in the number of texts. Smaller sets use all other texts (exact self-BLEU).
    """
    ts = as_tokenized(texts)
    count = ts.n_texts
    if count < 2:
        raise ValueError("self-BLEU needs at least two texts")
    group = reference_groups(count, max_refs, seed)
    log_precision = np.zeros(count)
    no_unigram_match = np.zeros(count, dtype=bool)
    for n in range(1, max_n + 1):
        matches = _clipped_matches(ts, n, group)
        totals = np.maximum(np.bincount(ts.ngrams(n)[1], minlength=count), 1)
        if n == 1:
            no_unigram_match = matches == 0
        log_precision += np.log(np.where(matches > 0, matches, BLEU_EPSILON) / totals) / max_n

    penalty = _brevity_penalty(ts.lengths, group)
    bleu = np.where(no_unigram_match, 0.0, penalty * np.exp(log_precision))
    return float(bleu.mean())


def reference_groups(count: int, max_refs: int, seed: int = 0) -> np.ndarray:
    """Self-BLEU's reference sample: the group of each text (seeded shuffle, groups of at least
    `max_refs + 1`); a text's references are the other members of its group."""
    n_groups = max(1, count // (max_refs + 1))
    group = np.empty(count, dtype=np.int64)
    group[np.random.default_rng(seed).permutation(count)] = np.arange(count) % n_groups
    return group


def _clipped_matches(ts: TokenizedSet, n: int, group: np.ndarray) -> np.ndarray:
    """Per text: sum over its n-grams of min(count in text, max count in any other group member).

    The max over the *other* members is the group's largest count, unless this text holds the
    largest, in which case it is the second largest: so one sort by (group, n-gram, count) gives
    every text's clip at once.
    """
    count = ts.n_texts
    grams, text = ts.ngrams(n)
    if len(grams) == 0:
        return np.zeros(count)
    n_grams = int(grams.max()) + 1
    pairs, counts = unique_counts(text * n_grams + grams)
    pair_text, pair_gram = pairs // n_grams, pairs % n_grams
    # One int64 sort key (group, n-gram, count descending); lexsort on three arrays is ~10x slower.
    top = int(counts.max()) + 1
    order = np.argsort((group[pair_text] * n_grams + pair_gram) * top + (top - 1 - counts))
    pair_text, pair_gram, counts = pair_text[order], pair_gram[order], counts[order]
    pair_group = group[pair_text]
    first = np.ones(len(counts), dtype=bool)
    first[1:] = (pair_group[1:] != pair_group[:-1]) | (pair_gram[1:] != pair_gram[:-1])
    heads = np.flatnonzero(first)
    sizes = np.diff(np.append(heads, len(counts)))
    largest = counts[heads]
    second = np.where(sizes > 1, counts[np.minimum(heads + 1, len(counts) - 1)], 0)
    which = np.cumsum(first) - 1
    other = np.where(first, second[which], largest[which])
    return np.bincount(pair_text, weights=np.minimum(counts, other), minlength=count)


def _brevity_penalty(lengths: np.ndarray, group: np.ndarray) -> np.ndarray:
    """BLEU's brevity penalty of each text against the closest-length other member of its group."""
    count = len(lengths)
    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group)
    slot = np.arange(count) - np.repeat(np.cumsum(sizes) - sizes, sizes)  # position within group
    table = np.full((len(sizes), sizes.max()), np.inf)
    table[group[order], slot] = lengths[order]
    own_slot = np.empty(count, dtype=np.int64)
    own_slot[order] = slot
    refs = table[group].copy()  # [count, max group size]: lengths of the group's members
    refs[np.arange(count), own_slot] = np.inf
    hyp = lengths.astype(float)
    gap = np.abs(refs - hyp[:, None])
    closest = np.where(gap == gap.min(axis=1, keepdims=True), refs, np.inf).min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        penalty = np.where(hyp > closest, 1.0, np.exp(1 - closest / hyp))
    return np.where(hyp == 0, 0.0, penalty)


def lexical_metrics(texts: Sequence[str], ts: TokenizedSet, max_refs: int = 64, seed: int = 0) -> dict:
    """All lexical metrics of a set, as one flat dict (`ts` is `tokenize_set(texts)`)."""
    out = {f"distinct_{n}": distinct_n(ts, n) for n in range(1, 5)}
    out["compression_ratio"] = compression_ratio(texts)
    out["self_bleu"] = self_bleu(ts, max_refs=max_refs, seed=seed)
    out["self_repetition"] = self_repetition(ts)
    return out
