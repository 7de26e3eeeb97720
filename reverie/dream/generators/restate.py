"""restate: a drawn sentence of the chunk told to a drawn audience in a drawn voice.

Asked to rewrite a whole paragraph "for a child, as a sports commentator", a 135M model writes a
new story (0-20% of its words in the source). So the unit is one sentence, and two kinds of tries
go in one batch: a rewrite of the sentence (after a worked example), and an opening line in the
voice that introduces the sentence, which is then quoted. The first rewrite that passes the
gate's grounding test (run here, reverie.dream.spans.grounded) is the dream; else the opening line
plus the sentence, which carries the facts verbatim while the voice frames them."""

from __future__ import annotations

import json

from reverie.dream import entropy
from reverie.dream.base import Ask, Work, WorkItem, candidate
from reverie.dream.spans import echoes, first_sentence, grounded, pick_sentences, short_piece
from reverie.models.backend import Messages, SamplingParams

NAME = "restate"
TEMPLATES = {
    "rewrite": "Rewrite this sentence for {audience}, in the voice of {voice}. Keep its names and numbers. "
    "Write one or two sentences.\n\n{sentence}",
    "opening": "You are {voice}, talking to {audience}. Write one short sentence that you would say just before "
    "telling them this fact. Do not repeat the fact.\n\nFact: {sentence}",
    "dream": "{opening} {sentence}",
}
EXAMPLE = (  # a worked rewrite, shown as an earlier chat turn
    {"audience": "a ten-year-old child", "voice": "a museum guide",
     "sentence": "The Eiffel Tower, designed by Gustave Eiffel's company, was completed in 1889 for the world fair."},
    "Look up, everyone: this is the Eiffel Tower! Gustave Eiffel's company designed it, and it was finished in 1889 "
    "for a big world fair.",
)
SAMPLING = {
    "rewrite": SamplingParams(temperature=0.6, top_p=0.95, min_p=0.05, repetition_penalty=1.05, max_new_tokens=80),
    "opening": SamplingParams(temperature=0.9, top_p=0.95, min_p=0.05, max_new_tokens=32, stop=["\n"]),
}
REWRITES, OPENINGS = 2, 2
EST_TOKENS = 45  # measured: 42 per item (SmolLM2-135M, SQuAD)
GROUNDING_SLACK = 0.1  # a voice adds its own words ("folks", "ladies and gentlemen")
BAR = 0.6 - GROUNDING_SLACK  # DreamConfig.min_grounded's default, less the slack


def rewrite_prompt(drawn: dict) -> Messages:
    return [{"role": "user", "content": TEMPLATES["rewrite"].format(**EXAMPLE[0])},
            {"role": "assistant", "content": EXAMPLE[1]},
            {"role": "user", "content": TEMPLATES["rewrite"].format(**drawn)}]


def work(item: WorkItem) -> Work:
    rng = item.rng
    chunk = item.chunk.text
    (sentence,) = pick_sentences(chunk, rng, 1)
    sentence = short_piece(sentence)
    drawn = {"audience": entropy.audience(rng), "voice": entropy.voice(rng), "sentence": sentence}
    asks = [Ask(rewrite_prompt(drawn), SAMPLING["rewrite"])] * REWRITES
    asks += [Ask([{"role": "user", "content": TEMPLATES["opening"].format(**drawn)}], SAMPLING["opening"])] * OPENINGS
    gens = yield asks
    extra = json.dumps(drawn)
    for ask, gen in zip(asks[:REWRITES], gens[:REWRITES], strict=True):
        text = " ".join(gen.text.split())
        if (text and grounded(text, chunk, BAR, extra) and text.lower() != sentence.lower()
                and not echoes(text, EXAMPLE[0]["sentence"] + " " + EXAMPLE[1], chunk)):
            return [candidate(item, ask, gen, text, entropy={**drawn, "form": "rewrite"})]
    for ask, gen in zip(asks[REWRITES:], gens[REWRITES:], strict=True):
        opening = first_sentence(gen.text, max_words=25)
        if opening and grounded(opening, chunk, 0.0, extra):  # no invented numbers
            text = TEMPLATES["dream"].format(opening=opening, sentence=sentence)
            return [candidate(item, ask, gen, text, entropy={**drawn, "form": "opening"})]
    return [candidate(item, asks[0], gens[0], entropy={**drawn, "form": "rewrite"})]  # the gate will say why
