"""bookclub: a discussion of a chunk among personas drawn from the persona table, built turn by turn.

Asked to write a whole book-club conversation, a 135M model chats about pizza. So the pipeline
builds the turns: each persona brings a different drawn sentence of the text (quoted after a drawn
opener, "I read that ..."), and the model writes only that persona's one-sentence reaction, in
their temperament and from their occupation and interest. Two reactions are sampled per turn; the
first short one that invents no number is used (none: the turn is the quote alone). The dream is
the turns joined, "Name: ..." one per line."""

from __future__ import annotations

import json

from reverie.dream import entropy
from reverie.dream.base import Ask, Work, WorkItem, candidate
from reverie.dream.spans import first_sentence, grounded, in_running_text, pick_sentences, short_piece
from reverie.models.backend import SamplingParams

NAME = "bookclub"
TEMPLATES = {
    "react": "{person}. At a book club, a friend reads out: \"{quote}\"\nWrite {name}'s reply: one short, "
    "{temperament} sentence about it.",
    "turn": "{name}: {opener} {quote}. {reaction}",
}
# How a persona brings up a sentence: drawn per turn, so quotes do not all open the same way.
OPENERS = ["I read that", "The book says that", "It says here that", "Did you know that", "What struck me is that",
           "Apparently", "I liked the part where it says that", "So, according to the text,"]
SAMPLING = {"react": SamplingParams(temperature=0.9, top_p=0.95, min_p=0.05, max_new_tokens=40, stop=["\n"])}
TRIES = 2
EST_TOKENS = 125  # measured: 129 per item (2-3 turns)
GROUNDING_SLACK = 0.2  # conversation adds opinions ("I think", "interesting") by design


def work(item: WorkItem) -> Work:
    rng = item.rng
    chunk = item.chunk.text
    people = entropy.personas(rng, rng.choice([2, 3]))
    quotes = [in_running_text(short_piece(s), chunk) for s in pick_sentences(chunk, rng, len(people))]
    people = people[: len(quotes)]
    openers = [rng.choice(OPENERS) for _ in people]
    asks = [Ask([{"role": "user", "content": TEMPLATES["react"].format(
        person=entropy.describe(p), quote=q, name=p["name"], temperament=p["temperament"])}], SAMPLING["react"])
        for p, q in zip(people, quotes, strict=True) for _ in range(TRIES)]
    gens = yield asks
    extra = json.dumps(people)
    turns = []
    for k, (p, q, opener) in enumerate(zip(people, quotes, openers, strict=True)):
        reaction = ""
        for gen in gens[k * TRIES:(k + 1) * TRIES]:
            said = first_sentence(gen.text, max_words=20)
            # no invented numbers, and not the persona's own description read back
            if said and len(said.split()) >= 3 and grounded(said, chunk, 0.0, extra) and str(p["age"]) not in said:
                reaction = said
                break
        turns.append(TEMPLATES["turn"].format(name=p["name"], opener=opener, quote=q, reaction=reaction).strip())
    if not turns:
        return []
    text = "\n".join(turns)
    return [candidate(item, asks[0], gens[0], text, entropy={"personas": people, "openers": openers, "quotes": quotes})]
