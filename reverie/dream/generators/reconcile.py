"""reconcile: the model's closed-book answer to a question about the chunk, set against what the
chunk says.

Three steps: ask a question about the chunk; answer it twice in one batch, with the chunk shown
(what the text says) and hidden (what the model believed before reading); then, with the chunk
shown, say whether the belief was right. Only the text's side must be grounded, not the belief.
"""

from __future__ import annotations

from reverie.dream import entropy
from reverie.dream.base import Ask, Work, WorkItem, candidate, first_answer, parse_question, user
from reverie.models.backend import SamplingParams

NAME = "reconcile"
TEMPLATES = {
    "question": "{chunk}\n\nWrite a question about the text above that starts with \"{wh}\".",
    "open": "{chunk}\n\nQuestion: {question}\nAnswer with a few words copied from the text above.",
    "closed": "Answer in one short sentence: {question}",
    "reconcile": "{chunk}\n\nQuestion: {question}\nSomeone guessed: {guess}\nThe text says: {answer}\n"
    "In one or two sentences, say whether the guess was right and what is true according to the text.",
    "dream": "Question: {question}\nWhat I believed before reading: {guess}\nWhat the text says: {answer}\n{verdict}",
}
SAMPLING = {
    "question": SamplingParams(temperature=0.9, top_p=0.95, min_p=0.05, max_new_tokens=40),
    "open": SamplingParams(temperature=0.3, top_p=0.95, max_new_tokens=32),
    "closed": SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=40),
    "reconcile": SamplingParams(temperature=0.7, top_p=0.95, min_p=0.05, max_new_tokens=80),
}
EST_TOKENS = 110
GROUNDING_SLACK = 0.0


def work(item: WorkItem) -> Work:
    chunk = item.chunk.text
    wh = entropy.question_word(item.rng)
    (gen_q,) = yield [Ask(user(TEMPLATES["question"].format(chunk=chunk, wh=wh)), SAMPLING["question"])]
    question = parse_question(gen_q.text)
    if not question:
        return []
    gen_o, gen_c = yield [
        Ask(user(TEMPLATES["open"].format(chunk=chunk, question=question)), SAMPLING["open"]),
        Ask(user(TEMPLATES["closed"].format(question=question)), SAMPLING["closed"]),
    ]
    answer, guess = first_answer(gen_o.text), first_answer(gen_c.text) or "I did not know."
    if not answer:
        return []
    ask_r = Ask(user(TEMPLATES["reconcile"].format(chunk=chunk, question=question, guess=guess, answer=answer)),
                SAMPLING["reconcile"])
    (gen_r,) = yield [ask_r]
    verdict = gen_r.text.strip()
    text = TEMPLATES["dream"].format(question=question, guess=guess, answer=answer, verdict=verdict)
    return [candidate(item, ask_r, gen_r, text, answer=answer, checked_text=f"{question}\n{answer}\n{verdict}",
                      entropy={"closed_book": guess, "opening": wh})]
