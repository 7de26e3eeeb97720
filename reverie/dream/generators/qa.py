"""qa: question-answer pairs, answer first (answer-aware question generation).

The pipeline picks the answers: short spans of the chunk (a year, "720 feet", a name, a quoted
title, "the wrought iron gates"; reverie.dream.spans), from different sentences and of mixed
kinds. For each, the model sees the clause holding the span with the span blanked out ("The
façade was designed by ___ in 1891") and turns it into a question starting with an opening that
fits the span ("Who" after "by", "How many feet" for "720 feet"). The answer is the span itself,
so it occurs in the chunk by construction; the model only writes the question, which a 135M
model does well when it has two worked examples (chat turns) and a blank to ask about, and badly
when asked for "a question about the text" (it asks "What is the answer?").

Each span is asked twice in the same batch; the first question that passes `valid_question`
(a real question starting with the opening it was given, not containing the answer, about the
clause) is kept. The run's qa items on one chunk share out its spans (`turn_spans`): each is
asked before any is asked again, so more items cover more of the chunk's facts.
"""

from __future__ import annotations

import random

from reverie.answers import normalize
from reverie.dream.base import Ask, Work, WorkItem, candidate
from reverie.dream.gate import content_stems
from reverie.dream.spans import Span, blank, clause, echoes, pick_spans, question_words
from reverie.models.backend import Messages, SamplingParams

NAME = "qa"
TEMPLATES = {
    "question": "Turn this sentence into a question whose answer is the blank ___. Start with \"{wh}\".\n\n{cloze}",
    "dream": "Q: {question}\nA: {answer}",
}
# Worked examples, shown as earlier chat turns: (cloze, opening, question).
EXAMPLES = [
    ("The Eiffel Tower was designed by ___ for the world fair of 1889.", "Who",
     "Who designed the Eiffel Tower for the world fair of 1889?"),
    ("the bridge was opened in ___ after six years of work", "In what year", "In what year was the bridge opened?"),
]
_EXAMPLE_TEXT = " ".join(c + " " + q for c, _, q in EXAMPLES)
SAMPLING = {
    # warm enough that the two tries differ, cool enough to keep the clause's words
    "question": SamplingParams(temperature=0.7, top_p=0.95, min_p=0.05, max_new_tokens=40, stop=["\n"]),
}
SPANS = 4  # answers per item
TRIES = 2  # questions asked per answer; the first valid one is kept
EST_TOKENS = SPANS * 16  # measured: 65 per item ("Q: ... A: ..." ~20 tokens; some spans get no valid question)
GROUNDING_SLACK = 0.0


def question_prompt(span: Span, wh: str, template: str = TEMPLATES["question"]) -> Messages:
    """The chat that asks for a question about the span's blanked clause, after EXAMPLES."""
    messages: Messages = []
    for cloze, opening, question in EXAMPLES:
        messages += [{"role": "user", "content": template.format(wh=opening, cloze=cloze)},
                     {"role": "assistant", "content": question}]
    messages.append({"role": "user", "content": template.format(wh=wh, cloze=blank(clause(span), span))})
    return messages


def valid_question(reply: str, span: Span, chunk: str = "", opening: str = "") -> str | None:
    """The question in a reply, or None when it is not usable: no question mark, too short or
    long, not starting with the `opening` it was asked to start with (a "Who" question
    answered by a year pairs the span with the wrong fact), a blank left in, the answer given
    away, no content word of the clause, or a word of the worked examples that the chunk lacks
    ("bridge": not about the text)."""
    text = reply.strip().splitlines()[0].strip() if reply.strip() else ""
    if "?" not in text:
        return None
    question = text[: text.index("?") + 1].strip().strip("\"'")
    if opening and not question.lower().startswith(opening.lower() + " "):
        return None
    n = len(question.split())
    if n < 4 or n > 30 or "_" in question:
        return None
    answer = normalize(span.text)
    if answer and f" {answer} " in f" {normalize(question)} ":
        return None
    about = set(content_stems(clause(span))) - set(content_stems(span.text))
    if about and not set(content_stems(question)) & about:
        return None
    if echoes(question, _EXAMPLE_TEXT, chunk or span.sentence):
        return None
    return question


def fix_opening(question: str) -> str:
    return question[0].upper() + question[1:]


def questions(chunk: str, rng, n: int, template: str, params: SamplingParams, tries: int = TRIES,
              spans: list[Span] | None = None):
    """Sub-generator (use with `yield from`): n spans of the chunk (or the `spans` given), `tries`
    questions asked for each in one batch; returns [(span, opening, question, ask, generation)]
    for the spans that got a valid question (the first valid try). Shared with spar, which poses
    the same way."""
    spans = pick_spans(chunk, rng, n) if spans is None else spans
    openings = [rng.choice(question_words(s)) for s in spans]
    asks = [Ask(question_prompt(s, wh, template), params) for s, wh in zip(spans, openings, strict=True)
            for _ in range(tries)]
    if not asks:
        return []
    gens = yield asks
    found = []
    for k, (span, wh) in enumerate(zip(spans, openings, strict=True)):
        for ask, gen in zip(asks[k * tries:(k + 1) * tries], gens[k * tries:(k + 1) * tries], strict=True):
            question = valid_question(gen.text, span, chunk, wh)
            if question:
                found.append((span, wh, fix_opening(question), ask, gen))
                break
    return found


def turn_spans(item: WorkItem, n: int = SPANS, wrap: bool = True) -> list[Span]:
    """The item's n spans: the chunk's spans in one order shared by all of the run's items of its
    generator on the chunk, each item taking the next n, so a chunk with several items has every
    fact asked once before any is asked again (random draws per item would ask some twice, others
    never). Past the last span, `wrap` starts again (a new question for a fact asked before);
    without it the item gets what is left, maybe nothing."""
    spans = pick_spans(item.chunk.text, random.Random(item.chunk_seed), 10**6)
    first = item.turn * n
    if not spans or (not wrap and first >= len(spans)):
        return []
    if not wrap:
        return spans[first : first + n]
    return [spans[(first + k) % len(spans)] for k in range(min(n, len(spans)))]


def work(item: WorkItem) -> Work:
    found = yield from questions(item.chunk.text, item.rng, SPANS, TEMPLATES["question"], SAMPLING["question"],
                                 spans=turn_spans(item))
    return [candidate(item, ask, gen, TEMPLATES["dream"].format(question=question, answer=span.text),
                      answer=span.text,
                      entropy={"answer": span.text, "kind": span.kind, "sentence": span.sentence, "opening": wh})
            for span, wh, question, ask, gen in found]
