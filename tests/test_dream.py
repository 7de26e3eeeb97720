"""Dream: generators (structure, provenance, seeds), the gate, selection, resuming, bad input.

Generators are driven by a scripted backend (a tiny random model writes gibberish, which tests
nothing about parsing); one end-to-end run uses the tiny model itself."""

from __future__ import annotations

import hashlib
import json
import random
import re

import numpy as np
import pytest

from reverie.config import DreamConfig, load_settings
from reverie.dream.base import Candidate, Chunk, WorkItem, derive_seed, parse_qa
from reverie.dream.gate import Gate, answer_in_source
from reverie.dream.generators import GENERATORS
from reverie.dream.generators.qa import turn_spans
from reverie.dream.run import DreamContext, drive, plan
from reverie.dream.run import run_dream as _run_dream
from reverie.dream.select import near_duplicates, select_within_budget
from reverie.dream.spans import pick_spans
from reverie.models.backend import Generation, SamplingParams
from reverie.store.documents import ChunkSpan

PARIS = ("Paris is the capital of France. The Seine river flows through Paris. "
         "In 1889 the Eiffel Tower was built for a world fair.")
WATER = "Water boils at 100 degrees Celsius at sea level. Ice melts when the weather becomes warm."
CHUNKS = [Chunk(1, 1, PARIS), Chunk(2, 2, WATER)]


class ScriptedBackend:
    """Answers by recognising the prompt's template; records every call."""

    identity = "scripted@1"

    def __init__(self, fail_after: int | None = None):
        self.calls: list[tuple[list, SamplingParams]] = []
        self.fail_after = fail_after

    def reply(self, content: str, seed: int) -> str:
        last = content.strip().split("\n")[-1]
        if "into a question whose answer is the blank" in content:
            return f"What fills the gap in {last.replace('___', '').strip(' .')}?\nmore"
        if content.startswith("Split this sentence into short facts"):
            return f"1. {last}\n2. {last}\n- {' '.join(last.split()[:4])}"
        if content.startswith("Rewrite this sentence"):
            return f"{last} So it is, seed {seed}."
        if "just before telling them this fact" in content:
            return "Listen closely, my friends."
        if "At a book club" in content:
            return "That sounds lovely to me."
        if "sentence from a dream" in content:
            return "The moon sang over the river."
        if "According to this sentence, how are" in content:
            return content.split("\n")[0]
        if content.startswith("Answer in one short sentence"):
            return "I believe it is the Loire."
        if "Answer with a few words" in content:
            return "The Seine" if seed % 2 else "Paris"
        return f"{last} So it is, seed {seed}."

    def generate(self, prompts, params, progress=None):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt
        params = params.resolved()
        self.calls.append((prompts, params))
        out = []
        for i, p in enumerate(prompts):
            text = self.reply(p[-1]["content"], params.seed + i)
            out.append(Generation(text, len(text.split()), 10, "stop", params.seed + i))
        return out


def run_dream(rv, **kw):
    """A dream run handed what the application hands it (reverie.app.Reverie.dream)."""
    return _run_dream(DreamContext(rv.store, rv.settings, lambda: rv.loaded, rv.log), **kw)


def _items(name, seed=5):
    return [i for i in plan(CHUNKS, [name], 400, 1.0, seed) if i.generator == name]


@pytest.mark.parametrize("name", list(GENERATORS))
def test_generator_structure_provenance_seeds(name):
    items = _items(name)
    assert items and all(i.generator == name for i in items)
    results, generated = drive(items, ScriptedBackend(), (5, "dream", 0))
    asks_model = bool(GENERATORS[name].SAMPLING)  # cloze writes its texts without the model
    assert (generated > 0) == asks_model
    cands = [c for cs in results for c in cs]
    assert cands, f"{name} produced nothing"
    for item, cs in zip(items, results, strict=True):
        for c in cs:
            assert c.generator == name and c.text.strip()
            assert c.sources[0] == item.chunk.id and set(c.sources) <= {1, 2}
            assert bool(c.prompt) == asks_model and isinstance(c.params, SamplingParams) and isinstance(c.seed, int)
            assert c.n_tokens >= 1
    # Same run seed, same plan and texts; another seed, other outside randomness.
    again = [c for cs in drive(_items(name), ScriptedBackend(), (5, "dream", 0))[0] for c in cs]
    assert [(c.text, c.seed, c.entropy) for c in again] == [(c.text, c.seed, c.entropy) for c in cands]


def test_generator_specifics():
    def run(name):
        return [c for cs in drive(_items(name), ScriptedBackend(), (1, "d", 0))[0] for c in cs]

    texts = {1: PARIS, 2: WATER}
    qa = run("qa")
    assert qa and all(c.text.startswith("Q: ") and "\nA: " in c.text for c in qa)
    # answer first: the answer is a span of the chunk, recorded with its sentence and opening
    assert all(answer_in_source(c.answer, texts[c.sources[0]]) and c.entropy["answer"] == c.answer for c in qa)
    assert all(c.entropy["sentence"] in texts[c.sources[0]] for c in qa)
    assert all(c.answer.lower() not in c.text.split("\nA: ")[0].lower() for c in qa)  # not given away
    cloze = drive(_items("cloze"), ScriptedBackend(), (1, "d", 0))[0]
    flat = [c for cs in cloze for c in cs]
    assert flat and all(c.text == f"Q: {c.text[3:].split(chr(10))[0]}\nA: {c.answer}" for c in flat)
    assert all(answer_in_source(c.answer, texts[c.sources[0]]) for c in flat)
    assert all(c.answer.lower() not in c.text.split("\nA: ")[0].lower() for c in flat)
    # a chunk's items share out its spans: each is asked once before any is asked twice
    chunk = next(c for c in CHUNKS if c.id == 1)
    every = pick_spans(chunk.text, random.Random(9), 10**6)
    turns = [s for t in range(4) for s in turn_spans(WorkItem(t, "qa", chunk, [], t, turn=t, chunk_seed=9), 2)]
    assert len(every) >= 3 and set(turns[: len(every)]) == set(every) and len(set(turns)) == len(every)
    once = [s for t in range(4) for s in turn_spans(WorkItem(t, "cloze", chunk, [], t, turn=t, chunk_seed=9), 2,
                                                    wrap=False)]
    assert once == every  # without wrapping, each span once, then nothing
    per_item = drive(_items("facts"), ScriptedBackend(), (1, "d", 0))[0]
    assert all(len({c.text for c in cs}) == len(cs) for cs in per_item)  # a line listed twice is one dream
    assert all(c.entropy["sentence"] in texts[c.sources[0]] for cs in per_item for c in cs)
    rest = run("restate")
    assert all({"audience", "voice", "sentence", "form"} <= set(c.entropy) for c in rest)
    assert all(c.entropy["sentence"] in c.text for c in rest if c.entropy["form"] == "opening")
    club = run("bookclub")
    assert all(2 <= len(c.entropy["personas"]) <= 3 for c in club)
    assert all({"occupation", "age", "temperament", "interest"} <= set(c.entropy["personas"][0]) for c in club)
    # one turn per persona, each quoting a sentence of the chunk
    assert all(len(c.text.splitlines()) == len(c.entropy["quotes"]) for c in club)
    assert all(c.text.startswith(c.entropy["personas"][0]["name"] + ": ") for c in club)
    ents = run("entities")
    assert ents and all(all(e.lower() in texts[c.sources[0]].lower() for e in c.entropy["entities"]) for c in ents)
    assert all(c.entropy["sentence"] in texts[c.sources[0]] for c in ents)
    rec = run("reconcile")
    assert all("What I believed before reading: I believe it is the Loire." in c.text for c in rec)
    assert all("I believe" not in c.checked_text and "Loire" not in json.dumps(c.entropy) for c in rec)
    assert all(answer_in_source(c.answer, texts[c.sources[0]]) for c in rec)
    dreams = run("dream")
    assert all(len(c.sources) >= 2 and len(c.entropy["words"]) == 2 for c in dreams)
    assert all(len(c.entropy["facts"]) == len(c.sources) and "The moon sang" in c.text for c in dreams)
    spar = run("spar")
    assert all(0 <= c.entropy["solve_rate"] <= 1 for c in spar)
    assert all((c.drop_reason is None) == (0 < c.entropy["solve_rate"] < 1) for c in spar)
    assert all(answer_in_source(c.answer, texts[c.sources[0]]) for c in spar)


def test_generators_pass_the_gate_on_faithful_replies():
    """Grounded by construction: when the model says what the scaffolding asks, every generator's
    dreams pass the gate's grounding (perplexity aside)."""
    gate = Gate(DreamConfig(), slack={n: m.GROUNDING_SLACK for n, m in GENERATORS.items()})
    sources = {1: PARIS, 2: WATER}
    for name in GENERATORS:
        cands = [c for cs in drive(_items(name), ScriptedBackend(), (1, "d", 0))[0] for c in cs]
        for c in cands:
            share, reason = gate.grounding(c, "\n".join(sources[s] for s in c.sources))
            assert reason is None, (name, c.text, reason)


def test_parse_qa_is_lenient():
    assert parse_qa("Q: Who?\nA: Me") == [("Who?", "Me")]
    assert parse_qa("**Question 1:** Where is it?\n**Answer:** Paris") == [("Where is it?", "Paris")]
    assert parse_qa("Where is the tower? In Paris, France.") == [("Where is the tower?", "In Paris, France.")]
    assert parse_qa("no question here") == []


def _cand(text, generator="facts", answer=None, sources=(1,), entropy=None, checked=None):
    return Candidate(generator, text, list(sources), "p", SamplingParams(), 1, 10, entropy or {}, answer, checked)


def test_gate_decisions_on_crafted_texts():
    gate = Gate(DreamConfig(), perplexity=lambda texts: np.array([20.0 if "dull" not in t else 1.05 for t in texts]))
    sources = {1: PARIS, 2: WATER}
    texts = [
        _cand("The Seine river flows through Paris, the capital of France."),           # kept
        _cand("ha ha ha ha ha ha ha ha ha ha ha ha ha ha ha ha ha ha"),                 # degenerate
        _cand("Too short."),                                                           # short
        _cand("The Eiffel Tower was built in 1925 for a world fair in Paris."),        # number
        _cand("Bananas grow on volcanic islands near Madagascar and Tahiti quickly."),  # ungrounded
        _cand("Q: What flows through Paris?\nA: The Thames", "qa", answer="The Thames"),  # answer
        _cand("Paris is the capital of France, the dull capital of France."),     # perplexity low
        _cand("The Seine river flows through Paris near zorbulak quixotrans vemplar.", entropy={}),  # rare
        _cand("Paris met the boiling water at 100 degrees, said a nurse.", "dream", sources=(1, 2),
              entropy={"words": ["nurse"]}),                                           # kept: 2 sources
    ]
    reasons = [v.reason for v in gate.check(texts, sources)]
    assert reasons[0] is None and reasons[8] is None
    assert reasons[1].startswith("degenerate")
    assert reasons[2].startswith("too short")
    assert reasons[3] == "ungrounded number: 1925 is not in the sources"
    assert reasons[4].startswith("ungrounded:")
    assert reasons[5].startswith("answer not in the source")
    assert reasons[6].startswith("perplexity") and "< 1.3" in reasons[6]
    assert reasons[7].startswith(("rare words", "ungrounded"))
    high = Gate(DreamConfig(max_perplexity=80), perplexity=lambda t: np.array([500.0]))
    assert high.check([texts[0]], sources)[0].reason == "perplexity 500 > 80"
    assert answer_in_source("the Seine", PARIS) and answer_in_source("1889", PARIS)
    assert not answer_in_source("1890", PARIS)


def test_near_duplicates_and_selection():
    texts = ["the cat sat on the mat today in the sun", "the cat sat on the mat today in the sun!",
             "a completely different sentence about rivers and boats"]
    assert near_duplicates(texts, 0.7) == {1: 0}
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 16))
    # 6 near-copies of direction 0, one each of directions 1 and 2
    X = np.vstack([base[0] + 0.01 * rng.normal(size=16) for _ in range(6)] + [base[1], base[2]])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    costs = [10] * 8
    for method in ("vendi", "facility"):
        chosen = select_within_budget(X, costs, 30, method)
        assert len(chosen) == 3 and {6, 7} <= set(chosen), method
    assert sum(costs[i] for i in select_within_budget(X, [10, 50, 10, 10, 10, 10, 10, 50], 25)) <= 25
    assert select_within_budget(X, costs, 0) == []


def _home_with_docs(home, docs=(PARIS, WATER)):
    from reverie.app import Reverie

    settings = load_settings(home=home, overrides={"meter": {"embedder": "tfidf"},
                                                   "dream": {"items_per_batch": 2, "baseline": True}})
    rv = Reverie(settings)
    for i, text in enumerate(docs):
        rv.store.put_document(source=f"/doc{i}.txt", title=f"doc {i}", kind="txt",
                              sha256=hashlib.sha256(text.encode()).hexdigest(), text=text,
                              spans=[ChunkSpan(0, len(text), 30)])
    return rv


def _dream_rows(rv):
    return [(r["generator"], r["text"], r["seed"], r["status"]) for r in rv.store.conn.execute(
        "SELECT * FROM dreams ORDER BY id")]


def test_resume_after_kill_loses_nothing(home, tmp_path):
    kw = dict(budget=300, generators=["qa", "facts", "restate"], docs="all")
    rv = _home_with_docs(home)
    rv.settings.generation.seed = 11
    with pytest.raises(KeyboardInterrupt):
        run_dream(rv, **kw, backend=ScriptedBackend(fail_after=7))
    run = rv.store.unfinished_dream_run()
    batches = rv.store.dream_run_batches(run["id"], "dream")
    assert batches, "the batches finished before the kill were committed"
    before = _dream_rows(rv)
    result = run_dream(rv, **kw, backend=ScriptedBackend())
    assert result.resumed and result.run_id == run["id"]
    after = _dream_rows(rv)
    assert [r[:3] for r in after[: len(before)]] == [r[:3] for r in before]  # nothing lost or redone
    # The interrupted-and-resumed run equals an uninterrupted one with the same seed.
    other = _home_with_docs(tmp_path / "other")
    other.settings.generation.seed = 11
    other.settings.model.path = rv.settings.model.path
    run_dream(other, **kw, backend=ScriptedBackend())
    assert [r[:3] for r in _dream_rows(other)] == [r[:3] for r in after]
    assert rv.store.unfinished_dream_run() is None


class StreamingScripted(ScriptedBackend):
    """Streams like reverie's engine: `rows` asks in flight, finished in a scrambled order."""

    streams = True

    def __init__(self, fail_after: int | None = None, rows: int = 5):
        super().__init__(fail_after)
        self.rows, self.finished = rows, 0

    def stream(self, pull, done):
        running = []
        while True:
            running += pull(self.rows - len(running))
            if not running:
                return
            pick = sum(r[2] for r in running) % len(running)  # a deterministic, scrambled order
            prompt, params, seed, tag = running.pop(pick)
            if self.fail_after is not None and self.finished >= self.fail_after:
                raise KeyboardInterrupt
            text = self.reply(prompt[-1]["content"], seed)
            self.finished += 1
            done(tag, Generation(text, len(text.split()), 10, "stop", seed))


def test_streamed_run_resumes_and_matches_an_uninterrupted_one(home, tmp_path):
    """Batches overlap when streamed; a kill still loses nothing committed, and each ask's seed
    is its own, so the resumed run holds the same dreams as one never interrupted."""
    kw = dict(budget=300, generators=["qa", "facts", "spar", "entities"], docs="all")
    other = _home_with_docs(tmp_path / "other")
    other.settings.generation.seed = 11
    whole = StreamingScripted(rows=3)
    run_dream(other, **kw, backend=whole)
    rv = _home_with_docs(home)
    rv.settings.generation.seed = 11
    rv.settings.model.path = other.settings.model.path
    with pytest.raises(KeyboardInterrupt):
        run_dream(rv, **kw, backend=StreamingScripted(fail_after=whole.finished * 3 // 4))
    run = rv.store.unfinished_dream_run()
    assert rv.store.dream_run_batches(run["id"], "dream"), "finished batches were committed"
    before = set(_dream_rows(rv))
    result = run_dream(rv, **kw, backend=StreamingScripted())
    assert result.resumed
    after = _dream_rows(rv)
    assert before <= set(after)
    assert sorted(_dream_rows(other)) == sorted(after)
    assert len({r[2] for r in after}) > 1  # seeds recorded per ask


def test_bad_input(home, cli):
    res = cli("dream", "--budget", "100")
    assert res.code == 1 and "nothing read yet" in res.err
    _home_with_docs(home).close()
    res = cli("dream", "--generators", "qa,poetry")
    assert res.code == 1 and "unknown generator 'poetry'" in res.err
    res = cli("dream", "--budget", "0")
    assert res.code == 1 and "budget must be a positive number" in res.err
    res = cli("dreams", "--export", "x.csv")
    assert res.code == 1 and "unknown export format" in res.err


def test_dream_cli_end_to_end_on_tiny_model(home, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("REVERIE_METER__EMBEDDER", "tfidf")
    monkeypatch.setenv("REVERIE_DREAM__MIN_GROUNDED", "0")
    monkeypatch.setenv("REVERIE_DREAM__MAX_PERPLEXITY", "1e9")
    monkeypatch.setenv("REVERIE_DREAM__MAX_RARE_RATE", "1")
    _home_with_docs(home).close()
    # 300 tokens a chunk: two or more kept dreams and naive texts in each of the two chunks
    res = cli("--seed", "3", "dream", "--budget", "600", "--generators", "restate,bookclub", "--docs", "all")
    assert res.code == 0, res.err
    assert "dream run 1" in res.out
    # The headline comes last: per source chunk at equal count; the whole sets only as secondary.
    head, _, tail = res.out.partition("dreams vs naive baseline, per source chunk at equal count")
    assert tail and "secondary: whole sets" in head and "count and length differ" in head
    for label in ("mean over chunks", "Vendi score", "distinct-2", "compression ratio", "tokens per text",
                  "2 chunks, each side drawn at random to the smaller count", "mean of per-chunk ratios"):
        assert label in tail, label
    k = re.search(r"texts per chunk\s*│\s*([\d.]+)\s*│\s*([\d.]+)", tail)
    assert k and k.group(1) == k.group(2) and float(k.group(1)) >= 2
    from reverie.store import Store

    with Store.open(load_settings().db_path) as store:
        stored = json.loads(store.dream_run(1)["metrics"])
        labels = [r["label"] for r in store.meter_runs("meter")]
    cmp = stored["comparison"]
    assert cmp["chunks"] == 2 and cmp["texts_per_chunk"] == float(k.group(1))
    n = cmp["sets"]["dreams"]["n_texts"]
    assert n == cmp["sets"]["baseline"]["n_texts"] <= min(m["n_texts"] for m in stored["meter"].values())
    assert [r["k"] for r in cmp["per_chunk"]] and set(stored["meter"]) == {"dreams", "baseline"}
    assert "dream run 1: dreams vs baseline per chunk at equal count" in labels
    res = cli("dreams", "--all")
    assert res.code == 0 and ("restate" in res.out or "bookclub" in res.out)
    out = tmp_path / "d.jsonl"
    assert cli("dreams", "--all", "--export", out).code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and {"text", "generator", "source_chunk_ids", "seed", "sampling", "status"} <= set(rows[0])
    assert all(r["generator"] in ("restate", "bookclub") and r["source_chunk_ids"] for r in rows)
    pq = tmp_path / "d.parquet"
    assert cli("dreams", "--all", "--export", pq, "--format", "parquet").code == 0
    import pyarrow.parquet as papq

    table = papq.read_table(pq)
    assert table.num_rows == len(rows) and "generator" in table.column_names


def test_a_budget_the_reading_cannot_fill_is_no_error(home, cli, monkeypatch):
    """Issue 18: most cloze items of two short documents find no fact, so whole batches yield no
    candidates; the run ends normally and says how much of the budget the reading gave."""
    monkeypatch.setenv("REVERIE_METER__EMBEDDER", "tfidf")
    monkeypatch.setenv("REVERIE_DREAM__MAX_PERPLEXITY", "1e9")
    monkeypatch.setenv("REVERIE_DREAM__BASELINE", "false")  # its sampling has nothing to do with the reading
    _home_with_docs(home).close()
    res = cli("--seed", "0", "dream", "--generators", "cloze", "--budget", "20000", "--docs", "all")
    assert res.code == 0, res.err
    kept = int(re.search(r"kept \d+ dreams \((\d+) tokens\)", res.out).group(1))
    assert 0 < kept < 20000
    assert f"the reading gave {kept:,} tokens of dreams of the 20,000 budget" in res.err
    assert "Traceback" not in res.err


def test_seeds_derive_stably():
    assert derive_seed(1, "item", 3) == derive_seed(1, "item", 3) != derive_seed(2, "item", 3)
    assert 0 <= derive_seed("x") < 2**31
