"""Word tokens and exact n-gram ids for a whole set of texts, as numpy arrays.

Every lexical metric (distinct-n, self-BLEU, self-repetition, degenerate loops, rare words) reads
the same tokens, so a set is tokenised once into a `TokenizedSet`:

    ts = tokenize_set(["The cat sat.", "The cat ran."])
    ts.ids        # all tokens of all texts, concatenated, as int64 vocabulary ids
    ts.ngrams(2)  # (gram_ids, text_index) of every bigram, in order

Tokens are lower-cased words (letters, digits, inner apostrophes: "don't" is one token) and single
punctuation marks; whitespace separates and is dropped. Curly apostrophes are read as straight ones.

Why numpy: 10,000 texts of 100 words are a million tokens; tuples in Counters cost seconds per n,
while the n-gram ids below cost one sort each. They are exact (no hashing): the id of an
n-gram is the rank of the pair (id of its first n-1 tokens, id of its last token) among all pairs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

TOKEN_RE = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens of one text."""
    return TOKEN_RE.findall(text.lower().replace("\u2019", "'"))


@dataclass
class TokenizedSet:
    ids: np.ndarray  # int64 [T]: every text's token ids, concatenated
    starts: np.ndarray  # int64 [N + 1]: text i is ids[starts[i]:starts[i + 1]]
    vocab: list[str]  # id -> token
    _grams: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def n_texts(self) -> int:
        return len(self.starts) - 1

    @cached_property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    @cached_property
    def text_of(self) -> np.ndarray:
        """int64 [T]: the text each token belongs to."""
        return np.repeat(np.arange(self.n_texts), self.lengths)

    def ngrams(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(gram_ids, text_index) of every n-gram that lies inside one text, in text order.

        gram_ids are compact (0..G-1) and equal exactly when the n tokens are equal.
        """
        if n < 1:
            raise ValueError("n must be >= 1")
        for k in range(1, n + 1):  # each order extends the one below it
            if k not in self._grams:
                self._grams[k] = self._extend(k)
        full, valid = self._grams[n]
        return full[valid], self.text_of[valid]

    def _extend(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Per token position: the id of the n-gram starting there (-1 if none) and a validity mask."""
        total = len(self.ids)
        if n == 1:
            return self.ids.copy(), np.ones(total, dtype=bool)
        prev, _ = self._grams[n - 1]
        ends = np.repeat(self.starts[1:], self.lengths)  # end offset of each token's text
        m = max(total - n + 1, 0)
        valid = np.zeros(total, dtype=bool)
        valid[:m] = np.arange(m) + n <= ends[:m]
        full = np.full(total, -1, dtype=np.int64)
        pos = np.flatnonzero(valid)
        if len(pos):
            # Pair (id of the first n-1 tokens, last token); both < T, so the key fits in int64.
            key = prev[pos] * (len(self.vocab) + 1) + self.ids[pos + n - 1]
            full[pos] = factorize(key)
        return full, valid


def factorize(keys: np.ndarray) -> np.ndarray:
    """Compact ids 0..U-1 of integer keys, in sorted key order (equal keys, equal ids)."""
    # Why not np.unique: numpy 2.4 answers plain np.unique with a hash table that is ~50x slower
    # than one sort on a million distinct int64 keys.
    order = np.argsort(keys)
    ranked = keys[order]
    new = np.empty(len(keys), dtype=bool)
    new[:1] = True
    new[1:] = ranked[1:] != ranked[:-1]
    ids = np.empty(len(keys), dtype=np.int64)
    ids[order] = np.cumsum(new) - 1
    return ids


def unique_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique integer keys and how often each occurs (a sort, not numpy's hash path)."""
    ranked = np.sort(keys)
    heads = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]]) if len(ranked) else np.zeros(0, np.int64)
    return ranked[heads], np.diff(np.append(heads, len(ranked)))


def tokenize_set(texts: Sequence[str]) -> TokenizedSet:
    """Tokenise every text and map tokens to ids shared across the set."""
    vocab: dict[str, int] = {}
    ids: list[int] = []
    starts = [0]
    for text in texts:
        # setdefault evaluates len(vocab) before inserting, so a new token gets the next id.
        ids.extend([vocab.setdefault(t, len(vocab)) for t in tokenize(text)])
        starts.append(len(ids))
    return TokenizedSet(
        ids=np.asarray(ids, dtype=np.int64),
        starts=np.asarray(starts, dtype=np.int64),
        vocab=list(vocab),
    )


def as_tokenized(texts: Sequence[str] | TokenizedSet) -> TokenizedSet:
    return texts if isinstance(texts, TokenizedSet) else tokenize_set(texts)
