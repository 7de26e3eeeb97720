"""Measuring a model for the gate: closed-book quiz, general-text perplexity, diversity probe.

    from reverie.quiz.run import Measure
    measure = Measure(questions, settings.quiz, settings.meter, general_text="wikitext2_valid.txt")
    base = measure(loaded, "base")               # QuizResult for whatever adapter is active
    base.accuracy, base.f1, base.perplexity, base.vendi, base.n_distinct

- Quiz: each question is one user message (chat template), answered greedily in at most
  `quiz.max_new_tokens` tokens, without the passage (closed book); scored by
  `reverie.quiz.score` (answer contained, token F1).
- Forgetting: perplexity exp(total NLL / total tokens) over the first `quiz.perplexity_tokens`
  tokens of a held-out general text, in windows of 512 tokens (`reverie.meter.model_metrics`).
- Diversity: the collapse probe (`reverie.meter.probe`) on `quiz.probe_prompts`, N answers each,
  with a fixed seed so every model is probed with the same random draws.

`quiz_models(rv, adapters)` (what `reverie quiz` runs) measures the base model, the adapter in
use and any named adapters on one freshly loaded base model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from reverie.config import MeterConfig, QuizConfig
from reverie.errors import ReverieError
from reverie.quiz.questions import Question
from reverie.quiz.score import contained, token_f1

WINDOW = 512  # tokens per perplexity window


@dataclass
class QuizResult:
    label: str
    n_questions: int
    accuracy: float | None  # share of answers containing the gold answer (None: no questions)
    f1: float | None
    perplexity: float | None  # on the general text (None: no general text given)
    vendi: float | None  # mean probe Vendi score
    n_distinct: float | None  # mean probe distinct answers (semantic clusters)
    seconds: dict[str, float] = field(default_factory=dict)
    answers: list[str] = field(default_factory=list)

    def as_dict(self, answers: bool = False) -> dict:
        out = asdict(self)
        if not answers:
            out.pop("answers")
        return out


def general_windows(path: Path | str, tokenizer, tokens: int) -> list[str]:
    """The first `tokens` tokens of a text file, as texts of at most WINDOW tokens."""
    path = Path(path).expanduser()
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read(tokens * 8)  # ~4 characters a token: twice what is needed
    except OSError as exc:
        raise ReverieError(f"cannot read the general text {path}: {exc.strerror}") from None
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:tokens]
    if len(ids) < 2:
        raise ReverieError(f"the general text {path} is too short to measure perplexity")
    return [tokenizer.decode(ids[i : i + WINDOW]) for i in range(0, len(ids), WINDOW)]


class Measure:
    """Measures the model as it is (the caller activates the adapter) with fixed inputs."""

    def __init__(
        self,
        questions: Sequence[Question],
        cfg: QuizConfig,
        meter_cfg: MeterConfig,
        general_text: Path | str | None = None,
        log: Callable[[str], None] | None = None,
    ):
        questions = list(questions)
        self.questions = questions[: cfg.max_questions]
        if log and len(questions) > cfg.max_questions:
            log(f"asking the first {cfg.max_questions} of {len(questions)} quiz questions (quiz.max_questions)")
        self.cfg = cfg
        self.meter_cfg = meter_cfg
        self.general_text = general_text
        self.log = log
        self._windows: list[str] | None = None
        self._embedder = None

    def __call__(
        self, loaded, label: str, progress: Callable[[str], None] | None = None, quiz: bool = True,
        rest: bool = True,
    ) -> QuizResult:
        """Quiz accuracy and F1 (`quiz`), and perplexity and the probe (`rest`), each when configured."""
        from reverie.models import SamplingParams, TransformersBackend

        backend = TransformersBackend(loaded, batch_size=self.cfg.batch_size)
        seconds: dict[str, float] = {}
        acc = f1 = ppl = vendi = distinct = None
        answers: list[str] = []
        if self.questions and quiz:
            if progress:
                progress(f"{label}: quiz")
            t0 = time.perf_counter()
            params = SamplingParams(temperature=0.0, max_new_tokens=self.cfg.max_new_tokens, seed=0)
            gens = backend.generate([[{"role": "user", "content": q.question}] for q in self.questions], params)
            answers = [g.text for g in gens]
            acc = float(np.mean([contained(a, q.answer) for a, q in zip(answers, self.questions, strict=True)]))
            f1 = float(np.mean([token_f1(a, q.answer) for a, q in zip(answers, self.questions, strict=True)]))
            seconds["quiz"] = time.perf_counter() - t0
        if self.general_text is not None and rest:
            if progress:
                progress(f"{label}: perplexity")
            t0 = time.perf_counter()
            ppl = perplexity(loaded, self._general(loaded.tokenizer))
            seconds["perplexity"] = time.perf_counter() - t0
        if self.cfg.probe_prompts and rest:
            if progress:
                progress(f"{label}: probe")
            t0 = time.perf_counter()
            vendi, distinct = self._probe(backend)
            seconds["probe"] = time.perf_counter() - t0
        return QuizResult(label, len(self.questions), acc, f1, ppl, vendi, distinct, seconds, answers)

    def _general(self, tokenizer) -> list[str]:
        if self._windows is None:
            self._windows = general_windows(self.general_text, tokenizer, self.cfg.perplexity_tokens)
        return self._windows

    def _probe(self, backend) -> tuple[float | None, float]:
        from reverie.meter.embed import make_embedder
        from reverie.meter.probe import probe
        from reverie.models import SamplingParams

        m = self.meter_cfg
        if self._embedder is None:
            self._embedder = make_embedder(m.embedder, m.max_tokens, m.embed_precision, warn=self.log)
        params = SamplingParams(
            temperature=self.cfg.probe_temperature, max_new_tokens=self.cfg.probe_max_new_tokens, seed=self.cfg.probe_seed
        )
        mean = probe(backend, self.cfg.probe_prompts, self.cfg.probe_n, params, config=m, embedder=self._embedder).mean()
        return mean.get("vendi"), mean["n_distinct"]


def perplexity(loaded, texts: Sequence[str]) -> float:
    """exp(total NLL / total scored tokens) over the texts: one figure for the whole corpus."""
    from reverie.meter.model_metrics import text_nll

    nll, counts = text_nll(loaded, texts, max_tokens=WINDOW + 8)
    return float(np.exp(nll.sum() / max(1, counts.sum())))


def quiz_models(
    rv,
    adapters: Sequence[str] = (),
    quiz_file: Path | str | None = None,
    general_text: Path | str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[QuizResult]:
    """Measure the base model, the adapter in use (if any) and the named adapters, in that order.

    Questions: `quiz_file`, else `quiz.file`, else every night's held-out questions."""
    from reverie.quiz.questions import held_out_questions, load_questions
    from reverie.sleep.adapters import activate, attach, registered

    cfg, store = rv.settings, rv.store
    file = quiz_file or cfg.quiz.file
    questions = load_questions(file) if file else held_out_questions(store)
    if not questions:
        raise ReverieError("no quiz questions: pass --quiz FILE (JSONL of question/answer) or sleep a night first")
    loaded = rv.load_base()
    names = list(dict.fromkeys(([store.get_state("adapter")] if store.get_state("adapter") else []) + list(adapters)))
    rows = [registered(store, name, loaded.identity) for name in names]
    for row in rows:
        loaded = attach(loaded, row)
    measure = Measure(questions, cfg.quiz, cfg.meter, general_text or cfg.quiz.general_text, log=rv.log)
    results = []
    for name in [None, *(r["name"] for r in rows)]:
        with activate(loaded.model, name):
            results.append(measure(loaded, name or "base", progress))
    return results
