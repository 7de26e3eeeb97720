"""bookclub: a discussion of a chunk among personas drawn from the persona table."""

from __future__ import annotations

from reverie.dream import entropy
from reverie.dream.base import Ask, Work, WorkItem, candidate, user
from reverie.models.backend import SamplingParams

NAME = "bookclub"
TEMPLATES = {
    "bookclub": "{chunk}\n\nAt a book club, {n} friends discuss the text above:\n{people}\n"
    "Write their conversation about its facts, one line per speaker, like \"{first}: ...\".",
}
SAMPLING = {"bookclub": SamplingParams(temperature=1.0, top_p=0.95, min_p=0.05, repetition_penalty=1.1, max_new_tokens=200)}
EST_TOKENS = 150
GROUNDING_SLACK = 0.2  # conversation adds opinions ("I think", "interesting") by design


def work(item: WorkItem) -> Work:
    rng = item.rng
    people = entropy.personas(rng, rng.choice([2, 3]))
    prompt = TEMPLATES["bookclub"].format(
        chunk=item.chunk.text,
        n=len(people),
        people="\n".join(f"- {entropy.describe(p)}" for p in people),
        first=people[0]["name"],
    )
    ask = Ask(user(prompt), SAMPLING["bookclub"])
    (gen,) = yield [ask]
    return [candidate(item, ask, gen, entropy={"personas": people})]
