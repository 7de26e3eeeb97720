"""Benchmark: hybrid search (BM25 + embeddings, fused) over 100,000 chunks, and embedding speed.

    python bench/search_speed.py                  # 100,000 synthetic chunks, random unit vectors
    python bench/search_speed.py --chunks 20000   # smaller
    python bench/search_speed.py --smoke          # seconds: 2,000 chunks, the hash embedder (bench/common.py)

Decides how the store scans embeddings (issue 21: numpy over float32 blobs, or sqlite-vec): builds
a scratch store of `--chunks` chunks of synthetic text (sentences drawn from wordfreq's 50,000
most frequent words with Zipf-like weights) with a random unit vector of `--dim` dimensions each,
then times, over `--queries` queries of 3-6 words: the first search (vectors loaded from SQLite
into memory), the numpy scan alone (`Store.nearest`), BM25 alone (`Store.search`), and the whole
hybrid search (`Lookup.search`: BM25, scan, fusion, the hits' rows; the query's embedding is not
counted: it is the embedder's, timed next). Then the reading side: chunks/s embedded by
the store's embedder (all-MiniLM-L6-v2 on 256-token chunks unless --smoke) over `--embed` chunks
of `wake.chunk_tokens` tokens, and the query embedding time.

Writes JSON (stdout, and --out). Timings are medians in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import common  # bench/ is on the path: run as a script
import numpy as np


def synthetic(count: int, words: int, seed: int) -> list[str]:
    from wordfreq import top_n_list

    vocab = top_n_list("en", 50_000)
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    rng = np.random.default_rng(seed)
    draws = rng.choice(len(vocab), size=(count, words), p=weights)
    return [" ".join(vocab[i] for i in row) + "." for row in draws]


def build(path: Path, texts: list[str], dim: int, model: str, seed: int) -> None:
    from reverie.store import Store
    from reverie.store.vectors import to_blob

    rng = np.random.default_rng(seed)
    store = Store.open(path)
    with store.transaction():
        per_doc = 100
        for d in range(0, len(texts), per_doc):
            part = texts[d : d + per_doc]
            doc = store.conn.execute(
                "INSERT INTO documents(source, title, kind, sha256, text, read_at, updated_at) "
                "VALUES (?, ?, 'txt', ?, ?, 'now', 'now')", (f"/synthetic/{d}", f"doc {d}", str(d), " ".join(part))
            ).lastrowid
            store.conn.executemany(
                "INSERT INTO chunks(document_id, ord, start_char, end_char, n_tokens, text) VALUES (?, ?, 0, 0, 0, ?)",
                [(doc, i, t) for i, t in enumerate(part)])
        ids = [r[0] for r in store.conn.execute("SELECT id FROM chunks ORDER BY id")]
        V = rng.normal(size=(len(ids), dim)).astype(np.float32)
        V /= np.linalg.norm(V, axis=1, keepdims=True)
        store.conn.executemany("INSERT INTO chunk_vectors(chunk_id, model, dim, vector) VALUES (?, ?, ?, ?)",
                               [(i, model, dim, to_blob(v)) for i, v in zip(ids, V, strict=True)])
    store.close()


def ms(values: list[float]) -> float:
    return round(1000 * statistics.median(values), 2)


class RandomEmbedder:
    """Queries as random unit vectors, for the scan's timing: what is found does not matter here."""

    relevant = -1.0

    def __init__(self, dim: int, seed: int):
        self.name = f"random-{dim}"
        self.rng = np.random.default_rng(seed)
        self.dim = dim

    def encode(self, texts):
        X = self.rng.normal(size=(len(texts), self.dim)).astype(np.float32)
        return X / np.linalg.norm(X, axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384, help="embedding dimensions (all-MiniLM-L6-v2: 384)")
    ap.add_argument("--words", type=int, default=150, help="words per synthetic chunk")
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--embed", type=int, default=128, help="chunks embedded for the reading speed")
    ap.add_argument("--embedder", default="minilm", choices=["minilm", "hash"])
    ap.add_argument("--threads", type=int, default=None, help="torch threads for the embedder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/out/search_speed.json"))
    args = common.parse(ap, argv, lambda d: {"chunks": 2000, "words": 40, "queries": 5, "embed": 16,
                                             "embedder": "hash", "out": None})
    import torch

    from reverie.config import WakeConfig
    from reverie.store import Store
    from reverie.wake.lookup import Lookup, make_store_embedder

    if args.threads:
        torch.set_num_threads(args.threads)
    home = common.scratch_home("reverie-search-speed-")
    path = home / "reverie.db"
    texts = synthetic(args.chunks, args.words, args.seed)
    t0 = time.perf_counter()
    build(path, texts, args.dim, f"random-{args.dim}", args.seed)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed + 1)
    vocab = [w for t in texts[:200] for w in t.rstrip(".").split() if len(w) > 3]
    queries = [" ".join(rng.choice(vocab, size=int(rng.integers(3, 7)))) for _ in range(args.queries)]

    store = Store.open(path)
    emb = RandomEmbedder(args.dim, args.seed)
    lookup = Lookup(store, WakeConfig(), embedder=emb)
    t0 = time.perf_counter()
    lookup.search(queries[0], 5)
    first = time.perf_counter() - t0
    vectors = emb.encode(queries)
    scan, bm25, hybrid = [], [], []
    for q, v in zip(queries, vectors, strict=True):
        t0 = time.perf_counter()
        store.nearest(emb.name, v, 50)
        scan.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        store.search(q, 50)
        bm25.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        store.hybrid_search(q, v, emb.name, 5, candidates=50)
        hybrid.append(time.perf_counter() - t0)
    full = []
    for q in queries:  # through Lookup: the freshness check, the query embedding (random here) and all
        t0 = time.perf_counter()
        lookup.search(q, 5)
        full.append(time.perf_counter() - t0)
    M = store._loaded_vectors(emb.name).matrix
    matmul = []
    for v in vectors:
        t0 = time.perf_counter()
        M @ v
        matmul.append(time.perf_counter() - t0)
    store.close()

    # The reading side: the store's embedder on chunks of wake.chunk_tokens tokens (~0.75 words a token).
    cfg = WakeConfig(embedder=args.embedder)
    embedder = make_store_embedder(cfg)
    long_texts = synthetic(args.embed, int(cfg.chunk_tokens * 0.75), args.seed + 2)
    embedder.encode(long_texts[:4])  # warm up
    t0 = time.perf_counter()
    embedder.encode(long_texts)
    embed_s = time.perf_counter() - t0
    qt = []
    for q in queries[:10]:
        t0 = time.perf_counter()
        embedder.encode([q])
        qt.append(time.perf_counter() - t0)
    try:
        import sqlite_vec  # noqa: F401

        vec = "installed (not used)"
    except ImportError:
        vec = "not installed"
    common.write_json(args.out, {
        "chunks": args.chunks, "dim": args.dim, "queries": args.queries, "smoke": args.smoke,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "numpy": np.__version__},
        "build_s": round(build_s, 1), "first_search_ms (loads vectors)": round(1000 * first, 1),
        "scan_ms": ms(scan), "matmul_ms": ms(matmul), "bm25_ms": ms(bm25), "hybrid_ms": ms(hybrid),
        "lookup_search_ms": ms(full), "vectors_mb": round(M.nbytes / 2**20, 1), "sqlite_vec": vec,
        "embedder": embedder.name, "embed_tokens": cfg.embed_tokens, "embedded_chunks": args.embed,
        "embed_chunks_per_s": round(args.embed / embed_s, 1), "query_embed_ms": ms(qt),
    })


if __name__ == "__main__":
    main()
