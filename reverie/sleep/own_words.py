"""Answers in the model's own words: what a night trains its question-answer dreams to say.

    from reverie.sleep.own_words import phrase
    said = phrase(backend, [("The main façade stretches how many feet?", "720 feet")])
    # ["The main façade stretches 720 feet."]          backend: the base model, no adapter

A dream's answer is a span of the source ("720 feet"), and the default model never answers a
question that way: it replies in a sentence. Trained to say bare spans, it first has to learn a
new way of answering, and that shift moves it everywhere: on 10 SEAL passages, one epoch of bare
spans raised WikiText perplexity from 19.8 to 44 before it had learned 8% of the answers. So the
base model is told the question and its right answer and asked to answer in one sentence
(self-distillation, as in Yang et al. 2024, "Self-Distillation Bridges Distribution Gap in
Language Model Fine-Tuning"): the target is then the model's own way of saying the fact, and
what training changes is the fact. On the same 10 passages, without regularisers, this held
perplexity to 26 after one epoch and 32 after two (bare spans: 44 and 111), and the model said
more of its answers. In full 50-passage nights, with the KL to the base model already holding
perplexity, it did not carry over: the joke probe's Vendi fell (training on the model's own
greedy sentences narrows what it says), so the gate kept weaker adapters, and one of two nights
learned less than bare spans do (BENCHMARKS.md, eighth session). So `sleep.own_words` is off by
default.

A reply is used only where it carries the answer and nothing the question and answer do not
say: its first sentence that contains the answer (as the quiz scores it), cut after the answer's
clause, or after the answer, when words follow that neither the question nor the answer holds (a
135M model adds "a renowned American artist" to a name). When no sentence has the answer, or one
makes a claim of its own before it, the answer is `FALLBACK`: the span in the sentence the model
most often answers with when told the answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from reverie.dream.gate import content_stems
from reverie.dream.spans import sentences
from reverie.models.backend import SamplingParams
from reverie.quiz.score import contained

PROMPT = ("Question: {question}\nThe correct answer is: {answer}.\n"
          "Answer the question in one sentence, using the correct answer.")
FALLBACK = "The answer is: {answer}."
MAX_NEW_TOKENS = 40  # one sentence; the quiz reads 24 tokens of an answer
_PROMPT_WORDS = set(content_stems("the correct answer to this question is"))  # "The correct answer is 1909."
_CLAUSE_END = re.compile(r"[,;:]|\s[-–—]\s|\s\(")


def phrase(backend, pairs: list[tuple[str, str]], progress: Callable[[int], None] | None = None) -> list[str]:
    """For each (question, answer), the answer as `backend` says it, or FALLBACK (greedy: the
    same pairs always give the same texts)."""
    if not pairs:
        return []
    params = SamplingParams(temperature=0.0, max_new_tokens=MAX_NEW_TOKENS, stop=["\n"], seed=0)
    gens = backend.generate([[{"role": "user", "content": PROMPT.format(question=q, answer=a)}] for q, a in pairs],
                            params, progress=progress)
    return [own_answer(g.text, q, a) for (q, a), g in zip(pairs, gens, strict=True)]


def own_answer(reply: str, question: str, answer: str) -> str:
    """The reply's first sentence containing `answer`, cut after the answer's clause (or the
    answer) when what follows it is not in the question or answer; FALLBACK when no sentence will do."""
    known = set(content_stems(question)) | set(content_stems(answer)) | _PROMPT_WORDS
    for sentence in sentences(reply):  # initials and abbreviations kept whole ("F. W. Moody")
        if not contained(sentence, answer):
            continue
        at = sentence.lower().find(answer.lower())
        if at < 0:
            break  # contained only once normalised: no clause to cut at
        head, tail = sentence[:at], sentence[at:]
        if set(content_stems(head)) - known:
            break  # the model's own claim before the answer: not a restatement
        if set(content_stems(tail)) - known:
            cut = _CLAUSE_END.search(tail, len(answer))
            clause = tail[: cut.start()] if cut else tail
            tail = tail[: len(answer)] if set(content_stems(clause)) - known else clause
            return (head + tail).rstrip(" .") + "."
        return sentence.strip()
    return FALLBACK.format(answer=answer.rstrip(". "))

