"""One night: dream over what was read, train a LoRA adapter on the dreams, quiz it, gate it.

    from reverie.sleep import run_night
    result = run_night(rv, budget=20000, quiz_file="quiz.jsonl", progress=print)
    result.status, result.figures["candidate"]["accuracy"], result.timings

1. Dream: when documents were read since the last finished night, `rv.dream` over them with the
   generators in `sleep.generators` (by default qa and cloze: a closed-book quiz asks questions,
   and question-answer pairs taught the default model far more than restatements did).
2. Plan (stored with the night, so a killed night resumes with the same data): the pending dreams
   (kept by dreaming, not yet learned by a kept night) are the night's new examples: each
   question answered with its span (with `sleep.evidence`, the span and then its source
   sentence; with `sleep.own_words`, as the base model says it: reverie.sleep.own_words). Without a
   quiz file, a share (`quiz.holdout`) of their question-answer dreams is held out as quiz
   questions, never trained on, and dreams asking the same question are dropped from training.
   Replay: earlier nights' learned dreams (`replay_ratio` per new example) and slices of
   `sleep.general_text` (`general_ratio`), or without one, paragraphs the base model writes
   (`sleep.self_replay`, reverie.sleep.self_replay). With `include_sources`, the source chunks
   themselves join the new examples.
3. Train (reverie.sleep.train), checkpointing into `<home>/nights/<id>/`; the candidate is saved in
   PEFT format as `<home>/adapters/night-<id>` and registered as a candidate.
4. Quiz the base model, the adapter the user has now (if any) and the candidate
   (reverie.quiz.run), and gate (reverie.sleep.gate). The candidate is quizzed at the strongest
   of `sleep.strengths` whose perplexity and probe stay within the gate's bounds (its update
   scaled towards the base model; chosen without the quiz), and a kept adapter is saved at that
   strength. Kept: the adapter is selected for chat and
   quiz (`reverie use`). Rejected: the selection stays as it was (rolled back), the night is
   recorded as rejected with all its figures, and its dreams stay pending for a later night.

Why night N continues night N-1's kept adapter (`sleep.continue_adapter`, default) rather than
retraining on every dream so far: a night's cost then stays proportional to what was read that
day (retraining grows without bound, and on a CPU a night must fit in the hours one sleeps);
replay of earlier dreams and general text plus the KL and entropy terms guard what earlier
nights taught, and the gate compares every candidate against the base model, so drift cannot
creep in night by night. `continue_adapter: false` retrains from the base on all learned and
pending dreams, for when the adapter's settings change.

A killed night (or Ctrl-C) is resumed by the next `reverie sleep`: the plan is in the store, the
training checkpoint on disk, and a candidate already saved is not trained again.
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

from reverie.config import QuizConfig, SleepConfig
from reverie.dream.generators import QA_GENERATORS
from reverie.errors import ReverieError
from reverie.quiz.questions import Question, dream_question, holdout, load_questions, same_question
from reverie.sleep import records
from reverie.sleep.data import Example, encode, from_dream, general_examples

Progress = Callable[[str, dict], None]  # (phase, info): phases dream, replay, answers, targets, train, quiz


@dataclass
class NightResult:
    night_id: int
    status: str  # 'kept' or 'rejected'
    resumed: bool
    adapter: str  # the candidate's name
    parent: str | None  # the kept adapter it continued, if any
    checks: list  # reverie.sleep.gate.Check
    figures: dict[str, dict]  # 'base', 'reference' (when an adapter was kept before), 'candidate'
    timings: dict[str, float]  # seconds per phase
    tokens: dict[str, float]  # dreamed, examples, trained, tokens_per_second
    history: list[float] = field(default_factory=list)  # training loss per step


def run_night(rv, budget: int | None = None, quiz_file: Path | str | None = None, progress: Progress | None = None):
    """One night; see the module docstring. `rv` is a reverie.app.Reverie."""
    store = rv.store
    night = records.unfinished_night(store)
    resumed = night is not None
    if resumed:
        night_id = night["id"]
        rv.log(f"resuming night {night_id}, interrupted before it finished")
        records.set_night_running(store, night_id)
        config = json.loads(night["config"])
        if quiz_file is not None and str(Path(quiz_file).expanduser().resolve()) != config["quiz_file"]:
            rv.log(f"warning: night {night_id} keeps the quiz it started with ({config['quiz_file'] or 'held-out questions'})")
    else:
        night_id, config = _begin(rv, budget, quiz_file, progress)
    try:
        return _sleep(rv, night_id, config, resumed, progress)
    except KeyboardInterrupt:
        records.set_night_running(store, night_id, "interrupted")
        raise


def _begin(rv, budget, quiz_file, progress) -> tuple[int, dict]:
    """Dream, then plan and start the night; returns (night id, its stored config)."""
    cfg, store = rv.settings.sleep, rv.store
    file = quiz_file or rv.settings.quiz.file
    if file is not None:
        load_questions(file)  # refuse a bad quiz file before the night's work starts
    if cfg.general_text is not None and not Path(cfg.general_text).expanduser().is_file():
        raise ReverieError(f"sleep.general_text {cfg.general_text} is not a file")
    t0 = time.perf_counter()
    dreamed = {"kept_tokens": 0, "generated_tokens": 0, "run_id": None}
    last = store.last_finished_night()
    if store.documents(since=last["started_at"] if last else None):
        dream = rv.dream(budget=budget or cfg.budget, generators=cfg.generators,
                         progress=(lambda phase, done, total: progress("dream", {"phase": phase, "done": done,
                                                                                  "total": total}))
                         if progress else None)
        dreamed = {"kept_tokens": dream.kept_tokens, "generated_tokens": dream.generated_tokens, "run_id": dream.run_id}
    dream_seconds = time.perf_counter() - t0
    pending = records.pending_dreams(store)
    if not pending:
        raise ReverieError("no dreams to learn from: read something new (`reverie read PATH`) and sleep again")
    seed = rv.settings.generation.seed
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)

    quiz_ids: set[int] = set()
    if file is None:
        asked = [r for r in pending if r["generator"] in QA_GENERATORS]
        quiz_ids = set(holdout(asked, rv.settings.quiz.holdout, seed))
    held = [dream_question(r["text"]) for r in pending if r["id"] in quiz_ids]
    train_ids = [r["id"] for r in pending if r["id"] not in quiz_ids and not _asks_held_out(r, held)]
    if not train_ids:
        raise ReverieError("no dreams to learn from once the quiz questions are held out")
    if not cfg.continue_adapter:
        train_ids = sorted({r["id"] for r in records.learned_dreams(store)} | set(train_ids))
    replay_ids: list[int] = []
    learned = [r["id"] for r in records.learned_dreams(store)]
    if cfg.continue_adapter and learned and cfg.replay_ratio > 0:
        k = min(len(learned), round(cfg.replay_ratio * len(train_ids)))
        replay_ids = sorted(random.Random(f"{seed}:replay").sample(learned, k))
    chunk_ids: list[int] = []
    if cfg.include_sources:
        read = [d["id"] for d in store.documents(since=last["started_at"] if last else None)]
        read_chunks = {c["id"] for c in store.chunks(read)} if read else set()
        chunk_ids = sorted(read_chunks | records.source_chunks(store, train_ids))
    config = {
        "seed": seed,
        "source_chunks": chunk_ids,
        # written once the night has started (see _sleep), so a kill while writing resumes the night
        "self_replay": {"n": round(cfg.self_replay * len(train_ids)) if cfg.general_text is None else 0,
                        "texts": None, "seconds": 0.0},
        "settings": {"sleep": cfg.model_dump(mode="json"), "quiz": rv.settings.quiz.model_dump(mode="json")},
        "quiz_file": str(Path(file).expanduser().resolve()) if file else None,
        "dream": dreamed | {"seconds": dream_seconds},
    }
    night_id = store.start_night(seed, config)
    records.add_night_dreams(store, night_id, {"train": train_ids, "replay": replay_ids, "quiz": sorted(quiz_ids)})
    return night_id, config


def _self_replay(rv, loaded, n: int, seed: int, progress) -> list[str]:
    """`n` general paragraphs by `loaded`, the base model before the night's adapter is added."""
    from reverie.sleep.self_replay import write_general

    rv.log(f"writing {n} general paragraphs with the base model (sleep.self_replay)")
    return write_general(_writer(rv, loaded), n, seed, _counter(progress, "replay", n))


def _write_once(store, night_id: int, config: dict, part: dict, write) -> None:
    """`part` of the night's plan gets `write()`'s texts and the seconds they took; the plan is stored."""
    t0 = time.perf_counter()
    part["texts"] = write()
    part["seconds"] = time.perf_counter() - t0
    store.set_night_config(night_id, config)


def _writer(rv, loaded):
    """A backend on the base model for the night's own writing (replay paragraphs, own-words
    answers), at the dream phase's batch size: hundreds of texts 8 at a time would take minutes."""
    from reverie.models import TransformersBackend

    return TransformersBackend(loaded, batch_size=rv.settings.dream.batch_size)


def _counter(progress, phase: str, total: int):
    """A backend progress callback (it reports each batch's finished texts) as `phase` progress."""
    if progress is None:
        return None
    done = [0]

    def say(k: int) -> None:
        done[0] += k
        progress(phase, {"done": done[0], "total": total})

    return say


def _own_words(rv, loaded, rows, progress) -> dict[str, str]:
    """{dream id: its answer as the base model says it} for the question-answer dreams in `rows`."""
    from reverie.sleep.own_words import phrase

    asked = [(r["id"], q) for r in rows if r["generator"] in QA_GENERATORS and (q := dream_question(r["text"]))]
    if not asked:
        return {}
    rv.log(f"phrasing {len(asked)} answers in the base model's own words (sleep.own_words)")
    texts = phrase(_writer(rv, loaded), [(q.question, q.answer) for _, q in asked],
                   _counter(progress, "answers", len(asked)))
    return {str(i): t for (i, _), t in zip(asked, texts, strict=True)}


def _asks_held_out(row, held: list[Question]) -> bool:
    if row["generator"] not in QA_GENERATORS:
        return False
    q = dream_question(row["text"])
    return q is not None and any(same_question(q, h) for h in held)


def _sleep(rv, night_id: int, config: dict, resumed: bool, progress) -> NightResult:
    from reverie.sleep import adapters
    from reverie.sleep.train import train

    settings, store = rv.settings, rv.store
    # The settings the night started with: a resumed night must replay the same training plan.
    cfg = SleepConfig.model_validate(config["settings"]["sleep"])
    quiz_cfg = QuizConfig.model_validate(config["settings"]["quiz"])
    seed = config["seed"]
    loaded = rv.load_base()
    # The base model's own writing (replay paragraphs, own-words answers) is done once a night and
    # stored with the plan, so a resumed night trains on the same texts.
    replay = config.setdefault("self_replay", {"n": 0, "texts": [], "seconds": 0.0})
    if replay["texts"] is None:
        _write_once(store, night_id, config, replay,
                    lambda: _self_replay(rv, loaded, replay["n"], seed, progress) if replay["n"] else [])
    said = config.setdefault("own_words", {"texts": {}, "seconds": 0.0})
    # a night begun before own_words existed keeps its plan
    if cfg.own_words and not cfg.evidence and not said["texts"] and "own_words" in config["settings"]["sleep"]:
        rows = records.night_dreams(store, night_id, ("train", "replay"))
        _write_once(store, night_id, config, said, lambda: _own_words(rv, loaded, rows, progress))
    timings = {"dream": config["dream"]["seconds"], "replay": replay["seconds"], "answers": said["seconds"]}
    parent = records.latest_kept_adapter(store, loaded.identity) if cfg.continue_adapter else None
    name = f"night-{night_id}"
    path = settings.adapters_dir / name
    folder = settings.home / "nights" / str(night_id)
    candidate = store.adapter(name)

    examples = _examples(store, night_id, config, loaded.tokenizer, cfg, seed)
    encoded = [encode(loaded.tokenizer, ex, cfg.max_tokens) for ex in examples]
    t0 = time.perf_counter()
    if candidate is None:  # else a resumed night whose candidate was already trained and saved
        import torch

        torch.manual_seed(seed)  # LoRA's A matrices are drawn at creation: the night's seed fixes them
        model = (adapters.load_trainable(loaded.model, parent["path"], loaded.identity) if parent
                 else adapters.new_lora(loaded.model, cfg))
        result = train(model, loaded.tokenizer, encoded, cfg, seed, folder / "checkpoint.pt",
                       progress=(lambda info: progress("targets" if "stage" in info else "train", info))
                       if progress else None)
        training = {"steps": result.steps, "resumed_at_step": result.start_step, "tokens": result.tokens,
                    "seconds": result.seconds, "tokens_per_second": result.tokens_per_second,
                    "final_loss": result.final_loss, "autocast_bf16": result.autocast, "history": result.history}
        adapters.save_adapter(model, path, loaded.identity, {"night_id": night_id, "parent": parent and parent["name"]})
        store.add_adapter(name, str(path), loaded.identity, night_id, "candidate", {"training": training})
        candidate = store.adapter(name)
        shutil.rmtree(folder, ignore_errors=True)  # the checkpoint is superseded by the saved adapter
        loaded.model = model
    else:
        training = json.loads(candidate["metrics"])["training"]
        loaded = adapters.attach(loaded, candidate)
        baked = float(adapters.read_meta(candidate["path"]).get("strength", 1.0))
        if baked != 1.0:
            # Killed after the kept adapter was saved at its strength and before the verdict was
            # recorded: the gate measures the adapter as trained again, and chooses the same.
            adapters.bake_strength(loaded.model, candidate["name"], 1 / baked)
    timings["train"] = time.perf_counter() - t0

    candidate_name = loaded.model.active_adapter
    figures, timings["quiz"], verdict = _quiz_and_gate(rv, loaded, config, quiz_cfg, cfg, night_id, parent, progress)
    timings["total"] = sum(timings.values())
    status = "kept" if verdict.keep else "rejected"
    tokens = {
        "dreamed": config["dream"]["kept_tokens"], "generated": config["dream"]["generated_tokens"],
        "examples": len(encoded), "example_tokens": sum(len(e.ids) for e in encoded),
        "trained": training["tokens"], "tokens_per_second": training["tokens_per_second"],
    }
    metrics = {"figures": figures, "checks": [c.__dict__ for c in verdict.checks], "tokens": tokens,
               "parent": parent and parent["name"]}
    chosen = figures["strength"]["chosen"]
    if verdict.keep and chosen != 1.0:
        # Kept at a strength below 1: the adapter on disk carries it, so chat, merge, vLLM and the
        # next night (which continues this adapter) all get the model the gate measured.
        with adapters.activate(loaded.model, candidate_name):
            adapters.bake_strength(loaded.model, candidate_name, chosen)
            adapters.save_adapter(loaded.model, path, loaded.identity,
                                  {"night_id": night_id, "parent": parent and parent["name"], "strength": chosen})
    store.set_adapter_verdict(candidate["id"], status, {"training": training, **metrics})
    store.finish_night(night_id, status, timings, metrics)
    if verdict.keep:
        store.set_state("adapter", name)
    return NightResult(night_id, status, resumed, name, parent and parent["name"], verdict.checks, figures,
                       timings, tokens, training["history"])


def _examples(store, night_id: int, config: dict, tokenizer, cfg, seed: int) -> list:
    rows = records.night_dreams(store, night_id, ("train", "replay"))
    said = config.get("own_words", {}).get("texts") or {}
    examples = [from_dream(r, r["title"], "new" if r["role"] == "train" else "replay", cfg.evidence, said.get(str(r["id"])))
                for r in rows]
    n_new = sum(1 for r in rows if r["role"] == "train")
    for chunk in records.chunks_with_titles(store, config.get("source_chunks", [])):
        examples.append(from_dream({"id": -chunk["id"], "generator": "source", "text": chunk["text"]}, chunk["title"]))
    if cfg.general_text is not None and cfg.general_ratio > 0:
        text = Path(cfg.general_text).expanduser().read_text(encoding="utf-8", errors="replace")
        examples += general_examples(tokenizer, text, round(cfg.general_ratio * n_new), 128, seed)
    examples += [Example(t, None, "general") for t in config["self_replay"]["texts"]]
    return examples


def _quiz_and_gate(rv, loaded, config, quiz_cfg, cfg, night_id, parent, progress):
    from reverie.quiz.questions import held_out_questions
    from reverie.quiz.run import Measure
    from reverie.sleep.adapters import activate, attach
    from reverie.sleep.gate import decide

    settings = rv.settings
    questions = load_questions(config["quiz_file"]) if config["quiz_file"] else held_out_questions(rv.store, night_id)
    measure = Measure(questions, quiz_cfg, settings.meter, quiz_cfg.general_text, log=rv.log)
    candidate = loaded.model.active_adapter
    say = (lambda what: progress("quiz", {"what": what})) if progress else None
    t0 = time.perf_counter()
    with activate(loaded.model, None):
        base = measure(loaded, "base", say)
    reference = base
    if parent is not None:
        loaded = attach(loaded, parent)
        with activate(loaded.model, parent["name"]):
            reference = measure(loaded, parent["name"], say)
    cand, chosen, tried = None, 1.0, []
    if _finite(loaded.model, candidate):
        label = f"night-{night_id}"
        with activate(loaded.model, candidate):
            chosen, tried, cand = choose_strength(loaded, candidate, measure, base, cfg, label, say)
    seconds = time.perf_counter() - t0
    figures = {"base": base.as_dict()}
    if parent is not None:
        figures["reference"] = reference.as_dict()
    figures["candidate"] = cand.as_dict() if cand else {"label": f"night-{night_id}", "n_questions": len(questions)}
    figures["strength"] = {"chosen": chosen, "tried": tried}
    return figures, seconds, decide(base, reference, cand, cfg)


def choose_strength(loaded, name: str, measure, base, cfg, label: str, say=None):
    """(strength, tried, figures): the strongest of `sleep.strengths` at which adapter `name` passes
    the gate's forgetting and diversity bounds (the weakest when none does), the perplexity and
    probe of each strength tried, and the full figures at the one chosen (labelled `label`).

    Why: shrinking a LoRA update towards the base model cuts its drift on general text much faster
    than what it learned (BENCHMARKS.md, sixth session). The strength is chosen on perplexity and
    the probe alone; the quiz is asked once, at the strength chosen, so the accuracy the gate
    reports is not selected on."""
    from reverie.sleep.adapters import strength
    from reverie.sleep.gate import bounds

    tried: list[dict] = []
    for factor in sorted(set(cfg.strengths), reverse=True):
        with strength(loaded.model, name, factor):
            result = measure(loaded, f"{label} x{factor:g}", say, quiz=False)
        passed = all(c.passed for c in bounds(base, result, cfg))
        tried.append({"strength": factor, "perplexity": result.perplexity, "vendi": result.vendi, "passed": passed})
        if passed or (result.perplexity is None and result.vendi is None):
            break
    with strength(loaded.model, name, factor):
        asked = measure(loaded, label, say, rest=False)  # perplexity and the probe are `result`'s
    return factor, tried, dataclasses.replace(
        result, label=label, accuracy=asked.accuracy, f1=asked.f1, answers=asked.answers,
        seconds={**asked.seconds, **result.seconds},
    )


def _finite(model, adapter: str) -> bool:
    """False when training diverged: a LoRA weight of `adapter` is inf or NaN."""
    import torch

    return all(bool(torch.isfinite(p).all()) for n, p in model.named_parameters() if f".{adapter}." in n)
