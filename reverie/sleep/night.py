"""One night: dream over what was read, distil what the model says with the passages in front of
it into a LoRA adapter, quiz it, gate it.

    from reverie.sleep import run_night
    result = rv.sleep(budget=20000, quiz_file="quiz.jsonl", progress=print)   # reverie.app.Reverie
    result = run_night(NightContext(store, settings, load_base, dream, lookup, log), budget=20000)
    result.status, result.figures["candidate"]["accuracy"], result.timings

1. Dream (`_dream`): when documents were read since the last finished night, `ctx.dream` over
   them with the generators in `sleep.generators` (cloze by default: every fact of a passage
   asked in place, at no generation cost).
2. Plan (`_plan`, stored with the night, so a killed night resumes with the same data): the
   pending dreams (kept by dreaming, not yet learned by a kept night) are the night's new
   examples. Without a quiz file, a share (`quiz.holdout`) of their question-answer dreams is
   held out as quiz questions, never trained on, and dreams asking the same question are
   dropped from training. Replay: earlier nights' learned dreams (`replay_ratio` per new
   example) and slices of `sleep.general_text` (`general_ratio`), or without one, paragraphs the
   base model writes (`sleep.self_replay`, reverie.sleep.self_replay).
3. Rows (`_rows`): with `sleep.objective: distill` (the default), the dreams become queries, the
   base model answers them with their passage in its prompt, and the night learns its answers
   and its distributions along them without the passage (reverie.sleep.distill); the answers and
   the teacher's targets are stored with the night. With `sft`, each dream is a chat example
   learned from its own answer (reverie.sleep.data).
4. Train (reverie.sleep.train), checkpointing into `<home>/nights/<id>/`; the candidate is saved in
   PEFT format as `<home>/adapters/night-<id>` and registered as a candidate.
5. Quiz and gate (`_quiz_and_gate`): the base model, the adapter the user has now (if any) and
   the candidate (reverie.quiz.run), at the strongest of `sleep.strengths` whose forgetting and
   probe stay within the gate's bounds (reverie.sleep.verdict). Kept: the adapter is saved at that
   strength and selected for chat and quiz (`reverie use`). Rejected: the selection stays as it
   was (rolled back), the night is recorded as rejected with all its figures, and its dreams stay
   pending for a later night. Each model also answers the quiz with lookup from the store
   (`quiz.lookup`, `_retrieval`): what chat gets, recorded beside closed book, not gated.

Why night N continues night N-1's kept adapter (`sleep.continue_adapter`, default) rather than
retraining on every dream so far: a night's cost then stays proportional to what was read that
day (retraining grows without bound, and on a CPU a night must fit in the hours one sleeps);
replay of earlier dreams and general text plus the KL and entropy terms guard what earlier
nights taught, and the gate compares every candidate against the base model, so drift cannot
creep in night by night. `continue_adapter: false` retrains from the base on all learned and
pending dreams, for when the adapter's settings change.

A killed night (or Ctrl-C) is resumed by the next `reverie sleep`: the plan is in the store, the
teacher's targets and the training checkpoint on disk, and a candidate already saved is not
trained again.

A user's night (`reverie sleep --user NAME`, `user_id`) dreams over that user's conversations
and documents, learns them with the shared reading's dreams (never another user's or the
owner's conversations; reverie.store.users), continues that user's kept adapter, and puts its
own in use for that user only.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reverie.config import QuizConfig, SleepConfig
from reverie.dream.generators import QA_GENERATORS
from reverie.errors import ReverieError
from reverie.progress import Progress, counter
from reverie.quiz.questions import Question, dream_question, held_out_questions, holdout, load_questions, same_question
from reverie.sleep import records
from reverie.sleep.data import Example, encode, from_dream, general_examples
from reverie.store.users import adapter_key

if TYPE_CHECKING:  # types only: the night imports the models lazily, so the CLI starts fast
    from reverie.config import Settings
    from reverie.dream import DreamResult
    from reverie.models.loading import LoadedModel
    from reverie.store import Store
    from reverie.wake.lookup import Lookup


@dataclass
class NightContext:
    """What a night is handed (reverie.app.Reverie.sleep builds it): nothing else of the application."""

    store: Store
    settings: Settings
    load_base: Callable[[], LoadedModel]  # a fresh copy of the base model, no adapter
    dream: Callable[..., DreamResult]  # dream over new reading: (budget, generators, user_id, progress)
    lookup: Callable[[], Lookup]  # the store's hybrid search (its embedder loads on first use)
    log: Callable[[str], None]


@dataclass
class NightResult:
    night_id: int
    status: str  # 'kept' or 'rejected'
    resumed: bool
    adapter: str  # the candidate's name
    parent: str | None  # the kept adapter it continued, if any
    checks: list  # reverie.sleep.verdict.Check
    figures: dict[str, dict]  # 'base', 'reference' (when an adapter was kept before), 'candidate'
    timings: dict[str, float]  # seconds per phase
    tokens: dict[str, float]  # dreamed, examples, trained, tokens_per_second
    history: list[float] = field(default_factory=list)  # training loss per step


def run_night(ctx, budget: int | None = None, quiz_file: Path | str | None = None, progress: Progress | None = None,
              user_id: int | None = None):
    """One night of the owner, or of user `user_id`; see the module docstring."""
    store = ctx.store
    night = records.unfinished_night(store, user_id)
    resumed = night is not None
    if resumed:
        night_id = night["id"]
        ctx.log(f"resuming night {night_id}, interrupted before it finished")
        records.set_night_running(store, night_id)
        config = json.loads(night["config"])
        if quiz_file is not None and str(Path(quiz_file).expanduser().resolve()) != config["quiz_file"]:
            ctx.log(f"warning: night {night_id} keeps the quiz it started with ({config['quiz_file'] or 'held-out questions'})")
    else:
        night_id, config = _begin(ctx, budget, quiz_file, progress, user_id)
    try:
        return _sleep(ctx, night_id, config, resumed, progress)
    except KeyboardInterrupt:
        records.set_night_running(store, night_id, "interrupted")
        raise


def _begin(ctx, budget, quiz_file, progress, user_id) -> tuple[int, dict]:
    """Check the inputs, dream, then plan and start the night; returns (night id, its stored config)."""
    cfg = ctx.settings.sleep
    file = quiz_file or ctx.settings.quiz.file
    if file is not None:
        load_questions(file)  # refuse a bad quiz file before the night's work starts
    if cfg.general_text is not None and not Path(cfg.general_text).expanduser().is_file():
        raise ReverieError(f"sleep.general_text {cfg.general_text} is not a file")
    dreamed = _dream(ctx, budget or cfg.budget, progress, user_id)
    seed = ctx.settings.generation.seed
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    roles, n_train = _plan(ctx.store, cfg, ctx.settings.quiz.holdout if file is None else 0.0, seed, user_id)
    config = {
        "seed": seed,
        # written once the night has started (see _sleep), so a kill while writing resumes the night
        "self_replay": {"n": round(cfg.self_replay * n_train) if cfg.general_text is None else 0,
                        "texts": None, "seconds": 0.0},
        "teacher": {"answers": None, "seconds": 0.0},
        "settings": {"sleep": cfg.model_dump(mode="json"), "quiz": ctx.settings.quiz.model_dump(mode="json")},
        "quiz_file": str(Path(file).expanduser().resolve()) if file else None,
        "dream": dreamed,
    }
    night_id = ctx.store.start_night(seed, config, user_id)
    records.add_night_dreams(ctx.store, night_id, roles)
    return night_id, config


def _dream(ctx, budget: int, progress, user_id) -> dict:
    """Dream over what was read since the last night (nothing new: nothing dreamed)."""
    from reverie.dream.run import since_last_night

    t0 = time.perf_counter()
    dreamed = {"kept_tokens": 0, "generated_tokens": 0, "run_id": None}
    if since_last_night(ctx.store, user_id):
        dream = ctx.dream(budget=budget, generators=ctx.settings.sleep.generators, user_id=user_id, progress=progress)
        dreamed = {"kept_tokens": dream.kept_tokens, "generated_tokens": dream.generated_tokens, "run_id": dream.run_id}
    return dreamed | {"seconds": time.perf_counter() - t0}


def _plan(store, cfg: SleepConfig, share: float, seed: int, user_id) -> tuple[dict[str, list[int]], int]:
    """The night's dreams by role (train, replay, quiz) and how many are new."""
    pending = records.pending_dreams(store, user_id)
    if not pending:
        raise ReverieError("no dreams to learn from: read something new (`reverie read PATH`) and sleep again")
    quiz_ids = set(holdout([r for r in pending if r["generator"] in QA_GENERATORS], share, seed))
    # Every night's held-out questions stay unseen: today's and those earlier nights hold out for retention.
    held = [dream_question(r["text"]) for r in pending if r["id"] in quiz_ids] + held_out_questions(store)
    train_ids = [r["id"] for r in pending if r["id"] not in quiz_ids and not _asks_held_out(r, held)]
    if not train_ids:
        raise ReverieError("no dreams to learn from once the quiz questions are held out")
    n_new = len(train_ids)
    learned = [r["id"] for r in records.learned_dreams(store, user_id)]
    if not cfg.continue_adapter:
        train_ids = sorted(set(learned) | set(train_ids))
    replay_ids: list[int] = []
    if cfg.continue_adapter and learned and cfg.replay_ratio > 0:
        k = min(len(learned), round(cfg.replay_ratio * len(train_ids)))
        replay_ids = sorted(random.Random(f"{seed}:replay").sample(learned, k))
    return {"train": train_ids, "replay": replay_ids, "quiz": sorted(quiz_ids)}, n_new


def _asks_held_out(row, held: list[Question]) -> bool:
    if row["generator"] not in QA_GENERATORS:
        return False
    q = dream_question(row["text"])
    return q is not None and any(same_question(q, h) for h in held)


def _write_once(store, night_id: int, config: dict, part: dict, key: str, write) -> None:
    """`part[key]` of the night's plan gets `write()`'s result and the seconds it took; the plan is
    stored, so a resumed night uses the same texts."""
    if part[key] is not None:
        return
    t0 = time.perf_counter()
    part[key] = write()
    part["seconds"] = time.perf_counter() - t0
    store.set_night_config(night_id, config)


def _writer(ctx, loaded):
    """A backend on the base model for the night's own writing (replay paragraphs, teacher
    answers), at the dream phase's batch size: hundreds of texts 8 at a time would take minutes."""
    from reverie.models import TransformersBackend

    return TransformersBackend(loaded, batch_size=ctx.settings.dream.batch_size)


def _sleep(ctx, night_id: int, config: dict, resumed: bool, progress) -> NightResult:
    """Steps 3-5 of the module docstring, each resumable from what the night stored."""
    from reverie.models import lora

    store = ctx.store
    # The settings the night started with: a resumed night must replay the same training plan.
    (cfg, gone), (quiz_cfg, gone_quiz) = (SleepConfig.stored(config["settings"]["sleep"]),
                                          QuizConfig.stored(config["settings"]["quiz"]))
    if gone or gone_quiz:
        ctx.log(f"note: night {night_id} was stored with settings deleted since ({', '.join(gone + gone_quiz)}); "
                "it runs without them")
    loaded = ctx.load_base()
    replay = config["self_replay"]
    _write_once(store, night_id, config, replay, "texts",
                lambda: _self_replay(ctx, loaded, replay["n"], config["seed"], progress) if replay["n"] else [])
    user_id = store.night(night_id)["user_id"]
    parent = records.latest_kept_adapter(store, loaded.identity, user_id) if cfg.continue_adapter else None
    name = f"night-{night_id}"
    candidate = store.adapter(name)
    t0 = time.perf_counter()
    if candidate is None:  # else a resumed night whose candidate was already trained and saved
        folder = ctx.settings.home / "nights" / str(night_id)
        encoded, teacher, meter = _rows(ctx, loaded, night_id, config, cfg, folder, progress)
        rows_seconds, t0 = time.perf_counter() - t0, time.perf_counter()
        loaded, training = _train(loaded, parent, encoded, teacher, cfg, config["seed"], folder, progress)
        training |= {"examples": len(encoded), "example_tokens": sum(len(e.ids) for e in encoded), "queries": meter,
                     "rows_seconds": rows_seconds}
        path = lora.save_adapter(loaded.model, ctx.settings.adapters_dir / name, loaded.identity,
                                 {"night_id": night_id, "parent": parent and parent["name"]})
        store.add_adapter(name, str(path), loaded.identity, night_id, "candidate", {"training": training}, user_id)
        candidate = store.adapter(name)
        shutil.rmtree(folder, ignore_errors=True)  # the checkpoint and targets are superseded by the adapter
    else:
        training = json.loads(candidate["metrics"])["training"]
        loaded = _reattach(loaded, candidate)
    # teacher: the queries, the teacher's answers and targets (distill) or the chat examples (sft)
    timings = {"dream": config["dream"]["seconds"], "replay": replay["seconds"],
               "teacher": training.get("rows_seconds", 0.0), "train": time.perf_counter() - t0}
    active = loaded.model.active_adapter  # PEFT's name for it: 'default' when trained here
    figures, timings["quiz"], verdict = _quiz_and_gate(ctx, loaded, active, config, quiz_cfg, cfg, night_id, parent,
                                                      progress)
    timings["total"] = sum(timings.values())
    return _record(ctx, loaded, active, night_id, config, candidate, parent, training, figures, timings, verdict,
                   resumed)


def _self_replay(ctx, loaded, n: int, seed: int, progress) -> list[str]:
    """`n` general paragraphs by `loaded`, the base model before the night's adapter is added."""
    from reverie.sleep.self_replay import write_general

    ctx.log(f"writing {n} general paragraphs with the base model (sleep.self_replay)")
    return write_general(_writer(ctx, loaded), n, seed, counter(progress, "replay", n))


def _general(tokenizer, config: dict, cfg: SleepConfig, n_new: int) -> list[Example]:
    """The night's general text: slices of `sleep.general_text`, or the base model's own paragraphs."""
    out: list[Example] = []
    if cfg.general_text is not None and cfg.general_ratio > 0:
        text = Path(cfg.general_text).expanduser().read_text(encoding="utf-8", errors="replace")
        out += general_examples(tokenizer, text, round(cfg.general_ratio * n_new), 128, config["seed"])
    return out + [Example(t, None, "general") for t in config["self_replay"]["texts"]]


def _rows(ctx, loaded, night_id: int, config: dict, cfg: SleepConfig, folder: Path, progress):
    """(encoded rows, the teacher's targets per row or None, the query set's meter): what the
    night trains on, by `sleep.objective`."""
    rows = records.night_dreams(ctx.store, night_id, ("train", "replay"))
    n_new = sum(1 for r in rows if r["role"] == "train")
    general = [encode(loaded.tokenizer, ex, cfg.max_tokens) for ex in _general(loaded.tokenizer, config, cfg, n_new)]
    if cfg.objective == "sft":
        dreams = [from_dream(r, r["title"], "new" if r["role"] == "train" else "replay") for r in rows]
        return [encode(loaded.tokenizer, ex, cfg.max_tokens) for ex in dreams] + general, None, {}
    students, targets, meter = _distilled(ctx, loaded, rows, night_id, config, cfg, folder, progress)
    return students + general, targets + [None] * len(general), meter


def _distilled(ctx, loaded, rows, night_id: int, config: dict, cfg: SleepConfig, folder: Path, progress):
    """The night's queries, answered by the teacher (once, stored with the night), verified, and
    encoded with the teacher's targets (once, saved in the night's folder)."""
    from reverie.sleep import distill

    store = ctx.store
    contexts, chunk_of = records.contexts(store, [r["id"] for r in rows])
    queries = distill.queries(rows, contexts, chunk_of)
    part = config["teacher"]
    asked = sum(1 for q in queries if q.answer_of is None and q.target is None)
    _write_once(store, night_id, config, part, "answers",
                lambda: distill.teacher_answers(_writer(ctx, loaded), queries, contexts,
                                                counter(progress, "teacher answers", asked)))
    kept, drops = distill.verify(queries, part["answers"])
    if not kept:
        raise ReverieError("no dreams to learn from: the teacher answered none of them with its passage")
    pairs = [distill.encode_pair(loaded.tokenizer, q.prompt, contexts[q.context].lead(q.prompt), target, q.kind,
                                 cfg.max_tokens, cfg.question_weight) for q, target, _ in kept]
    if drops:
        records.drop_dreams(store, drops)
        ctx.log(f"{len(drops)} of {len({q.dream_id for q in queries if q.span})} facts dropped: the teacher, with the "
               "passage in front of it, says otherwise (`reverie dreams --dropped`)")
    targets = _teacher_targets(loaded, cfg, folder / "teacher.pt", kept, pairs, progress)
    spans = sum(1 for _, _, spanned in kept if spanned)
    meter = _meter_queries(ctx, queries, [q for q, _, _ in kept]) | {"span_targets": spans, "dropped": len(drops)}
    return [s for s, _ in pairs], targets, meter


def _teacher_targets(loaded, cfg: SleepConfig, path: Path, kept, pairs, progress):
    """The teacher's targets for the night's rows: loaded when a killed night saved them at `path`."""
    from reverie.sleep import distill

    keys = [q.key for q, _, _ in kept]
    targets = distill.load_targets(path, keys)
    if targets is not None:
        return targets
    targets = distill.teacher_targets(loaded.model, [t for _, t in pairs], [q.context for q, _, _ in kept],
                                      cfg.teacher_top_k, cfg.batch_tokens * 2, loaded.tokenizer.pad_token_id or 0,
                                      progress)
    distill.save_targets(path, keys, targets)
    return targets


def _meter_queries(ctx, queries, kept) -> dict:
    """Lexical meter of the night's query set beside its part as dreamed (each fact's first
    wording). Lexical only: embedding thousands of queries would add minutes to a night."""
    from reverie.meter.sets import meter_texts

    asked = [q.prompt for q in kept]
    first = [q.prompt for q in kept if q.key.endswith(":0") and q.span is not None]
    out = {"queries": len(queries), "kept": len(kept)}
    for label, texts in (("all", asked), ("as_dreamed", first)):
        if len(texts) >= 2:
            m = meter_texts(texts, config=ctx.settings.meter, semantic=False)
            out[label] = {k: v for k, v in m.items() if isinstance(v, (int, float))}
    return out


def _train(loaded, parent, encoded, teacher, cfg: SleepConfig, seed: int, folder: Path, progress):
    """Train the night's LoRA (continuing `parent` when given); returns (loaded with it, figures)."""
    import torch

    from reverie.models import lora
    from reverie.sleep.train import train

    torch.manual_seed(seed)  # LoRA's A matrices are drawn at creation: the night's seed fixes them
    model = (lora.load_trainable(loaded.model, parent["path"], loaded.identity) if parent
             else lora.new_lora(loaded.model, cfg))
    result = train(model, loaded.tokenizer, encoded, cfg, seed, folder / "checkpoint.pt", progress=progress,
                   teacher=teacher)
    training = {"steps": result.steps, "resumed_at_step": result.start_step, "tokens": result.tokens,
                "seconds": result.seconds, "tokens_per_second": result.tokens_per_second,
                "final_loss": result.final_loss, "autocast_bf16": result.autocast, "history": result.history}
    return dataclasses.replace(loaded, model=model), training


def _reattach(loaded, candidate):
    """A resumed night's saved candidate on the base model, as it was trained."""
    from reverie.models import lora

    loaded = lora.attach(loaded, candidate)
    baked = float(lora.read_meta(candidate["path"]).get("strength", 1.0))
    if baked != 1.0:
        # Killed after the kept adapter was saved at its strength and before the verdict was
        # recorded: the gate measures the adapter as trained again, and chooses the same.
        lora.bake_strength(loaded.model, candidate["name"], 1 / baked)
    return loaded


def _record(ctx, loaded, active, night_id, config, candidate, parent, training, figures, timings, verdict, resumed):
    """Store the verdict; a kept adapter is saved at the strength the gate chose and put in use."""
    from reverie.models import lora

    store = ctx.store
    status = "kept" if verdict.keep else "rejected"
    tokens = {
        "dreamed": config["dream"]["kept_tokens"], "generated": config["dream"]["generated_tokens"],
        "examples": training.get("examples", 0), "example_tokens": training.get("example_tokens", 0),
        "trained": training["tokens"], "tokens_per_second": training["tokens_per_second"],
    }
    metrics = {"figures": figures, "checks": [c.__dict__ for c in verdict.checks], "tokens": tokens,
               "queries": training.get("queries", {}), "parent": parent and parent["name"]}
    chosen = figures["strength"]["chosen"]
    if verdict.keep and chosen != 1.0:
        # Kept at a strength below 1: the adapter on disk carries it, so chat, merge, vLLM and the
        # next night (which continues this adapter) all get the model the gate measured.
        with lora.activate(loaded.model, active):
            lora.bake_strength(loaded.model, active, chosen)
            lora.save_adapter(loaded.model, candidate["path"], loaded.identity,
                                  {"night_id": night_id, "parent": parent and parent["name"], "strength": chosen})
    store.set_adapter_verdict(candidate["id"], status, {"training": training, **metrics})
    store.finish_night(night_id, status, timings, metrics)
    if verdict.keep:
        store.set_state(adapter_key(candidate["user_id"]), candidate["name"])
    return NightResult(night_id, status, resumed, candidate["name"], parent and parent["name"], verdict.checks,
                       figures, timings, tokens, training["history"])


def _quiz_and_gate(ctx, loaded, candidate: str, config, quiz_cfg, cfg, night_id, parent, progress):
    from reverie.models.lora import activate, attach
    from reverie.quiz.run import Measure
    from reverie.sleep.verdict import decide

    settings = ctx.settings
    if config["quiz_file"]:
        questions, earlier = load_questions(config["quiz_file"]), []
    else:  # this night's held-out questions, and every earlier night's for retention
        questions, earlier = held_out_questions(ctx.store, night_id), held_out_questions(ctx.store, before=night_id)
    general = quiz_cfg.general_text or own_text(ctx, loaded, quiz_cfg)
    retrieval = _retrieval(ctx, questions[: quiz_cfg.max_questions], night_id, progress) if quiz_cfg.lookup else None
    measure = Measure(questions, quiz_cfg, settings.meter, general, log=ctx.log, earlier=earlier, retrieval=retrieval)
    t0 = time.perf_counter()
    with activate(loaded.model, None):
        base = _base(ctx.store, loaded, measure, progress)
    reference = base
    if parent is not None:
        loaded = attach(loaded, parent)
        with activate(loaded.model, parent["name"]):
            reference = measure(loaded, parent["name"], progress)
    cand, chosen, tried = None, 1.0, []
    if _finite(loaded.model, candidate):
        label = f"night-{night_id}"
        with activate(loaded.model, candidate):
            chosen, tried, cand = choose_strength(loaded, candidate, measure, base, cfg, label, progress)
    seconds = time.perf_counter() - t0
    figures = {"base": base.as_dict()}
    if parent is not None:
        figures["reference"] = reference.as_dict()
    figures["candidate"] = cand.as_dict() if cand else {"label": f"night-{night_id}", "n_questions": len(questions)}
    figures["strength"] = {"chosen": chosen, "tried": tried}
    figures["forgetting_text"] = str(quiz_cfg.general_text) if quiz_cfg.general_text else \
        f"{len(general)} paragraphs the base model wrote (held out, never trained on)"
    return figures, seconds, decide(base, reference, cand, cfg)


def _retrieval(ctx, questions, night_id: int, progress):
    """The night's quiz looked up in the store, so that every model measured also answers with
    lookup (`quiz.lookup`): what a user asking chat gets, recorded beside closed book, not gated."""
    from reverie.quiz.run import retrieve

    k = max(1, ctx.settings.wake.recall_chunks)
    return retrieve(ctx.lookup(), questions, k, progress, ctx.store.night(night_id)["user_id"])


def own_text(ctx, loaded, quiz_cfg) -> list[str]:
    """Held-out text for the forgetting check when no `quiz.general_text` is given: paragraphs the
    base model writes once per home (kept in the store, so every night is measured on the same
    text) and never trains on. Why: a user has no general text to give, and a night measured on
    nothing was kept unmeasured; the base model's own writing is what a night must not forget."""
    from reverie.quiz.run import own_text as stored

    texts = stored(ctx.store)
    if texts:
        return texts
    from reverie.models.lora import activate
    from reverie.sleep.self_replay import write_general

    ctx.log(f"writing {quiz_cfg.own_text_paragraphs} paragraphs with the base model to measure forgetting on "
           "(once per home)")
    with activate(loaded.model, None):
        texts = write_general(_writer(ctx, loaded), quiz_cfg.own_text_paragraphs, seed=0, tag="held-out")
    ctx.store.set_state("own_text", json.dumps(texts))
    return texts


def _base(store, loaded, measure, progress):
    """The base model measured: its quiz every night, its perplexity and probe once per home
    (cached in the store under what they depend on: reverie.quiz.run.Measure.rest_key). Why: they
    are the same every night, seeded, and a third of a night's gate."""
    key = f"base_figures:{measure.rest_key(loaded.identity)}"
    cached = store.get_state(key)
    if cached:
        return measure.with_rest(measure(loaded, "base", progress, rest=False), json.loads(cached))
    base = measure(loaded, "base", progress)
    store.set_state(key, json.dumps(measure.rest_of(base)))
    return base


def choose_strength(loaded, name: str, measure, base, cfg, label: str, progress=None):
    """(strength, tried, figures): the strongest of `sleep.strengths` at which adapter `name` passes
    the gate's forgetting and diversity bounds (the weakest when none does), the perplexity and
    probe of each strength tried, and the full figures at the one chosen (labelled `label`).

    Why: shrinking a LoRA update towards the base model cuts its drift on general text much faster
    than what it learned (docs/LOG.md, sixth session). The strength is chosen on perplexity and
    the probe alone; the quiz is asked once, at the strength chosen, so the accuracy the gate
    reports is not selected on."""
    from reverie.models.lora import strength
    from reverie.quiz.run import REST_FIELDS
    from reverie.sleep.verdict import bounds

    tried: list[dict] = []
    for factor in sorted(set(cfg.strengths), reverse=True):
        with strength(loaded.model, name, factor):
            result = measure(loaded, f"{label} x{factor:g}", progress, quiz=False)
        passed = all(c.passed for c in bounds(base, result, cfg))
        tried.append({"strength": factor, "perplexity": result.perplexity, "vendi": result.vendi,
                      "answer_tokens": result.answer_tokens, "probe_kl": result.probe_kl, "passed": passed})
        if passed or (result.perplexity is None and result.vendi is None):
            break
    with strength(loaded.model, name, factor):
        asked = measure(loaded, label, progress, rest=False)  # perplexity and the probe are `result`'s
    probed = {f: getattr(result, f) for f in REST_FIELDS}
    return factor, tried, dataclasses.replace(asked, seconds={**asked.seconds, **result.seconds}, **probed)


def _finite(model, adapter: str) -> bool:
    """False when training diverged: a LoRA weight of `adapter` is inf or NaN."""
    import torch

    return all(bool(torch.isfinite(p).all()) for n, p in model.named_parameters() if f".{adapter}." in n)
