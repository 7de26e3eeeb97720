"""Benchmark: dream sets vs the naive baseline on SQuAD passages (issue 4's "done when").

    python bench/dream_squad.py --data ../shared/data/squad_dev_200.json --passages 20 --budget 500

Each of the first N passages is read as one document (one chunk). `reverie dream` runs with a
budget of BUDGET tokens per passage (all generators, default settings, the default model unless
--model) and samples the naive baseline to the same budget. Per passage, both sets are cut to the
same number of texts (drawn at random from the larger) and compared: all-MiniLM-L6-v2 Vendi
score, distinct-2 and compression ratio, averaged over passages (reverie.meter.compare_per_chunk,
the comparison `reverie dream` ends with). Grounding pass rates are over every generated qa answer
and fact line, before the gate. Prints a JSON summary (also written to --out) and, with
--markdown, the BENCHMARKS.md lines. `--smoke`: seconds on the tiny model (bench/common.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import common  # bench/ is on the path: run as a script


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="squad_dev_200.json")
    ap.add_argument("--passages", type=int, default=20)
    ap.add_argument("--budget", type=int, default=500, help="tokens of kept dreams per passage")
    ap.add_argument("--model", default="default")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--home", type=Path, default=None, help="reverie home (default: a temporary one)")
    ap.add_argument("--embedder", default="minilm", help="the Vendi embeddings (reverie.meter.embed.make_embedder)")
    ap.add_argument("--out", type=Path, help="write the JSON summary here")
    ap.add_argument("--markdown", action="store_true")
    args = common.parse(ap, argv, lambda d: {"data": d.squad, "passages": 3, "budget": 150, "model": str(d.model),
                                             "embedder": "tfidf"})

    from reverie.app import Reverie
    from reverie.config import load_settings
    from reverie.dream.base import Candidate
    from reverie.dream.gate import Gate, answer_in_source
    from reverie.meter.embed import make_embedder
    from reverie.meter.sets import compare_per_chunk
    from reverie.models.backend import SamplingParams
    from reverie.store.documents import ChunkSpan

    passages = json.loads(args.data.read_text())[: args.passages]
    home = args.home or common.scratch_home()
    settings = load_settings(home=home, overrides={"model": {"path": args.model}, "generation": {"seed": args.seed}})
    rv = Reverie(settings, log=common.log)
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
    from reverie.dream.run import by_chunk, within_budget

    dreams = by_chunk(store.run_dreams(result.run_id, status="kept"), lambda r: json.loads(r["source_chunk_ids"])[0])
    base = by_chunk(within_budget(store.run_baselines(result.run_id), args.budget, lambda r: r["chunk_id"],
                                  lambda r: r["n_tokens"]), lambda r: r["chunk_id"])
    cmp = compare_per_chunk({"dreams": dreams, "baseline": base}, embedder=make_embedder(args.embedder), seed=args.seed)

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

    nan = float("nan")
    d, b = (cmp["sets"][side] if cmp else {} for side in ("dreams", "baseline"))
    summary = {
        "passages": len(passages), "compared_passages": cmp.get("chunks", 0), "budget_per_passage": args.budget,
        "texts_per_passage": cmp.get("texts_per_chunk", nan),
        "vendi_dreams": d.get("vendi", nan), "vendi_baseline": b.get("vendi", nan),
        "vendi_ratio_mean": cmp.get("vendi_ratio", nan),
        "distinct2_dreams": d.get("distinct_2", nan), "distinct2_baseline": b.get("distinct_2", nan),
        "compression_dreams": d.get("compression_ratio", nan), "compression_baseline": b.get("compression_ratio", nan),
        "qa_grounded": qa_ok / qa_n if qa_n else float("nan"), "qa_n": qa_n,
        "facts_grounded": fact_ok / fact_n if fact_n else float("nan"), "facts_n": fact_n,
        "kept": result.kept, "dropped": result.dropped, "drop_reasons": result.drop_reasons,
        "generated_tokens": result.generated_tokens, "tokens_per_s": result.tokens_per_second,
        "wall_s": wall,
    }
    common.write_json(args.out, summary)
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
