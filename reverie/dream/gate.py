"""The quality gate: the sweet spot between collapse and nonsense, decided by rules, not a judge.

A dream is dropped, with the first failing reason, when it is
- too short, or degenerate (caught in a repetition loop: reverie.meter.drift.degenerate_flags);
- ungrounded: fewer than `min_grounded` of its content words occur in its source chunks (or in the
  outside randomness it was given, e.g. a persona's occupation), or a number it states is not in
  the sources, or (question-answer dreams) its answer does not occur in the source;
- off the base model's distribution: perplexity above `max_perplexity` (nonsense) or below
  `min_perplexity` (copied or looping text);
- full of rare words (Zipf < 3, reverie.meter.drift) that its sources do not contain.

    gate = Gate(config, perplexity=lambda texts: perplexities(loaded, texts))
    reasons, metrics = gate.check(candidates, sources={chunk_id: text})
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from reverie.answers import normalize
from reverie.config import DreamConfig
from reverie.dream.base import Candidate
from reverie.meter.drift import RARE_ZIPF, WORD_RE, degenerate_flags, zipf

_TOKEN = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*|\d+(?:[.,:]\d+)*", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
# Words this frequent (Zipf >= 5.6: "the", "about", "people", "think") carry no content.
_FUNCTION_ZIPF = 5.6
_SUFFIXES = ("ing", "ed", "es", "s", "ly")


def stem(word: str) -> str:
    """A crude stem, enough to match "rivers"/"river" and "flowed"/"flows"."""
    word = word.lower().replace("\u2019", "'")
    if word.endswith("'s"):
        word = word[:-2]
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


@cache
def is_content(word: str) -> bool:
    return len(word) > 2 and zipf(word.lower()) < _FUNCTION_ZIPF


def normalise_number(text: str) -> str:
    return text.replace(",", "").rstrip(".")


def numbers(text: str) -> set[str]:
    return {normalise_number(n) for n in _NUMBER.findall(text)}


def content_stems(text: str) -> list[str]:
    return [stem(w) for w in _TOKEN.findall(text) if not w[0].isdigit() and is_content(w)]


def answer_in_source(answer: str, source: str) -> bool:
    """The answer occurs in the source: as a phrase (case, articles and punctuation aside), or
    every content word and number of it does."""
    a, s = normalize(answer), normalize(source)
    if a and f" {a} " in f" {s} ":
        return True
    words = content_stems(answer)
    src = set(content_stems(source))
    return bool(words) and all(w in src for w in words) and numbers(answer) <= numbers(source)


def word_grounding(text: str, source: str, extra: str = "") -> tuple[float, list[str]]:
    """(share of the text's content words found in the source or `extra`, numbers of the text
    found in neither): the grounding test's two measures, shared by the gate and the generators
    that pre-check their own pieces (reverie.dream.spans.grounded)."""
    words = content_stems(text)
    allowed = set(content_stems(source)) | set(content_stems(extra))
    share = sum(w in allowed for w in words) / len(words) if words else 1.0
    return share, sorted(numbers(text) - numbers(source) - numbers(extra))


def entropy_words(entropy: dict) -> str:
    """The outside randomness a dream was given, as text (its words count as grounded)."""
    return json.dumps(entropy)


@dataclass
class Verdict:
    reason: str | None  # None: kept
    metrics: dict


class Gate:
    def __init__(
        self,
        config: DreamConfig,
        perplexity: Callable[[Sequence[str]], np.ndarray] | None = None,
        slack: dict[str, float] | None = None,
    ):
        self.config = config
        self.perplexity = perplexity  # None: no local model (HTTP backend), the bound is skipped
        self.slack = slack or {}  # generator -> how much lower its grounding bar is

    def grounding(self, c: Candidate, source: str) -> tuple[float, str | None]:
        """(share of grounded content words, first failing reason or None)."""
        share, missing = word_grounding(c.checked_text or c.text, source, entropy_words(c.entropy))
        bar = self.config.min_grounded - self.slack.get(c.generator, 0.0)
        if missing:
            return share, f"ungrounded number: {missing[0]} is not in the sources"
        if share < bar:
            return share, f"ungrounded: {share:.0%} of content words in the sources (< {bar:.0%})"
        if c.answer is not None and not answer_in_source(c.answer, source):
            return share, f"answer not in the source: {c.answer[:60]!r}"
        return share, None

    def rare_rate(self, c: Candidate, source: str) -> float:
        known = {w.lower() for w in WORD_RE.findall(source + " " + entropy_words(c.entropy))}
        words = [w.lower() for w in WORD_RE.findall(c.text)]
        rare = [w for w in words if w not in known and zipf(w) < RARE_ZIPF]
        return len(rare) / len(words) if words else 0.0

    def check(self, candidates: Sequence[Candidate], sources: dict[int, str]) -> list[Verdict]:
        cfg = self.config
        texts = [c.text for c in candidates]
        if not texts:
            return []
        loops = degenerate_flags(texts)
        ppl = np.asarray(self.perplexity(texts), dtype=float) if self.perplexity else np.full(len(texts), np.nan)
        out = []
        for i, c in enumerate(candidates):
            source = "\n".join(sources[s] for s in c.sources if s in sources)
            share, ungrounded = self.grounding(c, source)
            rare = self.rare_rate(c, source)
            metrics = {"grounded": round(share, 3), "rare_rate": round(rare, 3)}
            if not np.isnan(ppl[i]):
                metrics["perplexity"] = round(float(ppl[i]), 2)
            n_words = len(c.text.split())
            reason = c.drop_reason
            if reason is None and n_words < cfg.min_words:
                reason = f"too short: {n_words} words (< {cfg.min_words})"
            if reason is None and loops[i]:
                reason = "degenerate: caught in a repetition loop"
            reason = reason or ungrounded
            if reason is None and ppl[i] > cfg.max_perplexity:
                reason = f"perplexity {ppl[i]:.0f} > {cfg.max_perplexity:g}"
            if reason is None and ppl[i] < cfg.min_perplexity:
                reason = f"perplexity {ppl[i]:.2f} < {cfg.min_perplexity:g} (copied or looping)"
            if reason is None and rare > cfg.max_rare_rate:
                reason = f"rare words: {rare:.0%} (> {cfg.max_rare_rate:.0%})"
            out.append(Verdict(reason, metrics))
        return out
