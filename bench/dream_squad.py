"""Benchmark: dream sets vs the naive baseline on SQuAD passages (issue 4's "done when").

    python bench/dream_squad.py --data ../shared/data/squad_dev_200.json --passages 20 --budget 500

Each of the first N passages is read as one document (one chunk). `reverie dream` runs with a
budget of BUDGET tokens per passage (all generators, default settings, the default model unless
--model) and samples the naive baseline to the same budget. Per passage, both sets are cut to the
same number of texts (drawn at random from the larger) and compared: all-MiniLM-L6-v2 Vendi
score, distinct-2 and compression ratio (reverie.meter), averaged over passages. Grounding pass
rates are over every generated qa answer and fact line, before the gate. Prints a JSON summary
and, with --markdown, the BENCHMARKS.md lines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="squad_dev_200.json")
    ap.add_argument("--passages", type=int, default=20)
    ap.add_argument("--budget", type=int, default=500, help="tokens of kept dreams per passage")
    ap.add_argument("--model", default="default")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--home", type=Path, default=None, help="reverie home (default: a temporary one)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)

    from reverie.app import Reverie
    from reverie.config import load_settings
    from reverie.dream.base import Candidate
    from reverie.dream.gate import Gate, answer_in_source
    from reverie.meter.embed import make_embedder
    from reverie.meter.lexical import compression_ratio, distinct_n
    from reverie.meter.semantic import vendi_score
    from reverie.models.backend import SamplingParams
    from reverie.store.documents import ChunkSpan

    passages = json.loads(args.data.read_text())[: args.passages]
    home = args.home or Path(tempfile.mkdtemp(prefix="reverie-bench-"))
    settings = load_settings(home=home, overrides={"model": {"path": args.model}, "generation": {"seed": args.seed}})
    rv = Reverie(settings, log=lambda m: print(m, file=sys.stderr))
    for i, p in enumerate(passages):
        text = p["context"]
        n = len(rv.tokenizer(text)["input_ids"])
        rv.store.put_document(source=f"squad/{i}", title=p["title"], kind="txt",
                              sha256=hashlib.sha256(text.encode()).hexdigest(), text=text,
                              spans=[ChunkSpan(0, len(text), n)])
    t0 = time.perf_counter()
    result = rv.dream(budget=args.budget * len(passages), docs="all")
    wall = time.perf_counter() - t0

    store = rv.store
    chunk_text = {c["id"]: c["text"] for c in store.chunks()}
    dreams = defaultdict(list)
    for r in store.run_dreams(result.run_id, status="kept"):
        dreams[json.loads(r["source_chunk_ids"])[0]].append(r["text"])
    from reverie.dream.run import within_budget

    base = defaultdict(list)
    for r in within_budget(store.run_baselines(result.run_id), args.budget, lambda r: r["chunk_id"],
                           lambda r: r["n_tokens"]):
        base[r["chunk_id"]].append(r["text"])

    emb = make_embedder("minilm")
    rng = random.Random(args.seed)
    rows = []
    for cid in chunk_text:
        d, b = dreams.get(cid, []), base.get(cid, [])
        n = min(len(d), len(b))
        if n < 2:
            continue
        d, b = rng.sample(d, n), rng.sample(b, n)
        rows.append({
            "n": n,
            "vendi_d": vendi_score(emb.encode(d)), "vendi_b": vendi_score(emb.encode(b)),
            "d2_d": distinct_n(d, 2), "d2_b": distinct_n(b, 2),
            "cr_d": compression_ratio(d), "cr_b": compression_ratio(b),
        })

    gate = Gate(rv.settings.dream)
    qa_ok = qa_n = fact_ok = fact_n = 0
    for r in store.run_dreams(result.run_id):
        m = json.loads(r["metrics"])
        src = "\n".join(chunk_text[c] for c in json.loads(r["source_chunk_ids"]))
        if r["generator"] == "qa":
            qa_n += 1
            qa_ok += answer_in_source(m["answer"], src)
        elif r["generator"] == "facts":
            cand = Candidate("facts", r["text"], [], "", SamplingParams(), 0, 0, m.get("entropy", {}))
            fact_n += 1
            fact_ok += gate.grounding(cand, src)[1] is None

    mean = lambda k: float(np.mean([r[k] for r in rows])) if rows else float("nan")  # noqa: E731
    summary = {
        "passages": len(passages), "compared_passages": len(rows), "budget_per_passage": args.budget,
        "texts_per_passage": mean("n"),
        "vendi_dreams": mean("vendi_d"), "vendi_baseline": mean("vendi_b"),
        "vendi_ratio_mean": float(np.mean([r["vendi_d"] / r["vendi_b"] for r in rows])) if rows else float("nan"),
        "distinct2_dreams": mean("d2_d"), "distinct2_baseline": mean("d2_b"),
        "compression_dreams": mean("cr_d"), "compression_baseline": mean("cr_b"),
        "qa_grounded": qa_ok / qa_n if qa_n else float("nan"), "qa_n": qa_n,
        "facts_grounded": fact_ok / fact_n if fact_n else float("nan"), "facts_n": fact_n,
        "kept": result.kept, "dropped": result.dropped, "drop_reasons": result.drop_reasons,
        "generated_tokens": result.generated_tokens, "tokens_per_s": result.tokens_per_second,
        "wall_s": wall,
    }
    print(json.dumps(summary, indent=1))
    if args.markdown:
        s = summary
        print(f"| per-passage Vendi (MiniLM) | {s['vendi_dreams']:.2f} | {s['vendi_baseline']:.2f} | "
              f"mean ratio {s['vendi_ratio_mean']:.2f}x |")
        print(f"| distinct-2 | {s['distinct2_dreams']:.3f} | {s['distinct2_baseline']:.3f} | |")
        print(f"| compression ratio | {s['compression_dreams']:.2f} | {s['compression_baseline']:.2f} | |")
        print(f"| QA answers grounded | {s['qa_grounded']:.0%} of {s['qa_n']} | | |")
        print(f"| fact lines grounded | {s['facts_grounded']:.0%} of {s['facts_n']} | | |")
    return summary


if __name__ == "__main__":
    main()
