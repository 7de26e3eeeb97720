"""Answers, as SQuAD scores them: normalisation, "answer contained in the output", token F1.

    from reverie.answers import contained, token_f1
    contained("It was built in 1852.", "1852")      # True
    token_f1("the Eiffel tower", "Eiffel Tower")     # 1.0

Normalisation is SQuAD's (Rajpurkar et al. 2016, the official evaluate script): lower case, no
punctuation, no articles (a, an, the), single spaces. A gold answer may be one string or a list
of acceptable strings; the best match counts. Shared by the dream gate (is a question's answer
in its source?), distillation (does the teacher's answer hold the span?) and the quiz.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def _golds(gold: str | list[str]) -> list[str]:
    return [gold] if isinstance(gold, str) else list(gold)


def contained(output: str, gold: str | list[str]) -> bool:
    """The normalised gold answer occurs in the normalised output, on word boundaries."""
    out = f" {normalize(output)} "
    return any(g and f" {g} " in out for g in (normalize(x) for x in _golds(gold)))


def token_f1(output: str, gold: str | list[str]) -> float:
    """Harmonic mean of token precision and recall between output and gold (best gold)."""
    pred = normalize(output).split()
    best = 0.0
    for g in _golds(gold):
        ref = normalize(g).split()
        common = sum((Counter(pred) & Counter(ref)).values())
        if common:
            p, r = common / len(pred), common / len(ref)
            best = max(best, 2 * p * r / (p + r))
    return best
