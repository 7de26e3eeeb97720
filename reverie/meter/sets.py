"""`meter_texts`: every set metric of a list of texts in one call, as a flat JSON-ready dict.

    from reverie.meter import meter_texts
    meter_texts(["a joke", "another joke", ...])                    # lexical + semantic + drift
    meter_texts(texts, reference=loaded)                            # + perplexity under a model
    meter_texts(texts, embedder=emb)                                # reuse a loaded embedder
    meter_texts(texts, semantic=False)                              # no embeddings at all

Keys (each metric is defined in the docstring of the function named):
    n_texts, mean_tokens                          size of the set, tokens per text (reverie.meter.tokens)
    distinct_1 .. distinct_4                      lexical.distinct_n
    compression_ratio, self_bleu, self_repetition lexical.*
    embedder, vendi, mean_cosine_distance         embed.make_embedder, semantic.*
    n_clusters, cluster_sizes                     semantic.greedy_clusters (sizes, largest first)
    rare_word_rate, degenerate_rate               drift.rare_word_rate, share of drift.degenerate_flags
    perplexity, perplexity_median                 model_metrics: exp(total NLL / total tokens) of the
                                                  set, and the median per-text perplexity
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from reverie.config import MeterConfig
from reverie.errors import ReverieError
from reverie.meter.drift import degenerate_flags, rare_word_rate
from reverie.meter.embed import Embedder, make_embedder
from reverie.meter.lexical import lexical_metrics
from reverie.meter.semantic import greedy_clusters, mean_cosine_distance, vendi_score
from reverie.meter.tokens import tokenize_set


def meter_texts(
    texts: Sequence[str],
    *,
    config: MeterConfig | None = None,
    embedder: Embedder | None = None,
    embeddings: np.ndarray | None = None,
    semantic: bool = True,
    reference=None,
    seed: int = 0,
    warn: Callable[[str], None] | None = None,
) -> dict:
    """Set metrics of `texts` (at least two).

    config: thresholds and embedder choice (defaults: `MeterConfig()`); embedder: a loaded one to
    reuse, else one is made from `config` (`warn` hears about the TF-IDF fallback); embeddings:
    already computed unit rows for these texts (skips the embedder); semantic=False skips the
    semantic metrics; reference: a `LoadedModel` to measure perplexity under; seed: the
    self-BLEU reference sample.
    """
    texts = list(texts)
    if len(texts) < 2:
        raise ReverieError(f"the set metrics need at least two texts, got {len(texts)}")
    config = config or MeterConfig()
    ts = tokenize_set(texts)
    out: dict = {"n_texts": len(texts), "mean_tokens": float(ts.lengths.mean())}
    out.update(lexical_metrics(texts, ts, max_refs=config.self_bleu_refs, seed=seed))
    if semantic:
        if embeddings is None:
            embedder = embedder or make_embedder(config.embedder, config.max_tokens, config.embed_precision, warn)
            embeddings = embedder.encode(texts)
        out["embedder"] = embedder.name if embedder is not None else "precomputed"
        clusters = greedy_clusters(embeddings, config.cluster_threshold)
        out["vendi"] = vendi_score(embeddings)
        out["mean_cosine_distance"] = mean_cosine_distance(embeddings)
        out["n_clusters"] = len(clusters)
        out["cluster_sizes"] = sorted((len(c) for c in clusters), reverse=True)
    out["rare_word_rate"] = rare_word_rate(ts)
    out["degenerate_rate"] = float(degenerate_flags(ts).mean())
    if reference is not None:
        from reverie.meter.model_metrics import text_nll

        nll, counts = text_nll(reference, texts)
        scored = counts > 0
        if not scored.any():
            raise ReverieError("perplexity needs texts of at least two tokens")
        out["perplexity"] = float(np.exp(nll.sum() / counts.sum()))
        out["perplexity_median"] = float(np.median(np.exp(nll[scored] / counts[scored])))
    return out
