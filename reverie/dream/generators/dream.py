"""dream: recombine two or three distant chunks (little word overlap) into a strange dream that
still carries their facts, with two random words as extra seeds.

Asked to write the dream itself, a 135M model forgets every fact (0% grounded). So the pipeline
carries one drawn sentence (or clause) of each chunk verbatim, and the model writes only the
strange link between them: one dreamlike sentence in which a thing of the first text meets a
thing of the second, with the two random words. The dream is "I dreamt that <fact 1>. <link>
Then <fact 2>." Two links are sampled; the first short one that invents no number is used."""

from __future__ import annotations

import json

from reverie.dream import entropy
from reverie.dream.base import Ask, Work, WorkItem, candidate
from reverie.dream.spans import answer_spans, first_sentence, grounded, in_running_text, pick_sentences, short_piece
from reverie.models.backend import SamplingParams

NAME = "dream"
TEMPLATES = {
    "link": "Write one short, strange sentence from a dream in which {a} meets {b}. Use the words \"{word1}\" "
    "and \"{word2}\".",
    "dream": "I dreamt that {first}. {link} {rest}",
    "then": ["Then {fact}.", "And suddenly {fact}.", "When I woke up, I remembered that {fact}."],
}
SAMPLING = {"link": SamplingParams(temperature=1.0, top_p=0.95, min_p=0.05, max_new_tokens=40, stop=["\n"])}
TRIES = 2
EST_TOKENS = 90  # measured: 90 per item
GROUNDING_SLACK = 0.2  # a dream adds its own scenery
PARTNERS = (1, 2)  # one or two distant chunks join the item's chunk
_NAMED = ("name", "title", "thing")


def _thing(piece: str, rng) -> str:
    """Something a piece names (a name, a title, 'the ___'), for the link to bring together."""
    spans = [s for s in answer_spans(piece) if s.kind in _NAMED]
    if not spans:
        return "a stranger"
    s = rng.choice(spans)
    return s.text if s.kind != "thing" else f"the {s.text}"


def work(item: WorkItem) -> Work:
    rng = item.rng
    words = entropy.random_words(rng, 2)
    chunks = [item.chunk, *item.partners]
    facts = [in_running_text(short_piece(pick_sentences(c.text, rng, 1)[0], max_words=30), c.text) for c in chunks]
    things = [_thing(f, rng) for f in facts]
    b = things[1] if len(things) > 1 else "a stranger"
    ask = Ask([{"role": "user", "content": TEMPLATES["link"].format(a=things[0], b=b, word1=words[0], word2=words[1])}],
              SAMPLING["link"])
    gens = yield [ask] * TRIES
    sources = "\n".join(c.text for c in chunks)
    link = ""
    for gen in gens:
        said = first_sentence(gen.text, max_words=30)
        if said and grounded(said, sources, 0.0, json.dumps(words)):  # no invented numbers
            link = said
            break
    thens = [rng.choice(TEMPLATES["then"]).format(fact=f) for f in facts[1:]]
    text = TEMPLATES["dream"].format(first=facts[0], link=link, rest=" ".join(thens)).replace("  ", " ")
    return [candidate(item, ask, gens[0], text.strip(), sources=[c.id for c in chunks],
                      entropy={"words": words, "facts": facts, "things": things, "then": thens})]
