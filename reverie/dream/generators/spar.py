"""spar: a question about the chunk whose reference answer is a drawn span of it (as qa: the
clause with the span blanked, turned into a question), tried several times by a quick answerer
(high temperature) that sees the whole chunk. A pair is kept only when the answerer is right
sometimes but not always: always right is too easy, never right usually means a bad question.
The reference is the span, so it is in the chunk by construction; a 135M model's own reference
answers were mostly not. Two rounds run side by side, on spans from different sentences."""

from __future__ import annotations

import re

from reverie.dream.base import Ask, Work, WorkItem, candidate, first_answer, user
from reverie.dream.generators import qa
from reverie.models.backend import SamplingParams

NAME = "spar"
TEMPLATES = {
    "pose": qa.TEMPLATES["question"],
    "answer": "{chunk}\n\nQuestion: {question}\nAnswer with a few words copied from the text above.",
    "dream": "Q: {question}\nA: {answer}",
}
SAMPLING = {
    "pose": qa.SAMPLING["question"],
    # quick but not wild: at temperature 1.0 a 135M answerer was right 0/4 times on 14 of 16 questions
    "try": SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=24, stop=["\n"]),
}
ROUNDS = 2
TRIES = 2  # questions posed per round; the first valid one is used
ANSWERS = 4
EST_TOKENS = ROUNDS * 16  # measured: 31 per item (before its own solve-rate drop)
GROUNDING_SLACK = 0.0
_FILLER = {"the", "a", "an", "of", "in", "on", "is", "was", "and", "to"}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.lower()) if w not in _FILLER}


def is_right(reply: str, reference: str) -> bool:
    """Right when the reply's answer contains most (>= 60%) of the reference's words."""
    ref = _words(reference)
    return bool(ref) and len(ref & _words(first_answer(reply))) >= 0.6 * len(ref)


def work(item: WorkItem) -> Work:
    rng = item.rng
    chunk = item.chunk.text
    posed = yield from qa.questions(chunk, rng, ROUNDS, TEMPLATES["pose"], SAMPLING["pose"], TRIES)
    if not posed:
        return []
    tries = [Ask(user(TEMPLATES["answer"].format(chunk=chunk, question=q)), SAMPLING["try"])
             for _, _, q, _, _ in posed for _ in range(ANSWERS)]
    replies = yield tries
    out = []
    for k, (span, wh, question, ask, gen) in enumerate(posed):
        right = sum(is_right(r.text, span.text) for r in replies[k * ANSWERS:(k + 1) * ANSWERS])
        reason = None
        if right == ANSWERS:
            reason = f"spar: answered {right}/{ANSWERS} times (too easy)"
        elif right == 0:
            reason = f"spar: answered 0/{ANSWERS} times (unanswerable or too hard)"
        text = TEMPLATES["dream"].format(question=question, answer=span.text)
        out.append(candidate(item, ask, gen, text, answer=span.text, drop_reason=reason, entropy={
            "answer": span.text, "kind": span.kind, "sentence": span.sentence, "opening": wh,
            "solve_rate": right / ANSWERS}))
    return out
