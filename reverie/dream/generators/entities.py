"""entities: as EntiGraph (Yang et al. 2024) does, list the chunk's entities, then for sampled
pairs and triples write how they relate according to the text.

Entities the model lists but the chunk does not contain are discarded; with fewer than two left,
the chunk's capitalised phrases and numbers stand in, so every item still yields relations.
"""

from __future__ import annotations

import re

from reverie.dream.base import Ask, Work, WorkItem, candidate, lines, user
from reverie.models.backend import SamplingParams

NAME = "entities"
TEMPLATES = {
    "extract": "{chunk}\n\nList the people, places, things and numbers named in the text above, one per line.",
    "relate": "{chunk}\n\nAccording to the text above, how are {entities} related? Answer in two sentences.",
}
SAMPLING = {
    "extract": SamplingParams(temperature=0.5, top_p=0.95, max_new_tokens=64),
    "relate": SamplingParams(temperature=0.8, top_p=0.95, min_p=0.05, repetition_penalty=1.05, max_new_tokens=96),
}
PAIRS, TRIPLES = 2, 1
EST_TOKENS = 3 * 70
GROUNDING_SLACK = 0.0
_CAPITALISED = re.compile(r"\b(?:[A-Z][\w'-]+(?:\s+(?:of|the|de|[A-Z][\w'-]+))*|\d[\d,.]*)\b")


def entities_in(listed: str, chunk: str) -> list[str]:
    """Listed entities that occur in the chunk (case-insensitive), deduplicated, in order."""
    found, low = [], chunk.lower()
    for line in lines(listed, min_words=1):
        name = line.strip(" .:;\"'")
        if 1 < len(name) <= 60 and name.lower() in low and name.lower() not in (f.lower() for f in found):
            found.append(name)
    return found


def fallback_entities(chunk: str) -> list[str]:
    seen: list[str] = []
    for m in _CAPITALISED.finditer(chunk):
        if m.group(0) not in seen:
            seen.append(m.group(0))
    return seen


def _join(names: list[str]) -> str:
    quoted = [f'"{n}"' for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def work(item: WorkItem) -> Work:
    rng = item.rng
    ask = Ask(user(TEMPLATES["extract"].format(chunk=item.chunk.text)), SAMPLING["extract"])
    (gen,) = yield [ask]
    found = entities_in(gen.text, item.chunk.text)
    if len(found) < 3:
        found += [e for e in fallback_entities(item.chunk.text) if e not in found]
    if len(found) < 2:
        return []
    groups = [rng.sample(found, 2) for _ in range(PAIRS)]
    if len(found) >= 3:
        groups += [rng.sample(found, 3) for _ in range(TRIPLES)]
    asks = [
        Ask(user(TEMPLATES["relate"].format(chunk=item.chunk.text, entities=_join(g))), SAMPLING["relate"])
        for g in groups
    ]
    gens = yield asks
    return [
        candidate(item, a, g, entropy={"entities": group}) for a, g, group in zip(asks, gens, groups, strict=True)
    ]
