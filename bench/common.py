"""What the benchmarks and diagnostics share: smoke mode, scratch homes, JSON output, the SEAL
protocol's settings and homes, and cloze pairs. bench/ is on the path of a script run as one
(bench/diag/ scripts put it there: `sys.path.insert(0, str(Path(__file__).resolve().parents[1]))`);
no script imports another, only this module.

    import common
    args = common.parse(ap, argv, lambda d: {"data": d.squad, "passages": 2})  # adds --smoke
    home = common.scratch_home("reverie-bench-")          # a fresh temporary home
    home, settings, loaded = common.scratch_base(models_dir, sleep={"rank": 8})
    common.write_json(args.out, result)                   # printed, and written to --out if given
    data = common.cloze_pairs(passage)                    # [(question, answer span)]

Smoke mode (`--smoke`, which every script takes; `make bench-smoke` runs them all through
bench/smoke.py): the script runs end to end in seconds on the tiny random model the tests use
(reverie.models.tiny, built locally, offline), one torch thread, small settings (SMOKE_ENV) and
the script's own small sizes; data paths not given are a few made-up SQuAD-shaped passages, a
general text and open prompts (smoke_data). Its figures mean nothing: that it runs and writes its
JSON is what is tested. Without --smoke nothing here changes a script's defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SMOKE_DIR_ENV = "BENCH_SMOKE_DIR"  # bench/smoke.py shares one smoke folder (tiny model, data) with every script

# Settings small enough for the tiny model (the environment reaches `reverie` subprocesses too).
SMOKE_ENV = {
    "REVERIE_MODEL__THREADS": "1",
    "REVERIE_GENERATION__MAX_NEW_TOKENS": "12",
    "REVERIE_METER__EMBEDDER": "tfidf",
    "REVERIE_WAKE__EMBEDDER": "hash",
    "REVERIE_DREAM__MAX_PERPLEXITY": "1e30",  # the tiny model's are near its vocabulary's size (512)
    "REVERIE_DREAM__MIN_PERPLEXITY": "1.0",
    "REVERIE_DREAM__MAX_RARE_RATE": "1.0",
    "REVERIE_DREAM__MIN_GROUNDED": "0.0",
    "REVERIE_DREAM__MIN_WORDS": "1",
    "REVERIE_SLEEP__STRENGTHS": "[1.0, 0.5]",
    "REVERIE_QUIZ__MAX_NEW_TOKENS": "8",
    "REVERIE_QUIZ__PERPLEXITY_TOKENS": "128",
    "REVERIE_QUIZ__OWN_TEXT_PARAGRAPHS": "2",
    "REVERIE_QUIZ__PROBE_PROMPTS": '["Tell me a joke."]',
    "REVERIE_QUIZ__PROBE_N": "2",
    "REVERIE_QUIZ__PROBE_MAX_NEW_TOKENS": "8",
    "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}

# Made-up passages in SQuAD's shape (squad_dev_200.json), in the tiny tokenizer's own words.
SMOKE_PASSAGES = [
    {"title": "Paris", "context": "Paris is the capital of France. The river flows through the old town, past the "
     "market and the cathedral, to the sea. The market opened in 1969.",
     "questions": [{"question": "What is the capital of France?", "answer": "Paris"},
                   {"question": "When did the market open?", "answer": "1969"}]},
    {"title": "Apollo 11", "context": "In 1969 astronauts landed on the Moon; the mission was called Apollo 11. "
     "Scientists study entropy, diversity and collapse in generated text.",
     "questions": [{"question": "What was the mission called?", "answer": "Apollo 11"},
                   {"question": "When did astronauts land on the Moon?", "answer": "1969"}]},
    {"title": "Water", "context": "Water boils at one hundred degrees Celsius at sea level. The mitochondria is "
     "the powerhouse of the cell. Sleep helps people consolidate memories of the day.",
     "questions": [{"question": "What is the powerhouse of the cell?", "answer": "The mitochondria"},
                   {"question": "At what temperature does water boil?", "answer": ["one hundred degrees"]}]},
    {"title": "Fox", "context": "The quick brown fox jumps over the lazy dog. A language model predicts the next "
     "token. Tell me a joke about a cat, a dog and a computer.",
     "questions": [{"question": "What does the quick brown fox jump over?", "answer": "the lazy dog"}]},
]
SMOKE_PROMPTS = ["Tell me a joke.", "Why is the sky blue?", "Write a short poem about the sea."]


@dataclass(frozen=True)
class SmokeData:
    dir: Path  # the smoke folder: the tiny model, these files, homes made once for several scripts
    model: Path  # the tiny model's folder
    squad: Path  # SMOKE_PASSAGES, as squad_dev_200.json
    wikitext: Path  # a general text, as wikitext2_valid.txt
    wildchat: Path  # SMOKE_PROMPTS, as wildchat_prompts_200.jsonl


def parse(ap: argparse.ArgumentParser, argv: list[str] | None,
          smoke: Callable[[SmokeData], dict] | None = None) -> argparse.Namespace:
    """ap.parse_args(argv) with a --smoke flag; with it, smoke(smoke_data()) gives the defaults
    (options given on the command line still win) and required options become optional."""
    ap.add_argument("--smoke", action="store_true",
                    help="seconds on the tiny random model with small made-up data (make bench-smoke)")
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--smoke" in argv:
        defaults = (smoke or (lambda d: {}))(smoke_data())
        for action in ap._actions:
            if action.dest in defaults:
                action.required = False
        ap.set_defaults(**defaults)
    return ap.parse_args(argv)


def smoke_data() -> SmokeData:
    """Smoke mode's setup, once per process: the tiny model, the made-up data, SMOKE_ENV, one thread."""
    folder = os.environ.get(SMOKE_DIR_ENV)
    folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="reverie-smoke-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[SMOKE_DIR_ENV] = str(folder)
    d = SmokeData(folder, folder / "tiny-llama", folder / "squad.json", folder / "wikitext.txt",
                  folder / "wildchat.jsonl")
    for name in [n for n in os.environ if n.startswith("REVERIE_")]:
        del os.environ[name]  # nothing from outside: a smoke run is the same everywhere
    os.environ.update(SMOKE_ENV, REVERIE_MODEL__PATH=str(d.model))
    if not (d.model / "config.json").is_file():
        from reverie.models.tiny import make_tiny_model

        make_tiny_model(d.model)
    if not d.squad.is_file():
        d.squad.write_text(json.dumps(SMOKE_PASSAGES, indent=1), encoding="utf-8")
        d.wikitext.write_text(" ".join(p["context"] for p in SMOKE_PASSAGES * 4), encoding="utf-8")
        d.wildchat.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in SMOKE_PROMPTS), encoding="utf-8")
    import torch

    torch.set_num_threads(1)
    return d


def scratch_home(prefix: str = "reverie-bench-") -> Path:
    """A fresh temporary folder for a reverie home (in smoke mode, inside the smoke folder)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get(SMOKE_DIR_ENV)))


def scratch_base(models: Path | None, sleep: dict | None = None, prefix: str = "reverie-bench-"):
    """(home, settings, loaded base model) in a fresh temporary home; `models` reuses converted models."""
    from reverie.app import Reverie
    from reverie.config import load_settings

    home = scratch_home(prefix)
    if models:
        (home / "models").symlink_to(models.resolve())
    settings = load_settings(home=home, overrides={"sleep": sleep or {}})
    return home, settings, Reverie.from_settings(settings, log=log).load_base()


def log(message: str) -> None:
    """A Reverie log line, to stderr (stdout is the JSON)."""
    print(message, file=sys.stderr)


def write_json(out: Path | None, data, indent: int = 1, echo: bool = True) -> str:
    """Print `data` as JSON (unless not `echo`) and write it to `out` when given; returns the text."""
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    if echo:
        print(text, flush=True)
    if out:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    return text


def cloze_pairs(passage: str) -> list[tuple[str, str]]:
    """(question, span) for every answer span of the passage that makes an in-place question."""
    from reverie.dream import spans

    out = []
    for sentence in spans.sentences(passage):
        for span in spans.answer_spans(sentence):
            question = spans.in_situ_question(span)
            if question:
                out.append((question, span.text))
    return out


# -- the SEAL protocol (bench/sleep_seal.py, and what reruns and diagnostics read of its homes) --------
def protocol_overrides(wikitext: Path | None) -> dict:
    """The settings every SEAL night runs with: all questions quizzed, perplexity on `wikitext`,
    the joke probe, no naive dream baseline (it costs time and the night does not use it)."""
    return {"dream": {"baseline": False},
            "quiz": {"general_text": str(wikitext) if wikitext else None, "max_questions": 100000}}


def throttled_progress(every: float):
    """A night's progress callback that prints at most one line every `every` seconds."""
    last = {"t": 0.0}

    def progress(e):  # a reverie.progress.Event
        if time.perf_counter() - last["t"] > every:
            last["t"] = time.perf_counter()
            print(e.phase, f"{e.done}/{e.total}" if e.total else "", e.detail, file=sys.stderr)

    return progress


def seal_home(home: Path, passages: list[dict]) -> tuple[Path, Path]:
    """A SEAL home's reading and quiz: one Markdown document per passage under HOME/passages, and
    their SQuAD questions in HOME/quiz.jsonl (outside the documents: never read, never dreamed about)."""
    docs = home / "passages"
    docs.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(passages):
        (docs / f"{i:03d}.md").write_text(f"# {p['title']}\n\n{p['context']}\n", encoding="utf-8")
    quiz = home / "quiz.jsonl"
    quiz.write_text("".join(json.dumps(q) + "\n" for p in passages for q in p["questions"]), encoding="utf-8")
    return docs, quiz


def smoke_night_home(name: str = "night-home", budget: int = 40) -> Path:
    """Smoke mode: a SEAL home (as bench/sleep_seal.py leaves one) whose first night has finished,
    on the smoke passages; made once per smoke folder and `name`, for the scripts that read one."""
    from reverie.app import Reverie
    from reverie.config import load_settings

    d = smoke_data()
    home = d.dir / name
    if (home / "done").is_file():
        return home
    shutil.rmtree(home, ignore_errors=True)  # a half-made one from a killed run
    passages = json.loads(d.squad.read_text(encoding="utf-8"))
    docs, quiz = seal_home(home, passages)
    rv = Reverie.from_settings(load_settings(home=home, overrides=protocol_overrides(d.wikitext)), log=log)
    rv.read([docs])
    rv.sleep(budget=budget * len(passages), quiz_file=quiz)
    rv.close()
    (home / "done").write_text("", encoding="utf-8")
    return home
