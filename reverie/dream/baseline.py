"""The naive baseline: plain sampling from one fixed "write about this text" prompt.

It is what a dream set must beat: the same token budget per chunk, the user's ordinary sampling
settings (`generation:` config), no outside randomness, no gate, no selection.
"""

from __future__ import annotations

from reverie.dream.base import user
from reverie.models.backend import Messages, SamplingParams

NAME = "baseline"
TEMPLATE = "{chunk}\n\nWrite about this text."
MAX_NEW_TOKENS = 128
EST_TOKENS = 100


def prompt(chunk_text: str) -> Messages:
    return user(TEMPLATE.format(chunk=chunk_text))


def sampling(generation_config) -> SamplingParams:
    return SamplingParams.from_config(generation_config, max_new_tokens=MAX_NEW_TOKENS)
