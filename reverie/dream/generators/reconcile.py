"""reconcile: the model's closed-book answer to a question about the chunk, set against what the
chunk says.

Two model steps: a question whose answer is a drawn span of the chunk (as qa: the clause with the
span blanked, turned into a question), then the model's answer with the chunk hidden (what it
believed before reading). The reference answer is the span and the verdict is the pipeline's own
(reverie.dream.generators.spar.is_right on the belief and the span), followed by the clause that
states the fact: a 135M model asked "was the guess right?" answers at random. Only the text's
side must be grounded (checked_text: the question, the answer and the clause; not the belief, nor
the labels and "I was wrong" of the templates); and the belief is not outside randomness, so it is
not in `entropy` (whose words the gate counts as grounded)."""

from __future__ import annotations

from reverie.dream.base import Ask, Work, WorkItem, candidate, first_answer, user
from reverie.dream.generators import qa
from reverie.dream.generators.spar import is_right
from reverie.dream.spans import clause
from reverie.models.backend import SamplingParams

NAME = "reconcile"
TEMPLATES = {
    "question": qa.TEMPLATES["question"],
    "closed": "Answer in one short sentence: {question}",
    "verdict": {True: "I was right: the text says that {clause}.", False: "I was wrong: the text says that {clause}."},
    "dream": "Question: {question}\nWhat I believed before reading: {guess}\nWhat the text says: {answer}\n{verdict}",
}
SAMPLING = {
    "question": qa.SAMPLING["question"],
    "closed": SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=40, stop=["\n"]),
}
TRIES = 2  # questions asked; the first valid one is used
EST_TOKENS = 65  # measured: 63 per item
GROUNDING_SLACK = 0.0


def work(item: WorkItem) -> Work:
    found = yield from qa.questions(item.chunk.text, item.rng, 1, TEMPLATES["question"], SAMPLING["question"], TRIES)
    if not found:
        return []
    span, wh, question, _, _ = found[0]
    ask_c = Ask(user(TEMPLATES["closed"].format(question=question)), SAMPLING["closed"])
    (gen_c,) = yield [ask_c]
    guess = first_answer(gen_c.text) or "I did not know."
    where = clause(span, min_words=8).rstrip(".")
    where = where[0].lower() + where[1:] if where[:1].isupper() and where.split()[0].lower() in ("the", "a", "an", "in", "it", "this", "these") else where
    verdict = TEMPLATES["verdict"][is_right(guess, span.text)].format(clause=where)
    text = TEMPLATES["dream"].format(question=question, guess=guess, answer=span.text, verdict=verdict)
    return [candidate(item, ask_c, gen_c, text, answer=span.text, checked_text=f"{question}\n{span.text}\n{where}",
                      entropy={"answer": span.text, "kind": span.kind, "sentence": span.sentence, "opening": wh})]
