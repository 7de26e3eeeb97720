"""facts: the atomic facts a chunk states, one per line; each line is its own dream.

"Copy N facts" keeps a small model close to the text; "list the facts" makes it invent some."""

from __future__ import annotations

from reverie.dream.base import Ask, Work, WorkItem, candidate, lines, user
from reverie.models.backend import SamplingParams

NAME = "facts"
TEMPLATES = {
    "facts": "{chunk}\n\nCopy {n} facts from the text above, one per line.",
}
SAMPLING = {"facts": SamplingParams(temperature=0.6, top_p=0.95, min_p=0.05, repetition_penalty=1.05, max_new_tokens=160)}
FACTS_ASKED = ("three", "four", "five")
EST_TOKENS = 110
GROUNDING_SLACK = 0.0


def work(item: WorkItem) -> Work:
    n = item.rng.choice(FACTS_ASKED)  # how many facts to ask for varies: outside randomness
    ask = Ask(user(TEMPLATES["facts"].format(chunk=item.chunk.text, n=n)), SAMPLING["facts"])
    (gen,) = yield [ask]
    seen: set[str] = set()
    out = []
    for line in lines(gen.text):
        if line.lower() not in seen:  # a small model often lists a fact twice
            seen.add(line.lower())
            out.append(candidate(item, ask, gen, line, entropy={"asked": n}))
    return out
