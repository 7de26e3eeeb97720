"""Benchmark: training throughput on a night's kind of batches, with and without the shortcuts.

    python bench/sleep_speed.py --data ../shared/data/squad_dev_200.json --passages 50 --steps 40 \
        --general ../shared/data/wikitext2_valid.txt --models /tmp/models

Every answer span of the first N SEAL passages becomes a cloze pair, formatted as a night formats
them (bench/common.py: the chat template, the span as the answer); with --general, slices
of that text are added as general text (0.3 per pair, 128 tokens each: what the default
self-replay adds) and trained with KL to the base model, as a night trains its self-replay. A
fresh LoRA (the default settings) then trains the same first --steps steps of the plan three
times: as before the shortcuts (every row in full, a base-model pass in every batch for the
KL), with the prefix the rows of a batch share (the chat template's system turn) computed once
per batch (reverie.sleep.train.shared_prefix), and with that and the base model's distributions
computed once before training (reverie.sleep.train.base_targets, `sleep.kl_top_k`; its time is
counted, and reported apart: it is paid once a night, the base passes it saves once an epoch).
Tokens are the examples' real tokens, prefix included, so the ratio of two rates is a speed-up. The first loss of every run should agree to float rounding; with the cached targets
the KL is the top-k one, so later losses differ a little. Prints the figures as JSON (also written
to --out). `--smoke`: seconds, 3 steps on the tiny model (bench/common.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import common  # bench/ is on the path: run as a script


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="squad_dev_200.json (SEAL's split)")
    ap.add_argument("--passages", type=int, default=50)
    ap.add_argument("--steps", type=int, default=40, help="optimizer steps timed per run")
    ap.add_argument("--general", type=Path, help="general text: 0.3 slices per pair, with KL (as self-replay)")
    ap.add_argument("--models", type=Path, help="reuse this folder of converted models")
    ap.add_argument("--out", type=Path)
    args = common.parse(ap, argv, lambda d: {"data": d.squad, "passages": 2, "steps": 3, "general": d.wikitext})

    import torch

    from reverie.models import lora
    from reverie.sleep import train as training
    from reverie.sleep.data import Example, batches, encode, general_examples

    passages = json.loads(args.data.read_text(encoding="utf-8"))[: args.passages]
    data = [t for p in passages for t in common.cloze_pairs(p["context"])]
    home, settings, loaded = common.scratch_base(args.models, prefix="reverie-speed-")
    tok, cfg = loaded.tokenizer, settings.sleep
    examples = [Example(answer, question, "new") for question, answer in data]
    if args.general:
        text = args.general.read_text(encoding="utf-8")
        examples += general_examples(tok, text, round(0.3 * len(data)), 128, seed=0)
    encoded = [encode(tok, ex, cfg.max_tokens) for ex in examples]
    per_epoch = len(batches([len(e.ids) for e in encoded], cfg.batch_tokens, 0, 1))
    cfg = cfg.model_copy(update={"epochs": min(1.0, args.steps / per_epoch), "checkpoint_every": 10**9})
    base = loaded.model
    runs = {}
    modes = (("full rows, base pass per batch", 10**9, 0), ("shared prefix, base pass per batch", training.MIN_PREFIX, 0),
             ("shared prefix, cached base targets", training.MIN_PREFIX, cfg.kl_top_k))
    for n, (mode, least, top_k) in enumerate(modes):
        training.MIN_PREFIX = least
        torch.manual_seed(0)  # the same LoRA initialisation for all
        model = lora.new_lora(base, cfg)
        targets_done = []  # when the base model's targets were computed (their last progress report)

        def note(e, done: list = targets_done) -> None:
            if e.phase == "base targets" and e.done == e.total:
                done.append(time.perf_counter())

        t0 = time.perf_counter()
        result = training.train(model, tok, encoded, cfg.model_copy(update={"kl_top_k": top_k}), seed=0,
                                checkpoint=home / f"{n}.pt", progress=note)
        seconds = time.perf_counter() - t0
        targets = targets_done[0] - t0 if targets_done else 0.0
        runs[mode] = {"steps": result.steps, "tokens": result.tokens, "seconds": round(seconds, 1),
                      "targets_seconds": round(targets, 1),
                      "step_tokens_per_second": round(result.tokens / (seconds - targets), 1),
                      "tokens_per_second": round(result.tokens_per_second, 1),
                      "first_loss": round(result.history[0], 4), "final_loss": round(result.final_loss, 4)}
        print(mode, json.dumps(runs[mode]), file=sys.stderr, flush=True)
        base = model.unload()  # the plain base model back, for the next run's fresh LoRA
    report = {"passages": args.passages, "pairs": len(data), "examples": len(encoded), "general": bool(args.general),
              "threads": torch.get_num_threads(), "runs": runs,
              "speedup": {m: round(r["tokens_per_second"] / runs[modes[0][0]]["tokens_per_second"], 2)
                          for m, r in runs.items()}}
    common.write_json(args.out, report)
    return report


if __name__ == "__main__":
    main()
