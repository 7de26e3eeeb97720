"""entities: as EntiGraph (Yang et al. 2024) relates a chunk's entities, but only pairs that one
sentence of the chunk names together, and with that sentence shown.

Asked how two entities of a whole paragraph relate, a 135M model invents a relation (12-30%
grounded). The pipeline finds the pairs itself (names, titles, numbers and 'the ___' phrases of
one sentence: reverie.dream.spans) and shows the model just that sentence and a worked example;
its one-sentence answer then restates what the sentence says about the two. Two answers are
sampled per pair; the first that names both and passes the gate's grounding test (run here) is
kept, else the more grounded one goes to the gate."""

from __future__ import annotations

import itertools

from reverie.dream.base import Ask, Work, WorkItem, candidate
from reverie.dream.gate import content_stems
from reverie.dream.spans import answer_spans, echoes, first_sentence, grounded, sentences
from reverie.models.backend import Messages, SamplingParams

NAME = "entities"
TEMPLATES = {
    "relate": "{sentence}\n\nAccording to this sentence, how are \"{a}\" and \"{b}\" related? Answer in one sentence.",
}
EXAMPLE = (  # a worked answer, shown as an earlier chat turn
    {"sentence": "The Eiffel Tower, designed by Gustave Eiffel's company, was completed in 1889 for the world fair.",
     "a": "Eiffel Tower", "b": "1889"},
    "The Eiffel Tower was completed in 1889.",
)
SAMPLING = {"relate": SamplingParams(temperature=0.6, top_p=0.95, min_p=0.05, max_new_tokens=60, stop=["\n"])}
_EXAMPLE_TEXT = EXAMPLE[0]["sentence"] + " " + EXAMPLE[1]
PAIRS = 3
TRIES = 2
EST_TOKENS = PAIRS * 12  # measured: 36 per item (one short sentence per pair)
GROUNDING_SLACK = 0.0
BAR = 0.6  # DreamConfig.min_grounded's default


def relate_prompt(sentence: str, a: str, b: str) -> Messages:
    return [{"role": "user", "content": TEMPLATES["relate"].format(**EXAMPLE[0])},
            {"role": "assistant", "content": EXAMPLE[1]},
            {"role": "user", "content": TEMPLATES["relate"].format(sentence=sentence, a=a, b=b)}]


def pairs_by_sentence(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """(sentence, its pairs of distinct entity spans) for every sentence naming two or more."""
    out = []
    for s in sentences(text):
        ents = list(dict.fromkeys(sp.text for sp in answer_spans(s)))
        if len(ents) >= 2:
            out.append((s, list(itertools.combinations(ents, 2))))
    return out


def _names_both(text: str, a: str, b: str) -> bool:
    have = set(content_stems(text)) | {w.lower() for w in text.split()}
    return all(any(w in have for w in content_stems(e)) or e.lower() in text.lower() for e in (a, b))


def work(item: WorkItem) -> Work:
    rng = item.rng
    chunk = item.chunk.text
    pool = pairs_by_sentence(chunk)
    rng.shuffle(pool)
    groups = []
    for sentence, pairs in pool[:PAIRS]:
        a, b = rng.choice(pairs)
        groups.append((sentence, a, b))
    if not groups:
        return []
    asks = [Ask(relate_prompt(s, a, b), SAMPLING["relate"])
            for s, a, b in groups for _ in range(TRIES)]
    gens = yield asks
    out = []
    for k, (sentence, a, b) in enumerate(groups):
        tries = list(zip(asks[k * TRIES:(k + 1) * TRIES], gens[k * TRIES:(k + 1) * TRIES], strict=True))
        said = [(ask, gen, first_sentence(gen.text, max_words=45)) for ask, gen in tries]
        said = [t for t in said if t[2] and not echoes(t[2], _EXAMPLE_TEXT, chunk)]  # not the example again
        good = [t for t in said if grounded(t[2], chunk, BAR) and _names_both(t[2], a, b)]
        if good or said:
            ask, gen, text = (good or said)[0]
            out.append(candidate(item, ask, gen, text, entropy={"entities": [a, b], "sentence": sentence}))
    return out
