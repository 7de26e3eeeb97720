"""What every generator shares: work items, the prompt/answer protocol, candidates, parsing.

A generator is a module with `NAME`, `TEMPLATES` (its prompts, in one place), `SAMPLING` (one
`SamplingParams` per stage), `EST_TOKENS` (typical tokens a work item yields, for planning) and
`work(item)`: a Python generator that yields lists of `Ask` (prompts to generate, all sent in one
backend batch together with the other items' asks), receives the `Generation`s, and finally
returns the `Candidate` dreams. Multi-step generators (reconcile, spar) simply yield more than
once. The runner (reverie.dream.run) drives many items in lockstep.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Generator as PyGenerator
from dataclasses import dataclass, field

from reverie.models.backend import Generation, Messages, SamplingParams


@dataclass(frozen=True)
class Chunk:
    id: int
    document_id: int
    text: str


@dataclass
class WorkItem:
    index: int  # position in the run's plan: with the run seed, it fixes everything random
    generator: str
    chunk: Chunk
    partners: list[Chunk]  # distant chunks to recombine with (the `dream` generator)
    seed: int
    turn: int = 0  # how many items of this generator came before it on this chunk
    chunk_seed: int = 0  # shared by the run's items on this chunk: they can split its facts between them

    @property
    def rng(self) -> random.Random:
        return random.Random(self.seed)


@dataclass
class Ask:
    prompt: Messages
    params: SamplingParams  # seed left None: the runner sets one per backend batch


@dataclass
class Candidate:
    generator: str
    text: str
    sources: list[int]  # chunk ids the dream drew on
    prompt: str  # the user message that produced the text
    params: SamplingParams
    seed: int  # the sampling seed of the batch it was drawn in
    n_tokens: int
    entropy: dict = field(default_factory=dict)  # outside randomness: personas, audience, words, ...
    answer: str | None = None  # for question-answer dreams: must occur in the source
    checked_text: str | None = None  # the part that must be grounded, when not the whole text
    drop_reason: str | None = None  # set by the generator itself (e.g. spar: too easy)


Work = PyGenerator[list[Ask], list[Generation], list[Candidate]]


def derive_seed(*parts) -> int:
    """A 31-bit seed from the run seed and a path of names/indices: stable across runs and resumes."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def user(text: str) -> Messages:
    return [{"role": "user", "content": text}]


def candidate(item: WorkItem, ask: Ask, gen: Generation, text: str | None = None, **fields) -> Candidate:
    """A candidate from one generation; a piece of it (text=...) is charged its share of tokens."""
    piece = gen.text if text is None else text
    share = len(piece) / max(1, len(gen.text))
    return Candidate(
        generator=item.generator,
        text=piece.strip(),
        sources=fields.pop("sources", [item.chunk.id]),
        prompt=ask.prompt[-1]["content"],
        params=ask.params,
        seed=gen.seed if gen.seed is not None else item.seed,
        n_tokens=max(1, round(gen.n_tokens * min(1.0, share))),
        **fields,
    )


_BULLET = re.compile(r"^\s*(?:[-*•·]+|\d{1,2}[.)]|\(\d{1,2}\))\s*")


def lines(text: str, min_words: int = 3) -> list[str]:
    """Non-empty lines with bullets and list numbers removed, at least `min_words` words each."""
    out = []
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip()
        if len(line.split()) >= min_words:
            out.append(line)
    return out


_Q = re.compile(r"^\s*(?:\*\*)?(?:Q|Question)\s*\d*\s*[:.)]\s*(?:\*\*)?\s*(.+)$", re.I | re.M)
_A = re.compile(r"^\s*(?:\*\*)?(?:A|Answer)\s*\d*\s*[:.)]\s*(?:\*\*)?\s*(.+)$", re.I | re.M)


def parse_qa(text: str) -> list[tuple[str, str]]:
    """(question, answer) pairs from lenient "Q: ... / A: ..." text. Without labels, a text with a
    question mark is split after the first question."""
    qs = [(m.start(), "q", m.group(1).strip()) for m in _Q.finditer(text)]
    ans = [(m.start(), "a", m.group(1).strip()) for m in _A.finditer(text)]
    pairs, question = [], None
    for _, kind, value in sorted(qs + ans):
        if kind == "q":
            question = value
        elif question:
            pairs.append((question, value))
            question = None
    if not pairs and not qs and "?" in text:
        head, _, tail = text.partition("?")
        head, tail = head.strip(), tail.strip()
        if head and tail:
            pairs.append((head + "?", tail.splitlines()[0].strip()))
    return [(q, a) for q, a in pairs if q and a]


def first_answer(text: str) -> str:
    """The answer part of a reply: after an "A:" label if any, first line, without filler."""
    m = _A.search(text)
    line = (m.group(1) if m else text).strip().splitlines()
    line = line[0].strip() if line else ""
    return re.sub(r"^(?:the answer is|answer)\s*[:,-]?\s*", "", line, flags=re.I).strip()
