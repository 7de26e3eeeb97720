"""The dream generators, by name. Each module holds its prompt templates (TEMPLATES), sampling
(SAMPLING) and `work(item)`; see reverie.dream.base for the protocol."""

from __future__ import annotations

from types import ModuleType

from reverie.dream.generators import bookclub, cloze, dream, entities, facts, qa, reconcile, restate, spar

GENERATORS: dict[str, ModuleType] = {
    m.NAME: m for m in (restate, qa, cloze, facts, bookclub, entities, reconcile, dream, spar)
}

__all__ = ["GENERATORS"]
