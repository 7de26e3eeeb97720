"""restate: rewrite a chunk for a drawn audience, in a drawn voice, keeping its facts."""

from __future__ import annotations

from reverie.dream import entropy
from reverie.dream.base import Ask, Work, WorkItem, candidate, user
from reverie.models.backend import SamplingParams

NAME = "restate"
TEMPLATES = {
    "restate": "{chunk}\n\nRewrite the text above for {audience}, in the voice of {voice}. "
    "Keep every name, number and fact.",
}
SAMPLING = {"restate": SamplingParams(temperature=0.9, top_p=0.95, min_p=0.05, repetition_penalty=1.1, max_new_tokens=160)}
EST_TOKENS = 120
GROUNDING_SLACK = 0.1  # a voice adds its own words ("folks", "ladies and gentlemen")


def work(item: WorkItem) -> Work:
    rng = item.rng
    drawn = {"audience": entropy.audience(rng), "voice": entropy.voice(rng)}
    ask = Ask(user(TEMPLATES["restate"].format(chunk=item.chunk.text, **drawn)), SAMPLING["restate"])
    (gen,) = yield [ask]
    return [candidate(item, ask, gen, entropy=drawn)]
