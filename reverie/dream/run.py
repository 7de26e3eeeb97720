"""`reverie dream`: plan, generate in committed batches, gate, deduplicate, select, meter.

    from reverie.dream import run_dream
    result = run_dream(DreamContext(store, settings, local_model, log), budget=20000, generators=["qa", "facts"])

1. Plan. The chunks (default: documents read since the last night) share the budget equally.
   Per chunk, work items cycle through the generators until their expected output reaches
   `overgenerate` x the chunk's budget. Items are ordered by generator, so neighbours share
   prompt prefixes. Item i's outside randomness is seeded by derive_seed(run seed, i).
2. Generate (`stream`). With reverie's engine, every item's next step is asked the moment its
   last one returns, and rows freed by short answers are refilled at once (continuous
   batching); ask k of item i samples with derive_seed(run seed, 'ask', i, k). Other backends
   drive `items_per_batch` items in lockstep (`drive`), step s seeded by derive_seed(run seed,
   phase, batch, s). Once all items of a batch of `items_per_batch` are done, its candidates
   pass the gate (reverie.dream.gate) and are committed in ONE transaction with the batch's
   done-marker. Killed and restarted, the run skips committed batches: nothing finished is
   lost, and the same seed gives the same texts.
3. Baseline. The naive prompt (reverie.dream.baseline) is sampled to the same budget per chunk.
4. Select. Gate-passed dreams lose near-duplicates (MinHash), then a diverse subset within each
   chunk's budget is chosen (reverie.dream.select). Everything left out stays, dropped, with why.
   A reading too short to fill its share of the budget is no error: the run says how much it gave.
5. Compare. Per source chunk, k of the kept dreams against k of the chunk's baseline texts, k the
   smaller count (reverie.meter.compare_per_chunk: Vendi, distinct-2, compression, means over
   chunks): the headline, stored with the run as 'comparison'. Each whole set is metered too
   (reverie.meter.meter_texts, stored as 'meter'): secondary, since whole sets of different
   count and text length are no comparison (Vendi counts texts).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reverie.config import DreamConfig
from reverie.dream import baseline
from reverie.dream.base import Ask, Candidate, Chunk, WorkItem, derive_seed
from reverie.dream.entropy import distant_partners
from reverie.dream.gate import Gate
from reverie.dream.generators import GENERATORS
from reverie.dream.select import near_duplicates, select_within_budget
from reverie.errors import ReverieError
from reverie.models.backend import Backend, Generation, generate_mixed
from reverie.progress import Event, Progress
from reverie.store.dreams import DreamRecord

if TYPE_CHECKING:
    from reverie.config import Settings
    from reverie.models.loading import LoadedModel
    from reverie.store import Store


@dataclass
class DreamResult:
    run_id: int
    resumed: bool
    kept: int
    dropped: int
    kept_tokens: int
    generated_tokens: int  # by this process (a resumed run counts only what it generated itself)
    generate_seconds: float
    drop_reasons: dict[str, int] = field(default_factory=dict)  # reason kind -> count
    # 'dreams' / 'baseline' -> meter_texts() of each whole set: secondary (counts and lengths differ)
    meter: dict[str, dict] = field(default_factory=dict)
    # the headline: compare_per_chunk({'dreams', 'baseline'}), {} without two of each in some chunk
    comparison: dict = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.generate_seconds if self.generate_seconds else 0.0


# -- choosing what to dream about ----------------------------------------------------------------
def since_last_night(store, user_id: int | None = None) -> list[Chunk]:
    """The chunks of what the owner (None) or a user may recall that were read since their last
    night. A user's night leaves out chunks already dreamt about: the shared reading is dreamt
    once, and every night that may recall it learns those dreams (reverie.store.users)."""
    night = store.last_finished_night(user_id)
    ids = [r["id"] for r in store.documents(since=night["started_at"] if night else None, user_id=user_id)]
    chunks = [Chunk(r["id"], r["document_id"], r["text"]) for r in store.chunks(ids)] if ids else []
    if user_id is not None:
        dreamt = store.dreamt_chunk_ids([c.id for c in chunks])
        chunks = [c for c in chunks if c.id not in dreamt]
    return chunks


def resolve_chunks(store, docs: str | None, user_id: int | None = None) -> list[Chunk]:
    """docs: None (read since the last night, `since_last_night`), 'all' (everything the owner or
    user `user_id` may recall), or comma-separated document ids."""
    if not store.documents():
        raise ReverieError("nothing read yet: run `reverie read PATH` first")
    if docs is None:
        chunks = since_last_night(store, user_id)
        if not chunks:
            raise ReverieError("nothing read since the last night; read something new or pass --docs all")
        return chunks
    elif docs.strip() == "all":
        ids = [r["id"] for r in store.documents(user_id=user_id)]
    else:
        try:
            ids = [int(x) for x in docs.split(",") if x.strip()]
        except ValueError:
            raise ReverieError(f"--docs takes 'all' or document ids like 1,2,5, not {docs!r}") from None
        known = {r["id"] for r in store.documents()}
        unknown = [i for i in ids if i not in known]
        if unknown or not ids:
            raise ReverieError(f"no document {unknown[0] if unknown else docs!r} (see `reverie status`)")
    chunks = [Chunk(r["id"], r["document_id"], r["text"]) for r in store.chunks(ids)]
    if not chunks:
        raise ReverieError("the chosen documents have no text to dream about")
    return chunks


def check_generators(names: Sequence[str]) -> list[str]:
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in GENERATORS]
    if unknown:
        raise ReverieError(f"unknown generator {unknown[0]!r}; choose from {', '.join(GENERATORS)}")
    if not names:
        raise ReverieError(f"no generator chosen; choose from {', '.join(GENERATORS)}")
    return list(dict.fromkeys(names))


def plan(chunks: list[Chunk], generators: list[str], budget: int, overgenerate: float, seed: int) -> list[WorkItem]:
    """The run's work items (deterministic in its arguments), grouped by generator."""
    per_chunk = overgenerate * budget / len(chunks)
    rng = random.Random(derive_seed(seed, "plan"))
    wanted: dict[str, list[Chunk]] = defaultdict(list)
    for chunk in chunks:
        order = rng.sample(generators, len(generators))  # which generator a short budget favours varies
        expected, k = 0.0, 0
        while expected < per_chunk:
            name = order[k % len(order)]
            wanted[name].append(chunk)
            expected += GENERATORS[name].EST_TOKENS
            k += 1
    items: list[WorkItem] = []
    for name in generators:
        turns: dict[int, int] = defaultdict(int)
        for chunk in wanted[name]:
            index = len(items)
            item_seed = derive_seed(seed, "item", index)
            partners: list[Chunk] = []
            if name == "dream":
                r = random.Random(derive_seed(item_seed, "partners"))
                partners = distant_partners(chunk, chunks, r, k=r.choice(GENERATORS["dream"].PARTNERS))
            items.append(WorkItem(index, name, chunk, partners, item_seed, turns[chunk.id],
                                  derive_seed(seed, "chunk", chunk.id)))
            turns[chunk.id] += 1
    return items


# -- driving generators --------------------------------------------------------------------------
def drive(items: list[WorkItem], backend: Backend, seed_path: tuple) -> tuple[list[list[Candidate]], int]:
    """Run the items' generators in lockstep: each step sends every pending Ask to the backend at
    once (reverie.models.backend.generate_mixed: one call, or one per distinct sampling setting).
    Returns candidates per item and tokens generated."""
    works = [GENERATORS[item.generator].work(item) for item in items]
    results: list[list[Candidate]] = [[] for _ in items]
    pending: dict[int, list[Ask]] = {}

    def advance(i: int, sent: list[Generation] | None) -> None:
        try:
            pending[i] = works[i].send(sent)
        except StopIteration as stop:
            results[i] = stop.value
            pending.pop(i, None)

    for i in range(len(items)):
        advance(i, None)
    generated, step = 0, 0
    while pending:
        asks = [(i, j) for i, a in pending.items() for j in range(len(a))]
        gens = generate_mixed(backend, [pending[i][j].prompt for i, j in asks],
                              [pending[i][j].params for i, j in asks], derive_seed(*seed_path, step))
        answers: dict[int, list[Generation | None]] = {i: [None] * len(a) for i, a in pending.items()}
        for (i, j), gen in zip(asks, gens, strict=True):
            answers[i][j] = gen
            generated += gen.n_tokens
        for i in list(pending):
            advance(i, answers[i])
        step += 1
    return results, generated


def stream(batches: list[tuple[int, list[WorkItem]]], backend, seed: int,
           commit: Callable[[int, list[list[Candidate]], int], None]) -> None:
    """Drive batches of items; `commit(b, candidates per item, tokens generated)` runs as soon as
    every item of batch b has finished.

    With a backend that streams (reverie's engine), items do not wait for each other: each
    item's next step is queued the moment its previous one returns, rows freed by short answers
    are refilled at once, and batch b+1's items start while batch b's last ones finish. Each ask
    draws from its own seed, derive_seed(run seed, 'ask', item index, k), so a text depends only
    on its prompt and seed, not on what ran beside it. Other backends get lockstep `drive`."""
    if not getattr(backend, "streams", False):
        for b, items in batches:
            per_item, generated = drive(items, backend, (seed, "dream", b))
            commit(b, per_item, generated)
        return
    run = _Streamed(batches, seed, commit)
    backend.stream(run.pull, run.done)


class _Streamed:
    """The state of `stream`: each item's generator-side work, its current step's answers, and
    the queue of asks not yet started. The backend pulls asks as rows free up and reports each
    finished ask; an item whose step is complete takes its next step, and a batch whose items
    have all finished is committed."""

    def __init__(self, batches: list[tuple[int, list[WorkItem]]], seed: int, commit):
        self.seed, self.commit = seed, commit
        self.order = [(b, i, item) for b, items in batches for i, item in enumerate(items)]
        self.works = {(b, i): GENERATORS[item.generator].work(item) for b, i, item in self.order}
        self.index = {(b, i): item.index for b, i, item in self.order}
        self.results = {b: [[] for _ in items] for b, items in batches}
        self.left = {b: len(items) for b, items in batches}
        self.tokens = {b: 0 for b, _ in batches}
        self.answers: dict[tuple[int, int], list[Generation | None]] = {}  # an item's current step
        self.asked: dict[tuple[int, int], int] = defaultdict(int)  # asks an item has made so far
        self.queue: list[tuple] = []  # (prompt, params, seed, (batch, item, ask)) not yet started
        self.started = 0

    def advance(self, key, sent) -> None:
        b, i = key
        try:
            wanted = self.works[key].send(sent)
            while not wanted:  # a step that asks nothing goes on at once
                wanted = self.works[key].send([])
        except StopIteration as stop:
            self.results[b][i] = stop.value
            self.left[b] -= 1
            if self.left[b] == 0:
                self.commit(b, self.results.pop(b), self.tokens[b])
            return
        self.answers[key] = [None] * len(wanted)
        for j, ask in enumerate(wanted):
            ask_seed = derive_seed(self.seed, "ask", self.index[key], self.asked[key] + j)
            self.queue.append((ask.prompt, ask.params, ask_seed, (b, i, j)))
        self.asked[key] += len(wanted)

    def pull(self, n: int) -> list[tuple]:
        while len(self.queue) < n and self.started < len(self.order):  # start items only as rows free up
            b, i, _ = self.order[self.started]
            self.started += 1
            self.advance((b, i), None)
        taken = self.queue[:n]
        del self.queue[:n]
        return taken

    def done(self, tag, gen: Generation) -> None:
        b, i, j = tag
        step = self.answers[(b, i)]
        step[j] = gen
        self.tokens[b] += gen.n_tokens
        if all(a is not None for a in step):
            self.advance((b, i), step)


def _count_tokens(backend, texts: list[str], estimates: list[int]) -> list[int]:
    """Exact token counts with the backend's tokenizer when it has one, else the estimates. A batch
    whose items yielded no candidates counts nothing (a tokenizer cannot encode an empty list)."""
    tok = getattr(backend, "tokenizer", None)
    if tok is None or not texts:
        return estimates
    return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]


# -- the run --------------------------------------------------------------------------------------
def _run_config(budget: int, generators: list[str], chunks: list[Chunk], cfg: DreamConfig) -> dict:
    return {"budget": budget, "generators": generators, "chunk_ids": [c.id for c in chunks],
            "overgenerate": cfg.overgenerate, "items_per_batch": cfg.items_per_batch, "baseline": cfg.baseline}


def _open_run(store, budget, generators, chunks, cfg: DreamConfig, seed: int | None, fresh: bool):
    """(run row, resumed): continue an interrupted run with the same settings, or start one."""
    wanted = _run_config(budget, generators, chunks, cfg)
    run = store.unfinished_dream_run()
    if run is not None and fresh:
        store.abandon_dream_run(run["id"])
        run = None
    if run is not None:
        same = json.loads(run["config"]) == wanted and (seed is None or seed == run["seed"])
        if not same:
            raise ReverieError(
                f"dream run {run['id']} was interrupted with other settings; rerun with the same options "
                "to continue it, or abandon it with `reverie dream --fresh`"
            )
        return run, True
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    return store.dream_run(store.start_dream_run(seed, wanted)), False


@dataclass
class DreamContext:
    """What a dream run is handed (reverie.app.Reverie.dream builds it): nothing else of the application."""

    store: Store
    settings: Settings
    local_model: Callable[[], LoadedModel]  # the model in use (loaded on first call): generation, perplexity
    log: Callable[[str], None]


def run_dream(
    ctx: DreamContext,
    *,
    budget: int | None = None,
    generators: Sequence[str] | None = None,
    docs: str | None = None,
    fresh: bool = False,
    backend: Backend | None = None,
    user_id: int | None = None,
    progress: Progress | None = None,
) -> DreamResult:
    """Dream about what was read (by default, what the owner, or user `user_id`, may recall);
    see the module docstring."""
    cfg: DreamConfig = ctx.settings.dream
    budget = cfg.budget if budget is None else budget
    if budget <= 0:
        raise ReverieError(f"the budget must be a positive number of tokens, not {budget}")
    names = check_generators(cfg.generators if generators is None else generators)
    store = ctx.store
    chunks = resolve_chunks(store, docs, user_id)
    run, resumed = _open_run(store, budget, names, chunks, cfg, ctx.settings.generation.seed, fresh)
    run_id, seed = run["id"], run["seed"]
    if resumed:
        ctx.log(f"continuing interrupted dream run {run_id}")
    backend = backend or make_backend(ctx)
    gate = Gate(cfg, perplexity=_perplexity(ctx), slack={n: m.GROUNDING_SLACK for n, m in GENERATORS.items()})
    items = plan(chunks, names, budget, cfg.overgenerate, seed)
    stats = {"tokens": 0, "seconds": 0.0}
    _dream_phase(store, backend, gate, {c.id: c.text for c in chunks}, items, run_id, seed, cfg, progress, stats)
    if cfg.baseline:
        _baseline_phase(ctx, store, backend, run_id, seed, chunks, budget, cfg, progress, stats)
    return _finish(ctx, store, run_id, chunks, budget, cfg, resumed, stats)


def _dream_phase(store, backend, gate, sources, items, run_id, seed, cfg: DreamConfig, progress, stats) -> None:
    """Generate the run's work items batch by batch (skipping batches committed before a kill),
    gate each batch's candidates and commit it with its token counts in one transaction."""
    done = {b["batch"] for b in store.dream_run_batches(run_id, "dream")}
    batches = [items[i : i + cfg.items_per_batch] for i in range(0, len(items), cfg.items_per_batch)]
    todo = [(b, batch) for b, batch in enumerate(batches) if b not in done]
    finished = sum(len(batches[b]) for b in done)
    clock = [time.perf_counter()]

    def commit(b: int, per_item: list[list[Candidate]], generated: int) -> None:
        nonlocal finished
        seconds = time.perf_counter() - clock[0]  # wall time since the last commit: batches overlap
        candidates = [c for cs in per_item for c in cs]
        counts = _count_tokens(backend, [c.text for c in candidates], [c.n_tokens for c in candidates])
        verdicts = gate.check(candidates, sources)
        records = [_record(c, v, n, backend.identity) for c, v, n in zip(candidates, verdicts, counts, strict=True)]
        kept = sum(n for n, v in zip(counts, verdicts, strict=True) if v.reason is None)
        store.commit_dream_batch(run_id, "dream", b, dreams=records, n_tokens=generated, kept_tokens=kept,
                                 seconds=seconds)
        stats["tokens"] += generated
        stats["seconds"] += seconds
        finished += len(batches[b])
        if progress:
            progress(Event("dream", finished, len(items)))
        clock[0] = time.perf_counter()

    if progress:
        progress(Event("dream", finished, len(items)))
    stream(todo, backend, seed, commit)
    if progress:
        progress(Event("dream", len(items), len(items)))


def make_backend(ctx: DreamContext) -> Backend:
    """The backend `dream.backend` names; the local transformers model by default."""
    cfg = ctx.settings.dream
    if cfg.backend == "openai":
        from reverie.models.openai_http import OpenAIBackend

        return OpenAIBackend(cfg.endpoint, model=cfg.api_model, batch_size=cfg.batch_size)
    if cfg.backend == "vllm":  # the model and adapter in use that the local backend would load
        from reverie.models.loading import model_identity, resolve_model_path
        from reverie.models.lora import registered
        from reverie.models.vllm_backend import VLLMBackend

        path = resolve_model_path(ctx.settings.model.path, ctx.settings.models_dir, log=ctx.log)
        identity, name = model_identity(path), ctx.store.get_state("adapter")
        adapter = registered(ctx.store, name, identity) if name else None
        return VLLMBackend(path, adapter, seed=ctx.settings.generation.seed or 0, identity=identity)
    if cfg.backend == "llamacpp":
        from reverie.models.llamacpp import LlamaCppBackend

        m = ctx.settings.model
        return LlamaCppBackend(m.path, threads=m.threads)
    from reverie.models import TransformersBackend

    return TransformersBackend(ctx.local_model(), batch_size=cfg.batch_size)


def _record(c: Candidate, verdict, n_tokens: int, model: str) -> DreamRecord:
    metrics = {"n_tokens": n_tokens, **verdict.metrics, "entropy": c.entropy}
    if c.answer is not None:
        metrics["answer"] = c.answer
    return DreamRecord(
        generator=c.generator, text=c.text, model=model, seed=c.seed, source_chunk_ids=c.sources,
        sampling=c.params.as_dict() | {"seed": c.seed}, prompt=c.prompt, metrics=metrics,
        status="kept" if verdict.reason is None else "dropped", drop_reason=verdict.reason,
    )


def _perplexity(ctx):
    from reverie.meter.model_metrics import perplexities

    return lambda texts: perplexities(ctx.local_model(), texts)


def _baseline_phase(ctx, store, backend, run_id, seed, chunks, budget, cfg, progress, stats) -> None:
    per_chunk = math.ceil(budget / len(chunks) / baseline.EST_TOKENS)
    jobs = [c for _ in range(per_chunk) for c in chunks]
    params = baseline.sampling(ctx.settings.generation)
    done = {b["batch"] for b in store.dream_run_batches(run_id, "baseline")}
    size = max(cfg.items_per_batch, cfg.batch_size)
    for b, start in enumerate(range(0, len(jobs), size)):
        if progress:
            progress(Event("baseline", start, len(jobs)))
        if b in done:
            continue
        batch = jobs[start : start + size]
        t0 = time.perf_counter()
        gens = backend.generate([baseline.prompt(c.text) for c in batch],
                                dataclasses.replace(params, seed=derive_seed(seed, "baseline", b)))
        seconds = time.perf_counter() - t0
        rows = [(c.id, g.text, g.n_tokens, g.seed) for c, g in zip(batch, gens, strict=True)]
        n = sum(g.n_tokens for g in gens)
        store.commit_dream_batch(run_id, "baseline", b, baselines=rows, n_tokens=n, kept_tokens=n, seconds=seconds)
        stats["tokens"] += n
        stats["seconds"] += seconds
    if progress:
        progress(Event("baseline", len(jobs), len(jobs)))


def within_budget(rows, per_chunk: float, chunk_of: Callable, tokens_of: Callable) -> list:
    """The first rows of each chunk up to its share of the budget (the baseline's texts)."""
    used: dict[int, int] = defaultdict(int)
    out = []
    for r in rows:
        c = chunk_of(r)
        if used[c] < per_chunk:
            used[c] += tokens_of(r)
            out.append(r)
    return out


def by_chunk(rows, chunk_of: Callable) -> dict[int, list[str]]:
    """{chunk id: the rows' texts}, in the rows' order."""
    out: dict[int, list[str]] = defaultdict(list)
    for r in rows:
        out[chunk_of(r)].append(r["text"])
    return dict(out)


def reason_kind(reason: str) -> str:
    """'near-duplicate of dream 12' -> 'near-duplicate of dream', 'perplexity 736 > 500' ->
    'perplexity', 'spar: answered 0/4 times' -> 'spar': drop reasons counted by kind."""
    return re.split(r"[:\d]", reason, maxsplit=1)[0].strip()


def _chunk_of(row) -> int:
    return json.loads(row["source_chunk_ids"])[0]


def _select(rows, embedder, per_chunk: int, method: str) -> dict[int, str]:
    """Per chunk, a diverse subset of `rows` within `per_chunk` tokens: {dream id: why dropped}
    for the rows left out."""
    by_chunk: dict[int, list] = defaultdict(list)
    for r in rows:
        by_chunk[_chunk_of(r)].append(r)
    drops = {}
    for group in by_chunk.values():
        if method == "none":
            continue
        X = embedder.encode([r["text"] for r in group])
        costs = [json.loads(r["metrics"])["n_tokens"] for r in group]
        chosen = set(select_within_budget(X, costs, per_chunk, method))
        for k, r in enumerate(group):
            if k not in chosen:
                drops[r["id"]] = "not selected: outside the budget of the most diverse subset"
    return drops


def _finish(ctx, store, run_id, chunks, budget, cfg: DreamConfig, resumed: bool, stats: dict) -> DreamResult:
    """Deduplicate and select the run's dreams within the budget, meter them against the naive
    baseline, and close the run."""
    from reverie.meter.embed import make_embedder

    mcfg = ctx.settings.meter
    embedder = make_embedder(mcfg.embedder, mcfg.max_tokens, mcfg.embed_precision, warn=ctx.log)
    drops, kept = _select_run(store, run_id, chunks, budget, cfg, embedder, ctx.log)
    kept_tokens = sum(json.loads(r["metrics"])["n_tokens"] for r in kept)
    meter, comparison = _meter_run(store, run_id, kept, budget / len(chunks), mcfg, embedder, ctx.log)
    store.finish_dream_run(run_id, drops, {"comparison": comparison, "meter": meter})

    everything = store.run_dreams(run_id)
    reasons: dict[str, int] = defaultdict(int)
    for r in everything:
        if r["status"] == "dropped":
            reasons[reason_kind(r["drop_reason"])] += 1
    return DreamResult(
        run_id=run_id,
        resumed=resumed,
        kept=len(kept),
        dropped=len(everything) - len(kept),
        kept_tokens=kept_tokens,
        generated_tokens=stats["tokens"],
        generate_seconds=stats["seconds"],
        drop_reasons=dict(reasons),
        meter=meter,
        comparison=comparison,
    )


def _select_run(store, run_id, chunks, budget, cfg: DreamConfig, embedder, log) -> tuple[dict[int, str], list]:
    """(dropped dream id: why, dreams kept): near-duplicates out, then selection within each chunk's budget."""
    # In a canonical order, not the store's: streamed batches commit in whichever order they
    # finish, and which of two near-duplicates stays must not depend on that (or on a resume).
    passed = sorted(store.run_dreams(run_id, status="kept"), key=lambda r: (r["seed"], r["generator"], r["text"]))
    drops: dict[int, str] = {}
    for i, j in near_duplicates([r["text"] for r in passed], cfg.dedup_threshold).items():
        drops[passed[i]["id"]] = f"near-duplicate of dream {passed[j]['id']}"
    unique = [r for r in passed if r["id"] not in drops]
    left_out = _select(unique, embedder, int(budget / len(chunks)), cfg.selection)
    drops.update(left_out)
    kept = [r for r in unique if r["id"] not in drops]
    kept_tokens = sum(json.loads(r["metrics"])["n_tokens"] for r in kept)
    filled = {_chunk_of(r) for r in unique if r["id"] in left_out}
    if kept_tokens < budget and any(c.id not in filled for c in chunks):  # a chunk ran out of dreams
        log(f"the reading gave {kept_tokens:,} tokens of dreams of the {budget:,} budget")
    return drops, kept


def _meter_run(store, run_id, kept, per_chunk: float, mcfg, embedder, log) -> tuple[dict, dict]:
    """The whole sets' meters and the per-chunk, equal-count comparison with the baseline (also
    stored as meter runs)."""
    from reverie.meter import compare_per_chunk, meter_texts

    meter: dict[str, dict] = {}
    if len(kept) >= 2:
        meter["dreams"] = meter_texts([r["text"] for r in kept], config=mcfg, embedder=embedder, warn=log)
    base = within_budget(store.run_baselines(run_id), per_chunk, lambda r: r["chunk_id"], lambda r: r["n_tokens"])
    if len(base) >= 2:
        meter["baseline"] = meter_texts([r["text"] for r in base], config=mcfg, embedder=embedder, warn=log)
    sides = {"dreams": by_chunk(kept, _chunk_of), "baseline": by_chunk(base, lambda r: r["chunk_id"])}
    comparison = compare_per_chunk(sides, config=mcfg, embedder=embedder, seed=store.dream_run(run_id)["seed"])
    for label, metrics in meter.items():
        store.add_meter_run("meter", f"dream run {run_id}: {label} (whole set)", metrics, params={"run_id": run_id})
    if comparison:
        store.add_meter_run("meter", f"dream run {run_id}: dreams vs baseline per chunk at equal count",
                            {k: v for k, v in comparison.items() if k != "per_chunk"}, params={"run_id": run_id})
    return meter, comparison
