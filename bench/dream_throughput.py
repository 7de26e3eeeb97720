"""Benchmark: dream generation throughput, generated tokens per second summed over the batch.

    python bench/dream_throughput.py --data ../shared/data/squad_dev_200.json --passages 8

Two workloads, each with reverie's engine (reverie.models.engine) and with transformers' own
`generate` side by side (same prompts, same batch size, same sampling settings):
- `dream`: the real thing. The first N SQuAD passages are planned into work items for all eight
  generators (reverie.dream.run.plan, BUDGET tokens per passage) and driven exactly as `reverie
  dream` drives them (reverie.dream.run.stream: continuous batching with reverie's engine,
  lockstep steps of `--items-per-batch` items with transformers' generate). Prompts
  are 200-400 tokens (a passage and an instruction); answers 30-200 tokens.
- `fixed`: `--batch-size` copies of one passage-and-instruction prompt, `--new-tokens` each.
Only generated tokens count (EOS excluded); the time is wall time of generation alone. Default
model, float32, CPU; torch threads as torch chooses (2 on the development machine). Prints a JSON
line per row (all rows also written to --out). `--smoke`: seconds on the tiny model (bench/common.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import common  # bench/ is on the path: run as a script


def dream_workload(loaded, data: Path, passages: int, budget: int, items_per_batch: int, batch_size: int,
                   engine: bool, seed: int, lockstep: bool = False) -> dict:
    from reverie.dream.base import Chunk
    from reverie.dream.generators import GENERATORS
    from reverie.dream.run import drive, plan, stream
    from reverie.models import TransformersBackend

    rows = json.loads(data.read_text())[:passages]
    chunks = [Chunk(i + 1, i + 1, r["context"]) for i, r in enumerate(rows)]
    items = plan(chunks, list(GENERATORS), budget * len(chunks), 2.0, seed)
    backend = TransformersBackend(loaded, batch_size=batch_size, engine=engine)
    batches = [(b, items[i : i + items_per_batch]) for b, i in enumerate(range(0, len(items), items_per_batch))]
    generated, t0 = 0, time.perf_counter()

    def commit(b, per_item, n):
        nonlocal generated
        generated += n

    if lockstep:  # the previous driver, for comparison: each batch's items step by step together
        for b, batch in batches:
            commit(b, None, drive(batch, backend, (seed, "bench", b))[1])
    else:
        stream(batches, backend, seed, commit)
    seconds = time.perf_counter() - t0
    out = {"workload": "dream", "engine": "reverie" if engine else "transformers", "passages": passages,
           "driver": "lockstep" if lockstep or not engine else "stream",
           "items": len(items), "items_per_batch": items_per_batch, "batch_size": batch_size,
           "generated_tokens": generated, "seconds": round(seconds, 1), "tokens_per_s": round(generated / seconds, 1)}
    if backend.engine is not None:
        out["engine_stats"] = dict(backend.engine.stats)
    return out


def fixed_workload(loaded, batch_size: int, new_tokens: int, engine: bool) -> dict:
    from reverie.models import SamplingParams, TransformersBackend

    passage = ("The Victoria and Albert Museum in London holds over 2.27 million objects. It was founded in 1852 "
               "and named after Queen Victoria and Prince Albert. ") * 4
    prompts = [[{"role": "user", "content": f"{passage}\n\nWrite a short story about it, number {i}."}]
               for i in range(batch_size)]
    backend = TransformersBackend(loaded, batch_size=batch_size, engine=engine)
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=new_tokens, seed=1)
    t0 = time.perf_counter()
    gens = backend.generate(prompts, params)
    seconds = time.perf_counter() - t0
    n = sum(g.n_tokens for g in gens)
    return {"workload": "fixed", "engine": "reverie" if engine else "transformers", "batch_size": batch_size,
            "new_tokens": new_tokens, "generated_tokens": n, "seconds": round(seconds, 1),
            "tokens_per_s": round(n / seconds, 1)}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="squad_dev_200.json (the dream workload)")
    ap.add_argument("--passages", type=int, default=8)
    ap.add_argument("--budget", type=int, default=500, help="kept-dream tokens planned per passage")
    ap.add_argument("--items-per-batch", type=int, default=None, help="default: the dream config's")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the dream config's")
    ap.add_argument("--new-tokens", type=int, default=64, help="the fixed workload's answer length")
    ap.add_argument("--engines", default="reverie,transformers")
    ap.add_argument("--lockstep", action="store_true",
                    help="drive the dream workload in lockstep steps even with reverie's engine")
    ap.add_argument("--workloads", default="dream,fixed")
    ap.add_argument("--model", default="default")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write the rows here, as a JSON list")
    args = common.parse(ap, argv, lambda d: {"data": d.squad, "passages": 2, "budget": 40, "model": str(d.model),
                                             "items_per_batch": 8, "batch_size": 8, "new_tokens": 8})

    from reverie.config import DreamConfig
    from reverie.models import load_model

    cfg = DreamConfig()
    ipb = args.items_per_batch or cfg.items_per_batch
    bs = args.batch_size or cfg.batch_size
    home = args.home or common.scratch_home()
    loaded = load_model(args.model, home / "models", dtype=args.dtype)
    rows = []
    for workload in args.workloads.split(","):
        for name in args.engines.split(","):
            engine = name == "reverie"
            if workload == "dream":
                if args.data is None:
                    ap.error("the dream workload needs --data squad_dev_200.json")
                row = dream_workload(loaded, args.data, args.passages, args.budget, ipb, bs, engine, args.seed,
                                     args.lockstep)
            else:
                row = fixed_workload(loaded, bs, args.new_tokens, engine)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        common.write_json(args.out, rows, echo=False)
    return rows


if __name__ == "__main__":
    main()
