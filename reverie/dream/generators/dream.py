"""dream: recombine two or three distant chunks (little word overlap) into an unusual scenario
that still carries their facts, with two random words as extra seeds."""

from __future__ import annotations

from reverie.dream import entropy
from reverie.dream.base import Ask, Work, WorkItem, candidate, user
from reverie.models.backend import SamplingParams

NAME = "dream"
TEMPLATES = {
    "dream": "{texts}\n\nWrite a short, strange dream in which the people, places and things of {these} meet, "
    "with {word1} and {word2} in it. Keep their names, numbers and facts.",
}
SAMPLING = {"dream": SamplingParams(temperature=1.0, top_p=0.95, min_p=0.05, repetition_penalty=1.1, max_new_tokens=200)}
EST_TOKENS = 150
GROUNDING_SLACK = 0.2  # a dream adds its own scenery
PARTNERS = (1, 2)  # one or two distant chunks join the item's chunk


def work(item: WorkItem) -> Work:
    rng = item.rng
    words = entropy.random_words(rng, 2)
    chunks = [item.chunk, *item.partners]
    if len(chunks) == 1:
        texts, these = item.chunk.text, "the text above"
    else:
        texts = "\n\n".join(f"Text {i}:\n{c.text}" for i, c in enumerate(chunks, 1))
        these = "these texts"
    ask = Ask(user(TEMPLATES["dream"].format(texts=texts, these=these, word1=words[0], word2=words[1])),
              SAMPLING["dream"])
    (gen,) = yield [ask]
    return [candidate(item, ask, gen, sources=[c.id for c in chunks], entropy={"words": words})]
