"""qa: question-answer pairs whose answers are facts of the chunk.

Two calls per pair, because a small model asked for "Q: ... A: ..." usually stops after the
question: one asks a question about the chunk that starts with a drawn opening ("Who", "In what
year", ...: asked for just "a question", it asks "What is a good question?"), another answers it
from the chunk. Three pairs per
item; from the second on, the question prompt shows the questions already asked and asks for a
different one ("say something different"), so the pairs spread over the chunk.
"""

from __future__ import annotations

from reverie.dream import entropy
from reverie.dream.base import Ask, Work, WorkItem, candidate, first_answer, parse_question, say_different, user
from reverie.models.backend import SamplingParams

NAME = "qa"
TEMPLATES = {
    "question": "{chunk}\n\nWrite a question about the text above that starts with \"{wh}\".{different}",
    "answer": "{chunk}\n\nQuestion: {question}\nAnswer with a few words copied from the text above.",
    "dream": "Q: {question}\nA: {answer}",
}
SAMPLING = {
    "question": SamplingParams(temperature=0.9, top_p=0.95, min_p=0.05, max_new_tokens=40),
    "answer": SamplingParams(temperature=0.3, top_p=0.95, max_new_tokens=32),
}
TURNS = 3
EST_TOKENS = 3 * 30
GROUNDING_SLACK = 0.0


def work(item: WorkItem) -> Work:
    rng = item.rng
    out, asked = [], []
    for _ in range(TURNS):
        different = say_different(asked, "a question")
        wh = entropy.question_word(rng)
        ask_q = Ask(user(TEMPLATES["question"].format(chunk=item.chunk.text, wh=wh, different=different)),
                    SAMPLING["question"])
        (gen_q,) = yield [ask_q]
        question = parse_question(gen_q.text)
        if not question:
            continue
        ask_a = Ask(user(TEMPLATES["answer"].format(chunk=item.chunk.text, question=question)), SAMPLING["answer"])
        (gen_a,) = yield [ask_a]
        answer = first_answer(gen_a.text)
        if not answer:
            continue
        text = TEMPLATES["dream"].format(question=question, answer=answer)
        out.append(candidate(item, ask_a, gen_a, text, answer=answer, entropy={"earlier": list(asked), "opening": wh}))
        asked.append(question)
    return out
