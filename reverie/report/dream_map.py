"""A map of the dreams: their sentence embeddings and their source chunks, projected to 2-D.

    from reverie.report.dream_map import dream_map
    svg, note = dream_map(store, make_embedder("auto"))   # svg None when there is nothing to map

The projection is PCA (the two leading right singular vectors of the centred embeddings), fitted
on dreams and chunks together, so a dream far from every chunk is visibly off its sources. At
most `cap` dreams (a seeded sample, so the same store draws the same map) keep it fast.
"""

from __future__ import annotations

import json
import random

import numpy as np

from reverie.report.svg import GREY, PALETTE, Group, scatter

CAP, CHUNK_CAP = 400, 100


def project(X: np.ndarray) -> np.ndarray:
    """[n, d] rows -> [n, 2] coordinates on the two directions of largest variance."""
    centred = X - X.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = centred @ vt[:2].T
    return np.hstack([out, np.zeros((len(X), 2 - out.shape[1]))]) if out.shape[1] < 2 else out


def _sample(items: list, k: int, seed: str) -> list:
    return items if len(items) <= k else [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), k))]


def _short(text: str, n: int = 140) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def dream_map(store, embedder, cap: int = CAP, chunk_cap: int = CHUNK_CAP, seed: int = 0) -> tuple[str | None, str]:
    """(the map's svg or None, a note saying what it shows or why it is missing)."""
    dreams = store.list_dreams(status="kept")
    if not dreams:
        return None, "No dreams yet: `reverie dream` or `reverie sleep` writes them."
    if embedder is None:
        return None, "The dream map was skipped (no embedder: `reverie report` without --no-map draws it)."
    shown = _sample(dreams, cap, f"{seed}:dreams")
    chunk_ids = sorted({c for d in shown for c in json.loads(d["source_chunk_ids"] or "[]") if c is not None})
    chunk_ids = _sample(chunk_ids, chunk_cap, f"{seed}:chunks")
    chunks = [c for c in (store.chunk(i) for i in chunk_ids) if c is not None]
    texts = [d["text"] for d in shown] + [c["text"] for c in chunks]
    if len(texts) < 3:
        return None, "Too few dreams to map (at least three texts are needed)."
    xy = project(np.asarray(embedder.encode(texts), dtype=np.float64))
    generators = sorted({d["generator"] for d in shown})
    groups = [Group(g, PALETTE[i % len(PALETTE)], []) for i, g in enumerate(generators)]
    by_name = {g.label: g for g in groups}
    for d, (x, y) in zip(shown, xy, strict=False):
        by_name[d["generator"]].points.append((float(x), float(y), f"{d['generator']} #{d['id']}: {_short(d['text'])}"))
    if chunks:
        groups.append(Group("source chunk", GREY, [(float(x), float(y), f"chunk #{c['id']}: {_short(c['text'])}")
                                                   for c, (x, y) in zip(chunks, xy[len(shown):], strict=True)],
                            square=True))
    note = (f"{len(shown)} of {len(dreams)} kept dreams and {len(chunks)} of their source chunks, "
            f"embedded with {embedder.name} and projected by PCA; hover a point to read it.")
    return scatter("chart-map", "map of the dreams", groups), note
