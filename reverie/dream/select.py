"""Choosing the dream set: near-duplicate removal, then diversity-maximising selection in budget.

- `near_duplicates`: MinHash (datasketch, 128 permutations) over word 3-gram shingles with LSH
  at a Jaccard threshold; a text whose estimated Jaccard with an earlier kept one reaches it is a
  duplicate of that one.
- `select_within_budget`: greedy. 'vendi' adds, at each step, the candidate that raises the Vendi
  score (reverie.meter.semantic) of the chosen set most; 'facility' maximises facility location
  sum_i max_{j in S} sim(i, j) (coverage of the candidates). Candidates that do not fit in the
  remaining token budget are skipped. Both start from the most central candidate (the one most
  like the others: on topic), then move away from what is chosen.

    dups = near_duplicates(texts, threshold=0.7)           # {index: index it duplicates}
    chosen = select_within_budget(X, costs, budget=2000)   # indices, in order chosen
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from reverie.meter.semantic import vendi_score

_WORD = re.compile(r"\w+")


def shingles(text: str, n: int = 3) -> set[str]:
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def near_duplicates(texts: Sequence[str], threshold: float = 0.7, num_perm: int = 128) -> dict[int, int]:
    """{index: index of the earlier text it nearly duplicates}; the first of each group is kept."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    dups: dict[int, int] = {}
    for i, text in enumerate(texts):
        m = MinHash(num_perm=num_perm, seed=1)
        m.update_batch([s.encode() for s in shingles(text)])
        hits = [int(k) for k in lsh.query(m)]
        if hits:
            dups[i] = min(hits)
        else:
            lsh.insert(str(i), m)
    return dups


def select_within_budget(
    X: np.ndarray, costs: Sequence[int], budget: int, method: str = "vendi"
) -> list[int]:
    """Indices of a diverse subset of the rows of X (unit embeddings) whose costs sum <= budget."""
    n = len(costs)
    if n == 0 or budget <= 0:
        return []
    costs = np.asarray(costs)
    sim = X @ X.T
    chosen: list[int] = []
    left = budget
    open_ = np.ones(n, dtype=bool)
    cover = np.zeros(n)  # facility location: each candidate's best similarity to the chosen set
    while True:
        fits = np.flatnonzero(open_ & (costs <= left))
        if len(fits) == 0:
            return chosen
        if not chosen:
            best = int(fits[np.argmax(sim[fits].mean(axis=1))])
        elif method == "vendi":
            gains = [vendi_score(X[chosen + [j]]) for j in fits]
            best = int(fits[int(np.argmax(gains))])
        elif method == "facility":
            gains = [np.maximum(cover, sim[j]).sum() for j in fits]
            best = int(fits[int(np.argmax(gains))])
        else:
            raise ValueError(f"unknown selection method {method!r}")
        chosen.append(best)
        cover = np.maximum(cover, sim[best])
        open_[best] = False
        left -= int(costs[best])
