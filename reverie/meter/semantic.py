"""Semantic diversity of a set from its embeddings: Vendi score, mean pairwise cosine distance,
and greedy semantic clusters ("how many different answers are there?").

    X = make_embedder().encode(texts)   # unit-norm rows, see reverie.meter.embed
    vendi_score(X); mean_cosine_distance(X); greedy_clusters(X, threshold=0.8)

Everything takes unit-norm rows, so a dot product is a cosine similarity.
"""

from __future__ import annotations

import numpy as np

# Texts processed together when clustering: one matmul per block instead of one per text.
_CLUSTER_BLOCK = 256


def vendi_score(X: np.ndarray) -> float:
    """Vendi score (Friedman & Dieng 2022, "The Vendi Score: A Diversity Evaluation Metric for
    Machine Learning"): exp of the Shannon entropy of the eigenvalues of K/n, where
    K[i, j] = x_i . x_j is the cosine-similarity matrix of the n unit-norm embeddings. It is the
    effective number of distinct items: n identical texts score 1, n mutually orthogonal ones n.

    K/n = X X^T / n has the same non-zero eigenvalues as X^T X / n, so with fewer dimensions than
    texts (d < n) the d x d form is used: O(n d^2) instead of O(n^3)."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    gram = X.T @ X if d < n else X @ X.T
    eig = np.linalg.eigvalsh(gram / n)
    eig = eig[eig > 1e-12]
    eig = eig / eig.sum()  # sums to trace(K)/n = 1 for unit rows; renormalised against rounding
    return float(np.exp(-np.sum(eig * np.log(eig))))


def mean_cosine_distance(X: np.ndarray) -> float:
    """Mean pairwise cosine distance: the mean of 1 - x_i . x_j over all pairs i != j. 0 for
    copies, about 1 for unrelated texts. Computed in O(n d) from the sum of the rows:
    sum_{i != j} x_i . x_j = |sum_i x_i|^2 - n for unit rows."""
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    if n < 2:
        raise ValueError("mean pairwise distance needs at least two texts")
    total = X.sum(axis=0)
    similarity = (total @ total - np.einsum("ij,ij->", X, X)) / (n * (n - 1))
    return float(max(0.0, 1.0 - similarity))  # copies give 1 - 1.0000000001 in floating point


def greedy_clusters(X: np.ndarray, threshold: float) -> list[list[int]]:
    """Semantic clusters by NoveltyBench's greedy partition (Zhang et al. 2025, "NoveltyBench"):
    texts are taken in order; a text joins the first existing cluster whose *first* member has
    cosine similarity >= `threshold` with it, else it starts a new cluster. Returns the clusters
    as lists of text indices, in order of creation (each list in text order).

    The number of clusters is the number of distinct answers. Exact, and fast: texts are handled
    in blocks, one matmul against all cluster heads so far plus one within the block."""
    X = np.asarray(X, dtype=np.float32)
    heads: list[int] = []
    clusters: list[list[int]] = []
    for start in range(0, len(X), _CLUSTER_BLOCK):
        block = X[start : start + _CLUSTER_BLOCK]
        # First earlier head that each block text matches (heads are in creation order).
        if heads:
            hits = (block @ X[heads].T) >= threshold
            earlier = np.where(hits.any(axis=1), hits.argmax(axis=1), -1)
        else:
            earlier = np.full(len(block), -1)
        inside = (block @ block.T) >= threshold
        n_before = len(heads)
        new_heads: list[int] = []  # block offsets of heads created in this block
        for offset in range(len(block)):
            if earlier[offset] >= 0:
                clusters[earlier[offset]].append(start + offset)
                continue
            row = inside[offset, new_heads]
            if row.any():
                clusters[n_before + int(row.argmax())].append(start + offset)
            else:
                new_heads.append(offset)
                heads.append(start + offset)
                clusters.append([start + offset])
    return clusters
