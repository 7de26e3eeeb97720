"""Benchmark: how fast a training format makes the model memorise, epoch by epoch (no dreaming).

    python bench/sleep_formats.py --data ../shared/data/squad_dev_200.json --passages 10 \
        --epochs 4 --format span --set batch_tokens=512 --self-replay 0.5 \
        --wikitext ../shared/data/wikitext2_valid.txt

A training ablation for the SEAL protocol that takes minutes, not a night: every answer span of
the first N passages becomes a cloze pair (reverie.dream.spans: the span's clause asked in place,
as the `cloze` generator writes it), answered as `--format span` (the span alone, as a night
does by default), `--format evidence` (the span, then its sentence: `sleep.evidence`), `--format
own` (as the base model says it, told the answer: `sleep.own_words`) or `--format template` ("The
answer is: <span>.", own words' fallback, for every pair). A fresh LoRA trains on them one epoch
at a time at a constant learning rate after a 10% warm-up in the first epoch. By default no
regulariser runs (it measures learning); `--self-replay R` adds R paragraphs per pair written by the base model (reverie.sleep.self_replay), trained as general
text with KL to the base model (kl_weight 1 unless --set says otherwise), as a night does.

After each epoch it reports closed-book quiz accuracy on the passages' SQuAD questions (answer
contained, greedy, 24 tokens), train recall (the share of 80 training questions whose answer
span the model now says) and, with --wikitext, perplexity on its first 8,192 tokens beside the
base model's: forgetting. With --wikitext it also asks the quiz where the night's gate would keep
the adapter (reverie.sleep.night.choose_strength: the strongest of `sleep.strengths` whose
perplexity is within `sleep.max_perplexity_rise` of the base model's, the weakest when none is;
`bound_*` in the row; the probe's Vendi bound is not checked here). That is what a night could
keep after this many epochs. Prints one JSON line per epoch (also appended to --out).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path


def pairs(passage: str, evidence: bool) -> list[tuple[str, str, str]]:
    """(question, training answer, span) for every answer span of the passage that makes a question."""
    from reverie.dream import spans
    from reverie.sleep.data import with_evidence

    out = []
    for sentence in spans.sentences(passage):
        for span in spans.answer_spans(sentence):
            question = spans.in_situ_question(span)
            if question:
                out.append((question, with_evidence(span.text, sentence) if evidence else span.text, span.text))
    return out


def own_words(backend, data):
    """Each answer as the base model says it, told the answer (reverie.sleep.own_words)."""
    from reverie.sleep.own_words import FALLBACK, phrase

    said = phrase(backend, [(q, a) for q, _, a in data])
    fallback = sum(t == FALLBACK.format(answer=a.rstrip(". ")) for t, (_, _, a) in zip(said, data, strict=True))
    print(f"own words: {len(data) - fallback} of {len(data)} answers in other words than the fallback's", file=sys.stderr)
    return [(q, t, a) for t, (q, _, a) in zip(said, data, strict=True)]


def scratch_base(models: Path | None, sleep: dict | None = None, prefix: str = "reverie-formats-"):
    """(home, settings, loaded base model) in a fresh temporary home; `models` reuses converted models."""
    from reverie.app import Reverie
    from reverie.config import load_settings

    home = Path(tempfile.mkdtemp(prefix=prefix))
    if models:
        (home / "models").symlink_to(models.resolve())
    settings = load_settings(home=home, overrides={"sleep": sleep or {}})
    return home, settings, Reverie.from_settings(settings, log=lambda m: print(m, file=sys.stderr)).load_base()


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="squad_dev_200.json (SEAL's split)")
    ap.add_argument("--passages", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--format", choices=("span", "evidence", "template", "own"), default="evidence")
    ap.add_argument("--set", action="append", default=[], help="a sleep setting, e.g. lr=1e-3 (repeatable)")
    ap.add_argument("--wikitext", type=Path, help="general text: perplexity on its first quiz.perplexity_tokens tokens after each epoch")
    ap.add_argument("--self-replay", type=float, default=0.0,
                    help="paragraphs the base model writes, per pair, trained as general text (KL, entropy)")
    ap.add_argument("--models", type=Path, help="reuse this folder of converted models")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from sleep_rerun import _setting  # bench/ is on the path: run as a script

    from reverie.models import SamplingParams, TransformersBackend
    from reverie.quiz.questions import Question
    from reverie.quiz.run import Measure
    from reverie.quiz.score import contained
    from reverie.sleep import adapters
    from reverie.sleep.data import Example, encode
    from reverie.sleep.night import choose_strength
    from reverie.sleep.self_replay import write_general
    from reverie.sleep.train import train

    passages = json.loads(args.data.read_text(encoding="utf-8"))[: args.passages]
    quiz = [(q["question"], q["answer"]) for p in passages for q in p["questions"]]
    data = [t for p in passages for t in pairs(p["context"], args.format == "evidence")]
    sleep = {"kl_weight": 1.0 if args.self_replay else 0.0, "entropy_weight": 0.0, "schedule": "constant"}
    for text in args.set:
        path, value = _setting(text)
        sleep[".".join(path)] = value
    home, settings, loaded = scratch_base(args.models, sleep)
    if args.format == "template":  # own words' fallback for every answer
        data = [(q, f"The answer is: {a}.", a) for q, a, _ in data]
    elif args.format == "own":
        data = own_words(TransformersBackend(loaded, batch_size=16), data)
    encoded = [encode(loaded.tokenizer, Example(answer, question, "new"), settings.sleep.max_tokens)
               for question, answer, _ in data]
    if args.self_replay:
        base_backend = TransformersBackend(loaded, batch_size=16)
        texts = write_general(base_backend, round(args.self_replay * len(data)), seed=0)
        encoded += [encode(loaded.tokenizer, Example(t, None, "general"), settings.sleep.max_tokens) for t in texts]
    print(f"{len(data)} pairs, {sum(len(e.ids) for e in encoded)} tokens an epoch (with any self-replay), {len(quiz)} questions",
          file=sys.stderr)
    # The gate's own measure and strength choice, without the probe (its Vendi bound is not checked here).
    measure = base = None
    if args.wikitext:
        quiz_cfg = settings.quiz.model_copy(update={"probe_prompts": [], "max_questions": len(quiz)})
        measure = Measure([Question(q, a) for q, a in quiz], quiz_cfg, settings.meter, args.wikitext)
        base = measure(loaded, "base", quiz=False)
    torch.manual_seed(0)  # LoRA's A matrices are drawn at creation
    loaded.model = adapters.new_lora(loaded.model, settings.sleep)
    backend = TransformersBackend(loaded, batch_size=16)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=24, seed=0)
    sample = random.Random(0).sample(range(len(data)), min(80, len(data)))

    def answers(questions):
        return [g.text for g in backend.generate([[{"role": "user", "content": q}] for q in questions], greedy)]

    rows, t0 = [], time.perf_counter()
    for epoch in range(args.epochs):
        cfg = settings.sleep.model_copy(update={"epochs": 1, "warmup": 0.1 if epoch == 0 else 0.0})
        result = train(loaded.model, loaded.tokenizer, encoded, cfg, seed=epoch, checkpoint=home / f"ck{epoch}.pt")
        said = answers([q for q, _ in quiz])
        recalled = answers([data[i][0] for i in sample])
        row = {"format": args.format, "passages": args.passages, "settings": args.set, "epoch": epoch + 1,
               "accuracy": float(np.mean([contained(a, g) for a, (_, g) in zip(said, quiz, strict=True)])),
               "train_recall": float(np.mean([contained(a, data[i][2]) for a, i in zip(recalled, sample, strict=True)])),
               "loss": result.final_loss, "tokens_per_second": result.tokens_per_second,
               "perplexity": None, "base_perplexity": None}
        if measure:
            chosen, tried, kept = choose_strength(loaded, loaded.model.active_adapter, measure, base, settings.sleep,
                                                  f"epoch {epoch + 1}")
            full = next((t["perplexity"] for t in tried if t["strength"] == 1.0), None)
            row.update(perplexity=full if full is not None else measure(loaded, "full", quiz=False).perplexity,
                       base_perplexity=base.perplexity, bound_strength=chosen, bound_passed=tried[-1]["passed"],
                       bound_perplexity=kept.perplexity, bound_accuracy=kept.accuracy)
        row["seconds"] = time.perf_counter() - t0
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
