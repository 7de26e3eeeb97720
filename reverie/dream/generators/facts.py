"""facts: the atomic facts of drawn sentences, one per line; each line is its own dream.

Given a whole paragraph and asked for "the facts", a 135M model invents some; given one sentence
(or clause group) and a worked example of splitting one, it copies and cuts, and the lines stay
grounded. Two sentences per item, drawn from the chunk, at a low temperature."""

from __future__ import annotations

from reverie.dream.base import Ask, Work, WorkItem, candidate, lines
from reverie.dream.spans import echoes, pick_sentences
from reverie.models.backend import Messages, SamplingParams

NAME = "facts"
TEMPLATES = {
    "facts": "Split this sentence into short facts, one per line. Use its own words.\n\n{sentence}",
}
# A worked example, shown as an earlier chat turn: it sets the length and the copying.
EXAMPLE = (
    "The Eiffel Tower, designed by Gustave Eiffel's company, was built in 1889 for the world fair and is "
    "330 metres tall.",
    "The Eiffel Tower was designed by Gustave Eiffel's company.\nThe Eiffel Tower was built in 1889.\n"
    "The Eiffel Tower was built for the world fair.\nThe Eiffel Tower is 330 metres tall.",
)
SAMPLING = {"facts": SamplingParams(temperature=0.4, top_p=0.95, min_p=0.05, repetition_penalty=1.05, max_new_tokens=120)}
SENTENCES = 2
EST_TOKENS = SENTENCES * 32  # measured: 64 per item (~2 lines of ~16 tokens per sentence)
GROUNDING_SLACK = 0.0


def facts_prompt(sentence: str) -> Messages:
    return [{"role": "user", "content": TEMPLATES["facts"].format(sentence=EXAMPLE[0])},
            {"role": "assistant", "content": EXAMPLE[1]},
            {"role": "user", "content": TEMPLATES["facts"].format(sentence=sentence)}]


def work(item: WorkItem) -> Work:
    drawn = pick_sentences(item.chunk.text, item.rng, SENTENCES)
    asks = [Ask(facts_prompt(s), SAMPLING["facts"]) for s in drawn]
    gens = yield asks
    seen: set[str] = set()
    out = []
    for sentence, ask, gen in zip(drawn, asks, gens, strict=True):
        for line in lines(gen.text):
            if echoes(line, EXAMPLE[0], item.chunk.text):
                continue  # a line about the worked example, not about the chunk
            if line.lower() not in seen:  # a small model often lists a fact twice
                seen.add(line.lower())
                out.append(candidate(item, ask, gen, line, entropy={"sentence": sentence}))
    return out
