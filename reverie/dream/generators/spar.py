"""spar: one call poses a hard question about the chunk, a careful call (low temperature) gives
the reference answer from the chunk, and a quick answerer (high temperature) tries it several
times. A pair is kept only when the answerer is right sometimes but not always: always right is
too easy, never right usually means a bad question or reference. The second round shows the
earlier questions and asks for a harder one, so the questions climb in difficulty."""

from __future__ import annotations

import re

from reverie.dream import entropy
from reverie.dream.base import Ask, Work, WorkItem, candidate, first_answer, parse_question, say_different, user
from reverie.models.backend import SamplingParams

NAME = "spar"
TEMPLATES = {
    "pose": "{chunk}\n\nWrite a hard question about the text above that starts with \"{wh}\" and needs careful reading.{different}",
    "answer": "{chunk}\n\nQuestion: {question}\nAnswer with a few words copied from the text above.",
    "dream": "Q: {question}\nA: {answer}",
}
SAMPLING = {
    "pose": SamplingParams(temperature=0.9, top_p=0.95, min_p=0.05, max_new_tokens=40),
    "reference": SamplingParams(temperature=0.2, top_p=0.95, max_new_tokens=32),
    "try": SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=32),
}
ROUNDS = 2
ANSWERS = 4
EST_TOKENS = 2 * 30
GROUNDING_SLACK = 0.0
_FILLER = {"the", "a", "an", "of", "in", "on", "is", "was", "and", "to"}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.lower()) if w not in _FILLER}


def is_right(reply: str, reference: str) -> bool:
    """Right when the reply's answer contains most (>= 60%) of the reference's words."""
    ref = _words(reference)
    return bool(ref) and len(ref & _words(first_answer(reply))) >= 0.6 * len(ref)


def work(item: WorkItem) -> Work:
    chunk = item.chunk.text
    rng = item.rng
    out, asked = [], []
    for _ in range(ROUNDS):
        different = say_different(asked, "a harder question")
        wh = entropy.question_word(rng)
        pose = Ask(user(TEMPLATES["pose"].format(chunk=chunk, wh=wh, different=different)), SAMPLING["pose"])
        (gen_q,) = yield [pose]
        question = parse_question(gen_q.text)
        if not question:
            continue
        prompt = user(TEMPLATES["answer"].format(chunk=chunk, question=question))
        ref = Ask(prompt, SAMPLING["reference"])
        gen_ref, *replies = yield [ref] + [Ask(prompt, SAMPLING["try"])] * ANSWERS
        answer = first_answer(gen_ref.text)
        if not answer:
            continue
        right = sum(is_right(r.text, answer) for r in replies)
        reason = None
        if right == ANSWERS:
            reason = f"spar: answered {right}/{ANSWERS} times (too easy)"
        elif right == 0:
            reason = f"spar: answered 0/{ANSWERS} times (unanswerable or wrong reference)"
        text = TEMPLATES["dream"].format(question=question, answer=answer)
        out.append(candidate(item, ref, gen_ref, text, answer=answer, drop_reason=reason,
                             entropy={"earlier": list(asked), "solve_rate": right / ANSWERS, "opening": wh}))
        asked.append(question)
    return out
