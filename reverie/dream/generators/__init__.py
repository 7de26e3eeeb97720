"""The dream generators, by name. Each module holds its prompt templates (TEMPLATES), sampling
(SAMPLING) and `work(item)`; see reverie.dream.base for the protocol."""

from __future__ import annotations

from types import ModuleType

from reverie.dream.generators import bookclub, cloze, dream, entities, facts, qa, reconcile, restate, spar

GENERATORS: dict[str, ModuleType] = {
    m.NAME: m for m in (restate, qa, cloze, facts, bookclub, entities, reconcile, dream, spar)
}

# The generators whose dreams are a question and its answer ("Q: ... / A: ..."): sleep trains
# them as a chat question and answer and holds quiz questions out of them. Read off each
# generator's own dream template, so a new one joins by writing that format.
QA_FORMAT = "Q: {question}\nA: {answer}"
QA_GENERATORS: frozenset[str] = frozenset(
    name for name, m in GENERATORS.items() if getattr(m, "TEMPLATES", {}).get("dream") == QA_FORMAT
)

__all__ = ["GENERATORS", "QA_FORMAT", "QA_GENERATORS"]
