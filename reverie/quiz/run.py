"""Measuring a model for the gate: closed-book quiz, general-text perplexity, the probe.

    from reverie.quiz.run import Measure
    measure = Measure(questions, settings.quiz, settings.meter, general_text="wikitext2_valid.txt")
    base = measure(loaded, "base")               # QuizResult for whatever adapter is active
    base.accuracy, base.f1, base.perplexity, base.vendi, base.n_distinct, base.answer_tokens
    night = measure(loaded, "night-3")           # night.probe_kl: how far it moved from the base

- Quiz: each question is one user message (chat template), answered greedily in at most
  `quiz.max_new_tokens` tokens, without the passage (closed book); scored by
  `reverie.answers` (answer contained, token F1). And the likelihood of each gold answer as the
  reply (mean log-probability a token, `answer_logp`, `retained_logp`): it moves with what a model
  knows long before a greedy answer turns right, so the gate tests it, paired per question
  (reverie.sleep.verdict).
- Forgetting: perplexity exp(total NLL / total tokens) over the first `quiz.perplexity_tokens`
  tokens of a held-out general text, in windows of 512 tokens (`reverie.meter.model_metrics`).
- Probe: the collapse probe (`reverie.meter.probe`) on `quiz.probe_prompts` and the first
  `quiz.probe_file_prompts` prompts of `quiz.probe_file`, N answers each, with a fixed seed so
  every model is probed with the same random draws. It gives the mean over prompts of the Vendi
  score, of the distinct answers and of the answer length in tokens (what a user notices first
  when a night taught the model to answer "Tell me a joke." with "Super Bowl").
- Drift: KL(base || model) per token, estimated on the base model's own probe answers: the mean
  over those answers of (log p_base(answer) - log p_model(answer)) / answer tokens, each answer
  scored as the assistant turn after its prompt (`model_metrics.answer_log_probs`). The first
  model probed under the label "base" gives the answers (`Measure.reference`) and scores 0; every
  later model costs one batched forward pass over them. Probe answers are sampled with no top-p
  cut, so at `quiz.probe_temperature` 1 (the default) they are draws from the base model itself
  and the mean estimates the KL; at other temperatures it is a proxy.

`quiz_models(store, settings, load_base, adapters)` (what `reverie quiz` runs) measures the base
model, the adapter in use and any named adapters on one freshly loaded base model.

Lookup (`reverie quiz --lookup`, `retrieve`): the same questions answered two more ways, as chat
answers (reverie.wake.lookup): with lookup, each question in front of the relevant chunks the
store's hybrid search recalls for it (none relevant: closed book); and with the gold passage
alone in front of it, in the same format, when the quiz file gives one (`context`): the open-book
ceiling. Retrieval recall@k: the share of questions with a gold passage whose passage is among
the `wake.recall_chunks` best chunks found (a chunk is the passage when nearly all the words of
the shorter of the two are in the other: a chunk may hold a short passage or part of a long one).
The retrieval does not depend on the model: it is done once for all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from reverie.answers import contained, token_f1
from reverie.config import MeterConfig, QuizConfig
from reverie.errors import ReverieError
from reverie.progress import Event, Progress
from reverie.quiz.questions import Question

WINDOW = 512  # tokens per perplexity window
PROBE_EXAMPLES = 3  # probe answers kept per prompt with a model's figures (the report shows them)
# What a measure with `rest` adds to the quiz: perplexity and the probe (cached per home for the base model).
REST_FIELDS = ("perplexity", "vendi", "n_distinct", "answer_tokens", "probe_kl", "probe_examples")


@dataclass
class QuizResult:
    label: str
    n_questions: int
    accuracy: float | None  # share of answers containing the gold answer (None: no questions)
    f1: float | None
    perplexity: float | None  # on the general text (None: no general text given)
    vendi: float | None  # mean probe Vendi score
    n_distinct: float | None  # mean probe distinct answers (semantic clusters)
    answer_tokens: float | None = None  # mean probe answer length in tokens
    probe_kl: float | None = None  # KL(base || this model) per token on the base's probe answers
    retained: float | None = None  # accuracy on earlier nights' held-out questions (None: none asked)
    n_retained: int = 0  # earlier nights' questions asked
    answer_logp: list[float] = field(default_factory=list)  # per question: gold answer's log-prob a token
    retained_logp: list[float] = field(default_factory=list)  # the same on earlier nights' questions
    lookup_accuracy: float | None = None  # with the chunks lookup recalled in front of each question
    lookup_f1: float | None = None
    gold_accuracy: float | None = None  # with the gold passage in front (questions that have one)
    gold_f1: float | None = None
    n_gold: int = 0  # questions with a gold passage
    recall_at_k: float | None = None  # share of those whose gold passage was among the k chunks found
    lookup_k: int | None = None
    recall_at: dict[int, float] = field(default_factory=dict)  # recall@1, @3, @5 (retrieval alone)
    lookup_relevant: float | None = None  # share of questions lookup found something relevant for
    probe_examples: dict[str, list[str]] = field(default_factory=dict)  # prompt -> answers of its largest clusters
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


@dataclass
class ProbeReference:
    """The base model's probe answers, one row each, and their log-probability under the base."""

    prompts: list[str]
    answers: list[str]
    ended: list[bool]  # the answer ended by itself (its end-of-sequence token is scored too)
    log_probs: np.ndarray
    tokens: np.ndarray  # tokens scored per answer

    def kl(self, log_probs: np.ndarray) -> float | None:
        """Mean over answers of (log p_base - log p_model) / tokens; None when nothing was scored."""
        scored = self.tokens > 0
        if not scored.any():
            return None
        return float(np.mean((self.log_probs - log_probs)[scored] / self.tokens[scored]))


def probe_file_prompts(path: Path | str, n: int) -> list[str]:
    """The first `n` prompts of a JSONL probe file (field "prompt", else "text")."""
    from reverie.meter.inputs import read_prompts

    try:
        return read_prompts(Path(path).expanduser())[:n]
    except ReverieError as exc:
        raise ReverieError(f"quiz.probe_file: {exc}") from None


class Measure:
    """Measures the model as it is (the caller activates the adapter) with fixed inputs."""

    def __init__(
        self,
        questions: Sequence[Question],
        cfg: QuizConfig,
        meter_cfg: MeterConfig,
        general_text: Path | str | Sequence[str] | None = None,
        log: Callable[[str], None] | None = None,
        earlier: Sequence[Question] = (),
        retrieval: Retrieval | None = None,
    ):
        questions = list(questions)
        self.questions = questions[: cfg.max_questions]
        if log and len(questions) > cfg.max_questions:
            log(f"asking the first {cfg.max_questions} of {len(questions)} quiz questions (quiz.max_questions)")
        # Retention: earlier nights' held-out questions, the most recent max_questions of them.
        self.earlier = list(earlier)[-cfg.max_questions:]
        self.cfg = cfg
        self.meter_cfg = meter_cfg
        self.general_text = general_text
        self.log = log
        extra = probe_file_prompts(cfg.probe_file, cfg.probe_file_prompts) if cfg.probe_file else []
        self.probe_prompts = list(cfg.probe_prompts) + extra
        self.retrieval = retrieval  # `retrieve`d for these questions: then lookup and gold answers too
        self.reference: ProbeReference | None = None  # set by the first probe of a model labelled "base"
        self._windows: list[str] | None = None
        self._embedder = None

    def __call__(
        self, loaded, label: str, progress: Progress | None = None, quiz: bool = True,
        rest: bool = True,
    ) -> QuizResult:
        """Quiz accuracy and F1 (`quiz`), and perplexity and the probe (`rest`), each when configured."""
        from reverie.models import TransformersBackend

        # One backend per call: its engine caches prompt prefixes, which a change of adapter strength voids.
        backend = TransformersBackend(loaded, batch_size=self.cfg.batch_size)
        seconds: dict[str, float] = {}

        def timed(what: str, work: Callable):
            if progress:
                progress(Event("quiz", detail=f"{label}: {what}"))
            t0 = time.perf_counter()
            out = work()
            seconds[what] = time.perf_counter() - t0
            return out

        acc = f1 = ppl = vendi = distinct = length = kl = retained = None
        answers: list[str] = []
        logp = np.zeros(0)
        examples: dict[str, list[str]] = {}
        new = len(self.questions)
        if (self.questions or self.earlier) and quiz:
            answers, scores = timed("quiz", lambda: self._quiz(backend, self.questions + self.earlier))
            logp = timed("likelihood", lambda: gold_logp(loaded, self.questions + self.earlier))
            if new:
                acc, f1 = float(np.mean(scores[:new, 0])), float(np.mean(scores[:new, 1]))
            if self.earlier:
                retained = float(np.mean(scores[new:, 0]))
            answers = answers[:new]
        looked: dict = {}
        if self.retrieval is not None and self.questions and quiz:
            looked = timed("lookup", lambda: self._lookup(backend))
        if self.general_text is not None and rest:
            ppl = timed("perplexity", lambda: perplexity(loaded, self._general(loaded.tokenizer)))
        if self.probe_prompts and rest:
            probed = timed("probe", lambda: self._probe(backend))
            mean = probed.mean()
            vendi, distinct, length = mean.get("vendi"), mean["n_distinct"], mean["answer_tokens"]
            kl = timed("drift", lambda: self._drift(loaded, probed, label))
            # What a user would see: one answer of each of the three largest clusters, per prompt.
            examples = {p.prompt: [p.answers[c[0]] for c in p.clusters[:PROBE_EXAMPLES]] for p in probed.prompts}
        return QuizResult(label, len(self.questions), acc, f1, ppl, vendi, distinct, length, kl,
                          retained, len(self.earlier) if quiz else 0, logp[:new].tolist(), logp[new:].tolist(),
                          **looked, probe_examples=examples, seconds=seconds, answers=answers)

    def _lookup(self, backend) -> dict:
        """Accuracy and F1 with the recalled chunks, and with the gold passage, in front of each question."""
        from reverie.wake.lookup import lookup_message, passage

        r = self.retrieval
        qs = self.questions
        _, scores = self._quiz(backend, qs, [lookup_message(h, q.question) for h, q in zip(r.shown, qs, strict=False)])
        out = {"lookup_accuracy": float(np.mean(scores[:, 0])), "lookup_f1": float(np.mean(scores[:, 1])),
               "recall_at_k": r.recall_at_k, "lookup_k": r.k, "recall_at": r.recall_at, "lookup_relevant": r.relevant}
        gold = [q for q in qs if q.context]
        if gold:
            _, g = self._quiz(backend, gold, [f"{passage(q.title or '', q.context)}\n\n{q.question}" if q.title
                                              else f"{q.context.strip()}\n\n{q.question}" for q in gold])
            out.update(gold_accuracy=float(np.mean(g[:, 0])), gold_f1=float(np.mean(g[:, 1])), n_gold=len(gold))
        return out

    def rest_key(self, identity: str) -> str:
        """What the perplexity and probe of a model depend on besides its weights: the same key,
        the same figures (the probe's draws are seeded). A night caches the base model's under it."""
        import hashlib
        import json

        texts = self.general_text if not isinstance(self.general_text, (str, Path)) else str(self.general_text)
        keyed = {"model": identity, "prompts": self.probe_prompts, "general": texts,
                 "quiz": self.cfg.model_dump(mode="json", include={"perplexity_tokens", "probe_n", "probe_max_new_tokens",
                                                                  "probe_temperature", "probe_seed"}),
                 "meter": self.meter_cfg.model_dump(mode="json")}
        return hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def rest_of(self, result: QuizResult) -> dict:
        """The base model's perplexity and probe figures and its probe answers, as JSON."""
        ref = self.reference
        return {**{f: getattr(result, f) for f in REST_FIELDS},
                "reference": None if ref is None else {
                    "prompts": ref.prompts, "answers": ref.answers, "ended": ref.ended,
                    "log_probs": ref.log_probs.tolist(), "tokens": ref.tokens.tolist()}}

    def with_rest(self, result: QuizResult, rest: dict) -> QuizResult:
        """`result` (a quiz alone) with the cached perplexity and probe of `rest_of`; the cached
        probe answers become the reference every later model's drift is measured on."""
        ref = rest["reference"]
        if ref is not None:
            self.reference = ProbeReference(ref["prompts"], ref["answers"], ref["ended"],
                                            np.asarray(ref["log_probs"]), np.asarray(ref["tokens"]))
        return replace(result, **{f: rest[f] for f in REST_FIELDS if f in rest})  # older caches: no examples

    def _quiz(self, backend, questions: list[Question], asked: list[str] | None = None) -> tuple[list[str], np.ndarray]:
        """Greedy answers and, per answer, (answer contained, token F1); `asked`: the user messages
        (default: each question alone, closed book)."""
        from reverie.models import SamplingParams

        params = SamplingParams(temperature=0.0, max_new_tokens=self.cfg.max_new_tokens, seed=0)
        asked = [q.question for q in questions] if asked is None else asked
        gens = backend.generate([[{"role": "user", "content": a}] for a in asked], params)
        said = [g.text for g in gens]
        scores = np.array([(contained(a, q.answer), token_f1(a, q.answer)) for a, q in zip(said, questions, strict=True)],
                          dtype=float)
        return said, scores

    def _general(self, tokenizer) -> list[str]:
        if self._windows is None:
            if isinstance(self.general_text, (str, Path)):
                self._windows = general_windows(self.general_text, tokenizer, self.cfg.perplexity_tokens)
            else:  # texts given as they are (the base model's own held-out paragraphs)
                self._windows = list(self.general_text)
        return self._windows

    def _probe(self, backend):
        from reverie.meter.embed import make_embedder
        from reverie.meter.probe import probe
        from reverie.models import SamplingParams

        m = self.meter_cfg
        if self._embedder is None:
            self._embedder = make_embedder(m.embedder, m.max_tokens, m.embed_precision, warn=self.log)
        params = SamplingParams(
            temperature=self.cfg.probe_temperature, max_new_tokens=self.cfg.probe_max_new_tokens, seed=self.cfg.probe_seed
        )
        return probe(backend, self.probe_prompts, self.cfg.probe_n, params, config=m, embedder=self._embedder)

    def _drift(self, loaded, probed, label: str) -> float | None:
        """KL(base || this model) per token on the reference answers (see the module docstring).
        The first model probed as "base" becomes the reference and scores 0; None before it."""
        from reverie.meter.model_metrics import answer_log_probs

        if self.reference is not None:
            ref = self.reference
            return ref.kl(answer_log_probs(loaded, ref.prompts, ref.answers, ref.ended)[0])
        if label != "base":
            return None
        prompts = [p.prompt for p in probed.prompts for _ in p.answers]
        answers = [a for p in probed.prompts for a in p.answers]
        ended = [e for p in probed.prompts for e in p.ended]
        log_probs, tokens = answer_log_probs(loaded, prompts, answers, ended)
        self.reference = ProbeReference(prompts, answers, ended, log_probs, tokens)
        return self.reference.kl(log_probs)


@dataclass
class Retrieval:
    """What lookup found for each quiz question (see the module docstring)."""

    k: int
    shown: list[list]  # per question: the relevant chunks (SearchHits) put in front of it
    recall_at_k: float | None  # None: no question has a gold passage
    relevant: float  # share of questions with at least one relevant chunk
    recall_at: dict[int, float] = field(default_factory=dict)  # recall@1, @3, @5 (and @k) of the gold passage


def _words(text: str) -> set[str]:
    from reverie.answers import normalize

    return set(normalize(text).split())


def same_passage(chunk: str, context: str, share: float = 0.9) -> bool:
    """Whether a chunk is (or is part of, or holds) the passage: nearly all the words of the shorter
    of the two are in the other."""
    a, b = _words(chunk), _words(context)
    return bool(a and b) and len(a & b) >= share * min(len(a), len(b))


def retrieve(lookup, questions: Sequence[Question], k: int, progress: Progress | None = None,
             user_id: int | None = None) -> Retrieval:
    """Look every question up once (`reverie.wake.lookup.Lookup`) in what the owner, or user
    `user_id`, may see; recall@k of the gold passages."""
    from reverie.wake.lookup import recall_query

    lookup.embed_missing(progress)
    depths = sorted({1, 3, 5, k})
    shown, found, gold = [], dict.fromkeys(depths, 0), 0
    for i, q in enumerate(questions, 1):
        shown.append(lookup.recall(q.question, k, user_id).hits)
        if q.context:
            gold += 1
            ranked = lookup.search(q.question, depths[-1], user_id, words=recall_query(q.question))
            first = next((n for n, h in enumerate(ranked, 1) if same_passage(h.text, q.context)), None)
            for d in depths:
                found[d] += first is not None and first <= d
        if progress:
            progress(Event("lookup", i, len(questions)))
    return Retrieval(k, shown, found[k] / gold if gold else None, sum(bool(s) for s in shown) / max(1, len(shown)),
                     {d: found[d] / gold for d in depths} if gold else {})


def gold_logp(loaded, questions: Sequence[Question]) -> np.ndarray:
    """Per question: the mean log-probability a token of its gold answer as the model's reply,
    closed book (reverie.meter.model_metrics.answer_log_probs), under the adapter now active; of a
    question with several accepted answers, the likeliest."""
    from reverie.meter.model_metrics import answer_log_probs

    owners, prompts, answers = [], [], []
    for i, q in enumerate(questions):
        for a in dict.fromkeys([q.answer] if isinstance(q.answer, str) else q.answer):
            owners.append(i)
            prompts.append(q.question)
            answers.append(a)
    out = np.full(len(questions), -np.inf)
    if not answers:
        return out
    total, tokens = answer_log_probs(loaded, prompts, answers, [False] * len(answers))
    np.maximum.at(out, np.asarray(owners), total / np.maximum(tokens, 1))
    return out


def own_text(store) -> list[str] | None:
    """The base model's held-out paragraphs a night measures forgetting on (reverie.sleep.night.own_text)."""
    import json

    stored = store.get_state("own_text")
    return json.loads(stored) if stored else None


def perplexity(loaded, texts: Sequence[str]) -> float:
    """exp(total NLL / total scored tokens) over the texts: one figure for the whole corpus."""
    from reverie.meter.model_metrics import text_nll

    nll, counts = text_nll(loaded, texts, max_tokens=WINDOW + 8)
    return float(np.exp(nll.sum() / max(1, counts.sum())))


def quiz_models(
    store,
    settings,
    load_base: Callable[[], object],
    adapters: Sequence[str] = (),
    quiz_file: Path | str | None = None,
    general_text: Path | str | None = None,
    progress: Progress | None = None,
    lookup=None,
    log: Callable[[str], None] | None = None,
) -> list[QuizResult]:
    """Measure the base model, the adapter in use (if any) and the named adapters, in that order, on
    one fresh copy of the base model (`load_base()`); `lookup` (the store's reverie.wake.lookup.Lookup):
    answered with lookup and with the gold passage too (see the module docstring).

    Questions: `quiz_file`, else `quiz.file`, else every night's held-out questions."""
    from reverie.models.lora import activate, attach, registered
    from reverie.quiz.questions import held_out_questions, load_questions

    file = quiz_file or settings.quiz.file
    questions = load_questions(file) if file else held_out_questions(store)
    if not questions:
        raise ReverieError("no quiz questions: pass --quiz FILE (JSONL of question/answer) or sleep a night first")
    loaded = load_base()
    names = list(dict.fromkeys(([store.get_state("adapter")] if store.get_state("adapter") else []) + list(adapters)))
    rows = [registered(store, name, loaded.identity) for name in names]
    for row in rows:
        loaded = attach(loaded, row)
    general = general_text or settings.quiz.general_text or own_text(store)
    retrieval = None
    if lookup is not None:
        retrieval = retrieve(lookup, questions[: settings.quiz.max_questions], max(1, settings.wake.recall_chunks),
                             progress)
    measure = Measure(questions, settings.quiz, settings.meter, general, log=log, retrieval=retrieval)
    results = []
    for name in [None, *(r["name"] for r in rows)]:
        with activate(loaded.model, name):
            results.append(measure(loaded, name or "base", progress))
    return results
