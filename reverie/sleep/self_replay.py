"""General text written by the base model itself: replay against forgetting without outside text.

    from reverie.sleep.self_replay import write_general
    texts = write_general(backend, n=64, seed=7)      # backend: the base model, no adapter

A night that trains only on its dreams moves the model everywhere, not just where the dreams
are: with the default model, three epochs on a night's dreams raised WikiText perplexity by
16-42% (docs/LOG.md, third and fourth sessions). Replaying general text with a KL term to the base model holds the rest
of the distribution in place, but needs general text, and a user may have none to give
(`sleep.general_text`). So, when none is given, the base model writes it: short paragraphs
about random everyday words (reverie.dream.entropy.random_words, so topics do not repeat),
sampled at temperature 1 so they follow the base model's own distribution. The night trains
on them as plain text with KL(base || adapted) at every position, the regulariser of
"learning without forgetting" (Li and Hoiem, 2016): the adapted model is held to the base
model's whole next-token distribution on the base model's own text, not only to its sampled
words. They are written once per night, stored with the night's plan (a resumed night trains
on the same texts) and never stored as dreams.
"""

from __future__ import annotations

import random

from reverie.dream.entropy import random_words
from reverie.models.backend import SamplingParams

PROMPT = "Write a short encyclopedia paragraph about {word}."
MAX_NEW_TOKENS = 128  # a paragraph: as long as the general-text slices of `sleep.general_text`
MIN_WORDS = 20  # shorter replies (a refusal, a one-liner) are not general text


def write_general(backend, n: int, seed: int, progress=None, tag: str = "self-replay") -> list[str]:
    """Up to `n` paragraphs by `backend`, deterministic in `seed` and `tag` (shorter replies are
    left out). Another tag draws other words and samples (the held-out forgetting text)."""
    if n <= 0:
        return []
    rng = random.Random(f"{tag}:{seed}")
    words = [random_words(rng, 1)[0] for _ in range(n)]
    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=MAX_NEW_TOKENS, seed=rng.randrange(2**31))
    gens = backend.generate([[{"role": "user", "content": PROMPT.format(word=w)}] for w in words], params,
                            progress=progress)
    return [g.text.strip() for g in gens if len(g.text.split()) >= MIN_WORDS]
