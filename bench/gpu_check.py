"""Benchmark: one command on a GPU (or any machine): the device, dream generation and training tokens/s
of a short night, next to the 2-core CPU's figures in BENCHMARKS.md.

    python bench/gpu_check.py --data ../shared/data/squad_dev_200.json --out bench/out/gpu_check.json
    python bench/gpu_check.py --data squad_dev_200.json --device cuda:1 --dtype float32   # another GPU, exact

1. The device: torch's CUDA device (name, memory, bf16 support), or "no GPU: cpu" (it still runs);
   the model runs where `model.device` and `model.dtype` resolve (auto: the GPU, bfloat16 on one
   that computes it; --device and --dtype set them).
2. A fresh home reads the first --passages SQuAD passages (one document each, as
   bench/sleep_seal.py reads them) and loads the base model (`model.path`: the default model).
3. Generation, fixed batch: --batch-size copies of the first passage with an instruction,
   --new-tokens each, through reverie's engine (bench/dream_throughput.py's fixed workload; the
   CPU's 345.6 tokens/s is at 128 x 128).
4. Generation, the real mix: the read chunks planned into work items for all eight dream
   generators (--budget tokens a passage) and driven as `reverie dream` drives them, gate left
   out (bench/dream_throughput.py's dream workload; the CPU's ~140 tokens/s).
5. One night at the settings as shipped (`Reverie.sleep`, --budget tokens a passage), quizzed on
   the passages' SQuAD questions: its training tokens/s (the CPU's 279-388) and its verdict.

Generated tokens count without EOS; times are wall times, after a short warm-up generation.
Prints a table to stderr and the JSON to stdout (also written to --out). `--smoke`: seconds on
the tiny model with made-up passages (bench/common.py).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import common  # bench/ is on the path: run as a script
from common import protocol_overrides, throttled_progress

# BENCHMARKS.md, the 2-core development CPU, SmolLM2-135M-Instruct in float32: tokens/s, and at what
CPU = {"fixed": {"tokens_per_s": 345.6, "measured": "128 copies of one prompt, 128 new tokens"},
       "dream_mix": {"tokens_per_s": 140.8, "measured": "16 passages, budget 500 a passage (136-141 over runs)"},
       "training": {"tokens_per_s": [279.0, 388.0], "measured": "bench/sleep_speed.py at rank 32 to a SEAL night"}}


def device_report(settings) -> dict:
    """Where the model runs (reverie.models.loading's resolution of model.device and model.dtype)."""
    import torch

    from reverie.models.loading import resolve_device, resolve_dtype

    device = resolve_device(settings.model.device)
    out = {"torch": torch.__version__, "device": device, "dtype": resolve_dtype(settings.model.dtype, device)}
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        p = torch.cuda.get_device_properties(index)
        out |= {"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1), "capability": f"{p.major}.{p.minor}",
                "bf16": torch.cuda.is_bf16_supported(), "cuda": torch.version.cuda,
                "gpus": torch.cuda.device_count()}
    else:
        out["name"] = f"no GPU: {device}"
    return out


def fixed_generation(loaded, passage: str, batch_size: int, new_tokens: int) -> dict:
    from reverie.models import SamplingParams, TransformersBackend

    backend = TransformersBackend(loaded, batch_size=batch_size)
    prompts = [[{"role": "user", "content": f"{passage}\n\nWrite a short story about it, number {i}."}]
               for i in range(batch_size)]
    backend.generate(prompts[:2], SamplingParams(max_new_tokens=4, seed=0))  # warm-up: kernels, caches
    t0 = time.perf_counter()
    gens = backend.generate(prompts, SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=new_tokens, seed=1))
    seconds = time.perf_counter() - t0
    n = sum(g.n_tokens for g in gens)
    return {"batch_size": batch_size, "new_tokens": new_tokens, "generated_tokens": n, "seconds": round(seconds, 2),
            "tokens_per_s": round(n / seconds, 1), "engine": backend.engine is not None}


def dream_mix(loaded, chunks, budget: int, cfg, seed: int = 1) -> dict:
    from reverie.dream.generators import GENERATORS
    from reverie.dream.run import plan, stream
    from reverie.models import TransformersBackend

    items = plan(chunks, list(GENERATORS), budget, cfg.overgenerate, seed)
    backend = TransformersBackend(loaded, batch_size=cfg.batch_size)
    step = cfg.items_per_batch
    generated = [0]
    t0 = time.perf_counter()
    stream([(b, items[i : i + step]) for b, i in enumerate(range(0, len(items), step))], backend, seed,
           lambda b, per_item, n: generated.__setitem__(0, generated[0] + n))
    seconds = time.perf_counter() - t0
    return {"items": len(items), "batch_size": cfg.batch_size, "generated_tokens": generated[0],
            "seconds": round(seconds, 2), "tokens_per_s": round(generated[0] / seconds, 1)}


def table(out: dict) -> str:
    d = out["device"]
    head = d["name"] + (f", {d['memory_gib']} GiB, bf16 {'yes' if d['bf16'] else 'no'}" if "memory_gib" in d else "")
    lines = [f"device: {head} (model on {d['device']}, {d['dtype']})",
             f"{'tokens/s':<44} {'here':>10} {'2-core CPU':>12}"]
    fixed = out["generation"]["fixed"]
    rows = ((f"dream generation, fixed batch {fixed['batch_size']} x {fixed['new_tokens']}", "fixed", fixed),
            ("dream generation, the eight-generator mix", "dream_mix", out["generation"]["dream_mix"]),
            ("LoRA training, the night's", "training", out["training"]))
    for label, key, here in rows:
        cpu = CPU[key]["tokens_per_s"]
        cpu = f"{cpu[0]:.0f}-{cpu[1]:.0f}" if isinstance(cpu, list) else f"{cpu:.1f}"
        lines.append(f"{label:<44} {here['tokens_per_s']:>10.1f} {cpu:>12}")
    lines.append(f"night {out['night']['id']}: {out['night']['status']}, {out['night']['timings']['total']:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="squad_dev_200.json (SEAL's split)")
    ap.add_argument("--passages", type=int, default=5)
    ap.add_argument("--budget", type=int, default=500, help="dream tokens per passage (the mix and the night)")
    ap.add_argument("--batch-size", type=int, default=128, help="the fixed batch's rows")
    ap.add_argument("--new-tokens", type=int, default=128, help="the fixed batch's answer length")
    ap.add_argument("--device", help="model.device (default: the config's, auto)")
    ap.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], help="model.dtype (default: the config's)")
    ap.add_argument("--wikitext", type=Path, help="general text for the night's perplexity (default: its own)")
    ap.add_argument("--home", type=Path, help="reverie home (default: a fresh temporary one)")
    ap.add_argument("--out", type=Path, help="write the JSON here")
    args = common.parse(ap, argv, lambda d: {"data": d.squad, "passages": 2, "budget": 40, "batch_size": 8,
                                             "new_tokens": 8, "wikitext": d.wikitext})

    from reverie.app import Reverie
    from reverie.config import load_settings
    from reverie.dream.run import resolve_chunks

    home = args.home or common.scratch_home("reverie-gpu-")
    passages = json.loads(args.data.read_text(encoding="utf-8"))[: args.passages]
    docs, quiz = common.seal_home(home, passages)
    overrides = protocol_overrides(args.wikitext)
    overrides["model"] = {k: v for k, v in (("device", args.device), ("dtype", args.dtype)) if v}
    settings = load_settings(home=home, overrides=overrides)
    out = {"device": device_report(settings), "passages": len(passages), "budget_per_passage": args.budget,
           "load_average": os.getloadavg(), "cpu_figures": CPU}
    common.log(f"device: {out['device']['name']}")
    rv = Reverie.from_settings(settings, log=common.log)
    rv.read([docs])
    loaded = rv.load_base()
    out["model"] = loaded.identity
    out["generation"] = {"fixed": fixed_generation(loaded, passages[0]["context"], args.batch_size, args.new_tokens),
                         "dream_mix": dream_mix(loaded, resolve_chunks(rv.store, "all"), args.budget * len(passages),
                                                settings.dream)}
    del loaded  # the night loads its own copies
    result = rv.sleep(budget=args.budget * len(passages), quiz_file=quiz, progress=throttled_progress(30))
    out["training"] = {"tokens": result.tokens["trained"], "tokens_per_s": round(result.tokens["tokens_per_second"], 1),
                       "seconds": round(result.timings["train"], 1)}
    out["night"] = {"id": result.night_id, "status": result.status, "timings": result.timings, "tokens": result.tokens,
                    "accuracy": {k: result.figures[k].get("accuracy") for k in ("base", "candidate")}}
    rv.close()
    common.log(table(out))
    common.write_json(args.out, out)
    return out


if __name__ == "__main__":
    main()
