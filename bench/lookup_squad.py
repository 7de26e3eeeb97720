"""Benchmark: answering with lookup on SQuAD passages read into a fresh home (issue 21).

    python bench/lookup_squad.py --data ../shared/data/squad_dev_200.json --passages 50 --threads 1
    python bench/lookup_squad.py --smoke          # seconds: the tiny model, made-up passages (bench/common.py)

Reads the first `--passages` passages (one Markdown document each, `# title` then the passage)
into a fresh home with the default model (or --model), and asks their questions three ways, as
`reverie quiz --lookup` does (reverie.quiz.run): closed book, with lookup from the store (the
relevant chunks hybrid search recalls, in front of the question, as chat puts them), and with the
gold passage alone in front of it in the same format. Reports accuracy (answer contained) and token
F1 of each, retrieval recall@k of the gold passage (k = wake.recall_chunks), and lookup / gold.
`--adapter FOLDER` (a kept night's adapter, e.g. from `bench/sleep_seal.py --home H`: H/adapters/night-1)
measures it too, beside the base model: does what sleep learned add on top of lookup?

Threshold calibration (wake.min_similarity): the best cosine similarity found for each question
of the passages read, and for each question of `--unread` passages that were not read; reports
both distributions' quantiles and the threshold that best tells them apart (the most questions
on the right side), next to the share of each side the embedder's calibrated value gets right.

The data is read where it lies (never copied into the repository). Writes JSON (stdout, --out).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import common  # bench/ is on the path: run as a script
import numpy as np


def use_adapter(rv, folder: Path) -> None:
    """Register a saved adapter in the fresh home and put it in use, as `reverie use` would."""
    from reverie.models import model_identity
    from reverie.models.lora import check_dir

    base = model_identity(rv.model_path)
    check_dir(folder, base)  # refused when it was trained for another base model
    rv.store.add_adapter("kept", str(folder.resolve()), base, None, "kept", {"from": str(folder)})
    rv.store.set_state("adapter", "kept")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="squad_dev_200.json (a list of passages with questions)")
    ap.add_argument("--passages", type=int, default=50, help="passages read (their questions are asked)")
    ap.add_argument("--unread", type=int, default=50, help="passages after those, not read: their questions calibrate")
    ap.add_argument("--model", default=None, help="model path (default: the default model)")
    ap.add_argument("--k", type=int, default=None, help="chunks looked up per question (default wake.recall_chunks)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--max-questions", type=int, default=100000)
    ap.add_argument("--adapter", type=Path, default=None,
                    help="a kept adapter's folder (e.g. a bench/sleep_seal.py night's) measured beside the base model")
    ap.add_argument("--out", type=Path, default=Path("bench/out/lookup_squad.json"))
    args = common.parse(ap, argv, lambda d: {"data": d.squad, "passages": 3, "unread": 1, "out": None})
    import torch

    from reverie.app import Reverie
    from reverie.config import load_settings
    from reverie.quiz.run import quiz_models

    if args.threads:
        torch.set_num_threads(args.threads)
    data = json.loads(args.data.read_text(encoding="utf-8"))
    read, unread = data[: args.passages], data[args.passages : args.passages + args.unread]
    home = common.scratch_home("reverie-lookup-squad-")
    docs, _ = common.seal_home(home, read)
    quiz = home / "lookup-quiz.jsonl"
    quiz.write_text("".join(json.dumps({**q, "context": p["context"], "title": p["title"]}) + "\n"
                            for p in read for q in p["questions"]), encoding="utf-8")
    overrides = {"quiz": {"probe_prompts": [], "max_questions": args.max_questions, "general_text": None},
                 "model": {k: v for k, v in {"path": args.model, "threads": args.threads}.items() if v is not None},
                 "wake": {} if args.k is None else {"recall_chunks": args.k}}
    rv = Reverie.from_settings(load_settings(home=home, overrides=overrides), log=common.log)
    progress = common.throttled_progress(10.0)
    t0 = time.perf_counter()
    rv.read([docs], progress=progress)
    read_s = time.perf_counter() - t0
    if args.adapter:
        use_adapter(rv, args.adapter)

    # Calibration: the best similarity for questions of passages read and not read.
    lookup = rv.lookup

    def best(questions: list[str]) -> list[float]:
        out = []
        for q in questions:
            hits = rv.store.nearest(lookup.model, lookup.embed_query(q), 1) if lookup.embedder else []
            out.append(hits[0][1] if hits else float("nan"))
        return out

    inside = best([q["question"] for p in read for q in p["questions"]])
    outside = best([q["question"] for p in unread for q in p["questions"]])
    calibration = calibrate(inside, outside, lookup.threshold)

    t0 = time.perf_counter()
    [base, *rest] = quiz_models(rv.store, rv.settings, rv.load_base, quiz_file=quiz, progress=progress,
                                 lookup=rv.lookup, log=rv.log)
    quiz_s = time.perf_counter() - t0
    rows = {}
    for r in [base, *rest]:
        rows[r.label] = {
            "questions": r.n_questions, "closed_book": r.accuracy, "closed_book_f1": r.f1,
            "lookup": r.lookup_accuracy, "lookup_f1": r.lookup_f1, "gold": r.gold_accuracy, "gold_f1": r.gold_f1,
            "lookup_over_gold": None if not r.gold_accuracy else round(r.lookup_accuracy / r.gold_accuracy, 3),
            "seconds": {k: round(v, 1) for k, v in r.seconds.items()},
        }
    common.write_json(args.out, {
        "data": str(args.data), "passages": len(read), "unread_passages": len(unread), "smoke": args.smoke,
        "model": rv.settings.model.path, "identity": rv.loaded.identity, "threads": torch.get_num_threads(),
        "embedder": lookup.model, "k": base.lookup_k, "recall_at_k": base.recall_at_k,
        "recall_at": base.recall_at, "lookup_relevant": base.lookup_relevant,
        "read_s": round(read_s, 1), "quiz_s": round(quiz_s, 1), "models": rows, "calibration": calibration,
    })
    rv.close()


def calibrate(inside: list[float], outside: list[float], threshold: float | None) -> dict:
    """Quantiles of both sides' best similarity, the threshold telling them apart best, and how
    the configured one does."""
    a, b = np.asarray(inside, dtype=float), np.asarray(outside, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if not len(a) or not len(b):
        return {}
    q = lambda x: {f"p{p}": round(float(np.percentile(x, p)), 3) for p in (5, 25, 50, 75, 95)}  # noqa: E731
    grid = np.unique(np.concatenate([a, b]))
    right = [((a >= t).sum() + (b < t).sum()) / (len(a) + len(b)) for t in grid]
    t_best = float(grid[int(np.argmax(right))])
    out = {"read": q(a), "not_read": q(b), "best_threshold": round(t_best, 3),
           "best_share_right": round(float(max(right)), 3)}
    if threshold is not None:
        out.update(threshold=threshold, read_relevant=round(float((a >= threshold).mean()), 3),
                   not_read_irrelevant=round(float((b < threshold).mean()), 3))
    return out


if __name__ == "__main__":
    main()
