"""Outside randomness for dreams: personas, audiences, voices, random words and distant chunk
pairs. (Question openings fit the drawn answer span: reverie.dream.spans.question_words.)

A small model given the same prompt writes the same few texts; fresh content in the prompt moves
it somewhere else each time. Every draw comes from the work item's own `random.Random` (seeded
from the run seed and the item index), and is recorded with the dream.

    rng = random.Random(7)
    persona(rng)          # {'name': 'Ines', 'age': 41, 'occupation': 'beekeeper', ...}
    audience(rng), voice(rng), random_words(rng, 2)
    distant_partners(chunk, chunks, rng, k=1)   # low-overlap chunks to recombine with
"""

from __future__ import annotations

import random
import re
from functools import cache

from reverie.dream.base import Chunk

NAMES = [
    "Ada", "Bilal", "Chen", "Dara", "Emeka", "Freya", "Goran", "Hana", "Ines", "Jonas", "Kemal", "Lena",
    "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara",
]
OCCUPATIONS = [
    "nurse", "carpenter", "physics teacher", "farmer", "bus driver", "lawyer", "chef", "librarian",
    "software engineer", "beekeeper", "nun", "retired sailor", "plumber", "journalist", "shop owner",
    "police officer", "painter", "accountant", "student", "mechanic", "soldier", "midwife", "banker",
]
TEMPERAMENTS = [
    "sceptical", "cheerful", "shy", "blunt", "curious", "grumpy", "dreamy", "anxious", "patient",
    "impatient", "sarcastic", "earnest",
]
INTERESTS = [
    "football", "old maps", "gardening", "chess", "cooking", "money", "birds", "history", "music",
    "religion", "engines", "fashion", "politics", "the sea", "mathematics", "films", "children", "law",
]
AUDIENCES = [
    "a ten-year-old child", "a busy manager", "a history student", "a tourist", "a grandmother",
    "a scientist", "a teenager", "a foreign visitor learning English", "a judge", "a farmer",
    "a newspaper reader", "a sailor", "a football fan", "a poet", "a new employee",
]
VOICES = [
    "a sports commentator", "a travel guide", "a detective", "a radio news reader", "a teacher",
    "a storyteller by the fire", "a museum guide", "a friendly neighbour", "a tour bus driver",
    "a diary entry", "a letter to a friend", "a quiz show host",
]


def persona(rng: random.Random) -> dict:
    return {
        "name": rng.choice(NAMES),
        "age": rng.randint(18, 85),
        "occupation": rng.choice(OCCUPATIONS),
        "temperament": rng.choice(TEMPERAMENTS),
        "interest": rng.choice(INTERESTS),
    }


def personas(rng: random.Random, k: int) -> list[dict]:
    """k personas with distinct names."""
    names = rng.sample(NAMES, k)
    return [{**persona(rng), "name": n} for n in names]


def describe(p: dict) -> str:
    return f"{p['name']}, {p['age']}, a {p['temperament']} {p['occupation']} who loves {p['interest']}"


def audience(rng: random.Random) -> str:
    return rng.choice(AUDIENCES)


def voice(rng: random.Random) -> str:
    return rng.choice(VOICES)


@cache
def _word_list() -> tuple[str, ...]:
    """Concrete-ish English words: wordfreq's 4000 most frequent, minus the 400 commonest
    (function words) and short ones."""
    from wordfreq import top_n_list

    return tuple(w for w in top_n_list("en", 4000)[400:] if w.isalpha() and len(w) >= 4)


def random_words(rng: random.Random, k: int) -> list[str]:
    return rng.sample(_word_list(), k)


_WORD = re.compile(r"[a-z]{4,}")


def _vocab(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def distant_partners(chunk: Chunk, chunks: list[Chunk], rng: random.Random, k: int = 1, pool: int = 8) -> list[Chunk]:
    """k other chunks with the least word overlap (Jaccard) with `chunk`, among `pool` drawn at
    random: distant, so their recombination is unusual, yet drawn, so pairs vary."""
    others = [c for c in chunks if c.id != chunk.id]
    if not others:
        return []
    drawn = rng.sample(others, min(pool, len(others)))
    mine = _vocab(chunk.text)

    def overlap(c: Chunk) -> float:
        theirs = _vocab(c.text)
        return len(mine & theirs) / max(1, len(mine | theirs))

    return sorted(drawn, key=overlap)[:k]
