"""cloze: question-answer pairs the pipeline writes alone, the answer's clause asked in place.

Each answer span of the chunk (reverie.dream.spans) becomes "Q: <its clause, the span replaced
by its question word>? / A: <span>": "The main façade stretches how many feet along Cromwell
Gardens?" / "720 feet". No model call, so it costs nothing to generate, and the question is
always about its answer; `qa` asks the model for fluent questions, which a 135M model pairs
with the wrong span about a third of the time (a "Who" question answered by a year). The two
together give a fact a fluent question and an exact one. The items on a chunk share one order
of its spans and take the next SPANS each (qa.turn_spans); an item past the last span writes
nothing, since asking a span again would repeat its text word for word.
"""

from __future__ import annotations

from reverie.dream.base import Candidate, Work, WorkItem
from reverie.dream.generators.qa import turn_spans
from reverie.dream.spans import in_situ_question
from reverie.models.backend import SamplingParams

NAME = "cloze"
TEMPLATES = {"dream": "Q: {question}\nA: {answer}"}
SAMPLING: dict[str, SamplingParams] = {}  # nothing is sampled
SPANS = 6  # answers per item
EST_TOKENS = SPANS * 16  # "Q: ... A: ..." is ~16-20 tokens; some spans make no question
GROUNDING_SLACK = 0.0
_NONE = SamplingParams(temperature=0.0, max_new_tokens=0)


def work(item: WorkItem) -> Work:
    out = []
    for span in turn_spans(item, SPANS, wrap=False):  # asked again, a span would give the same text
        question = in_situ_question(span)
        if question is None:
            continue
        text = TEMPLATES["dream"].format(question=question, answer=span.text)
        out.append(Candidate(generator=NAME, text=text, sources=[item.chunk.id], prompt="", params=_NONE,
                             seed=item.seed, n_tokens=max(1, round(len(text) / 4)), answer=span.text,
                             entropy={"answer": span.text, "kind": span.kind, "sentence": span.sentence}))
    return out
    yield  # a generator function that never asks the model
