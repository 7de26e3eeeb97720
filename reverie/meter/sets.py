"""`meter_texts`: every set metric of a list of texts in one call, as a flat JSON-ready dict.

    from reverie.meter import meter_texts
    meter_texts(["a joke", "another joke", ...])                    # lexical + semantic + drift
    meter_texts(texts, reference=loaded)                            # + perplexity under a model
    meter_texts(texts, embedder=emb)                                # reuse a loaded embedder
    meter_texts(texts, semantic=False)                              # no embeddings at all
    compare_per_chunk({"dreams": {7: [...], 8: [...]}, "baseline": {7: [...], 8: [...]}})

Keys (each metric is defined in the docstring of the function named):
    n_texts, mean_tokens                          size of the set, tokens per text (reverie.meter.tokens)
    distinct_1 .. distinct_4                      lexical.distinct_n
    compression_ratio, self_bleu, self_repetition lexical.*
    embedder, vendi, mean_cosine_distance         embed.make_embedder, semantic.*
    n_clusters, cluster_sizes                     semantic.greedy_clusters (sizes, largest first)
    rare_word_rate, degenerate_rate               drift.rare_word_rate, share of drift.degenerate_flags
    perplexity, perplexity_median                 model_metrics: exp(total NLL / total tokens) of the
                                                  set, and the median per-text perplexity

Two sets of different size are no comparison as wholes: Vendi counts texts (n distinct texts score
up to n), and distinct-n and compression move with how many and how long the texts are. Where both
sets were written about the same source chunks, `compare_per_chunk` measures them chunk by chunk at
equal count instead (the headline of `reverie dream` and of bench/dream_squad.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np

from reverie.config import MeterConfig
from reverie.errors import ReverieError
from reverie.meter.drift import degenerate_flags, rare_word_rate
from reverie.meter.embed import Embedder, make_embedder
from reverie.meter.lexical import compression_ratio, distinct_n, lexical_metrics
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
        out.update(_semantic_metrics(texts, config, embedder, embeddings, warn))
    out["rare_word_rate"] = rare_word_rate(ts)
    out["degenerate_rate"] = float(degenerate_flags(ts).mean())
    if reference is not None:
        out.update(_perplexity(reference, texts))
    return out


def _semantic_metrics(texts: list[str], config: MeterConfig, embedder: Embedder | None,
                      embeddings: np.ndarray | None, warn: Callable[[str], None] | None) -> dict:
    """Vendi, mean cosine distance and clusters of the texts' embeddings (computed unless given)."""
    if embeddings is None:
        embedder = embedder or make_embedder(config.embedder, config.max_tokens, config.embed_precision, warn)
        embeddings = embedder.encode(texts)
    clusters = greedy_clusters(embeddings, config.cluster_threshold)
    return {
        "embedder": embedder.name if embedder is not None else "precomputed",
        "vendi": vendi_score(embeddings),
        "mean_cosine_distance": mean_cosine_distance(embeddings),
        "n_clusters": len(clusters),
        "cluster_sizes": sorted((len(c) for c in clusters), reverse=True),
    }


def _perplexity(reference, texts: list[str]) -> dict:
    """Perplexity of the whole set under `reference` (total NLL over total tokens), and the median text's."""
    from reverie.meter.model_metrics import text_nll

    nll, counts = text_nll(reference, texts)
    scored = counts > 0
    if not scored.any():
        raise ReverieError("perplexity needs texts of at least two tokens")
    return {"perplexity": float(np.exp(nll.sum() / counts.sum())),
            "perplexity_median": float(np.median(np.exp(nll[scored] / counts[scored])))}


def compare_per_chunk(
    sets: Mapping[str, Mapping[Hashable, Sequence[str]]],
    *,
    config: MeterConfig | None = None,
    embedder: Embedder | None = None,
    semantic: bool = True,
    seed: int = 0,
    warn: Callable[[str], None] | None = None,
) -> dict:
    """Two sets of texts, each grouped by the source chunk it was written about, compared chunk
    by chunk at equal count: {name: {chunk: [text, ...]}} with exactly two names.

    For every chunk (in sorted order) with at least two texts on both sides, k = the smaller
    count, and k texts are drawn at random (random.Random(seed), the first set's sample first)
    from each side; each sample is measured as a set of its own: Vendi score (`embedder`, else
    one made from `config`; skipped with semantic=False), distinct-2, compression ratio, tokens
    per text. The figures are means over the compared chunks, so neither side's count nor its
    number of chunks moves them. Returns {} when no chunk has two texts on both sides, else
    {"chunks": compared, "skipped_chunks": with fewer than two on a side, "texts_per_chunk": mean
    k, "embedder", "vendi_ratio": mean over chunks of the first set's Vendi over the second's,
    "sets": {name: {"n_texts" (sum of k), "vendi", "distinct_2", "compression_ratio",
    "mean_tokens"}}, "per_chunk": [{"chunk", "k", name: {...}, ...}]}.
    """
    if len(sets) != 2:
        raise ReverieError(f"compare_per_chunk compares two sets, got {len(sets)}")
    config = config or MeterConfig()
    if semantic and embedder is None:
        embedder = make_embedder(config.embedder, config.max_tokens, config.embed_precision, warn)
    embedder = embedder if semantic else None  # None: lexical figures only
    rows, skipped = _chunk_rows(sets, embedder, random.Random(seed))
    return _per_chunk_summary(rows, skipped, list(sets), embedder) if rows else {}


def _chunk_rows(sets: Mapping[str, Mapping[Hashable, Sequence[str]]], embedder: Embedder | None,
                rng: random.Random) -> tuple[list[dict], int]:
    """One row per chunk with at least two texts on both sides, each side's k drawn texts measured;
    and how many chunks were skipped."""
    (name_a, a), (name_b, b) = sets.items()
    rows, skipped = [], 0
    for chunk in sorted(set(a) | set(b)):
        ta, tb = list(a.get(chunk, ())), list(b.get(chunk, ()))
        k = min(len(ta), len(tb))
        if k < 2:
            skipped += 1
            continue
        row: dict = {"chunk": chunk, "k": k}
        for name, sample in ((name_a, rng.sample(ta, k)), (name_b, rng.sample(tb, k))):
            row[name] = _sample_metrics(sample, embedder)
        rows.append(row)
    return rows, skipped


def _sample_metrics(sample: list[str], embedder: Embedder | None) -> dict:
    """One side's drawn texts of a chunk, measured as a set of their own."""
    m = {"distinct_2": distinct_n(sample, 2), "compression_ratio": compression_ratio(sample),
         "mean_tokens": float(tokenize_set(sample).lengths.mean())}
    if embedder is not None:
        m["vendi"] = vendi_score(embedder.encode(sample))
    return m


def _per_chunk_summary(rows: list[dict], skipped: int, names: list[str], embedder: Embedder | None) -> dict:
    """The means over the compared chunks, then the rows themselves."""
    keys = ["vendi", "distinct_2", "compression_ratio", "mean_tokens"] if embedder is not None else \
        ["distinct_2", "compression_ratio", "mean_tokens"]
    out: dict = {
        "chunks": len(rows), "skipped_chunks": skipped,
        "texts_per_chunk": float(np.mean([r["k"] for r in rows])),
        "sets": {name: {"n_texts": sum(r["k"] for r in rows),
                        **{key: float(np.mean([r[name][key] for r in rows])) for key in keys}}
                 for name in names},
    }
    if embedder is not None:
        name_a, name_b = names
        out["embedder"] = embedder.name
        out["vendi_ratio"] = float(np.mean([r[name_a]["vendi"] / r[name_b]["vendi"] for r in rows]))
    out["per_chunk"] = rows
    return out
