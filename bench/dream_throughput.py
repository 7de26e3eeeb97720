"""Benchmark: generated tokens per second of the transformers backend, summed over the batch.

    python bench/dream_throughput.py --batch-sizes 8,32,64 --new-tokens 64

Prompts are dream-like (a ~150-token passage, then a short instruction); sequences stop at EOS or
after `--new-tokens`, and only generated tokens are counted. Default model, float32, CPU.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", default="8,32,64")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--model", default="default")
    ap.add_argument("--home", type=Path, default=None)
    args = ap.parse_args(argv)

    from reverie.models import SamplingParams, TransformersBackend, load_model

    home = args.home or Path(tempfile.mkdtemp(prefix="reverie-bench-"))
    loaded = load_model(args.model, home / "models")
    passage = ("The Victoria and Albert Museum in London holds over 2.27 million objects. It was founded in 1852 "
               "and named after Queen Victoria and Prince Albert. ") * 4
    rows = []
    for bs in (int(x) for x in args.batch_sizes.split(",")):
        prompts = [[{"role": "user", "content": f"{passage}\n\nWrite a short story about it, number {i}."}]
                   for i in range(bs)]
        backend = TransformersBackend(loaded, batch_size=bs)
        params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=args.new_tokens, seed=1)
        t0 = time.perf_counter()
        gens = backend.generate(prompts, params)
        seconds = time.perf_counter() - t0
        n = sum(g.n_tokens for g in gens)
        rows.append({"batch_size": bs, "generated_tokens": n, "seconds": round(seconds, 2),
                     "tokens_per_s": round(n / seconds, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    main()
