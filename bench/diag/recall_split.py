"""Diagnostic: is a night's adapter short of memorising, or short of transferring?

    python bench/diag/recall_split.py --home /tmp/seal50r --adapter night-1 --strengths 1.0,0.8

The SEAL quiz asks SQuAD's questions; a night trains on cloze pairs cut from the same passages.
A wrong quiz answer has two possible causes: the fact never stuck (the model cannot say it
even when asked the very question it trained on), or it stuck but only in the training
wording (it answers the cloze pair, not SQuAD's rephrased question). This asks both, with the
night's quiz settings (greedy, `quiz.max_new_tokens`, closed book):

- train recall: the share of the pairs the adapter's night trained on (`night_dreams` role 'train',
  "Q: ... / A: ...") whose answer the model now says, asked word for word;
- quiz accuracy, split by coverage: questions whose normalised gold answer is the answer of a
  trained pair ("covered") and those whose answer is not;
- transfer: among covered questions whose answer the model gives to some trained pair (matched by
  normalised answer text), the share it also answers in SQuAD's wording.

For the base model (strength 0) and each `--strengths` entry, relative to the adapter's full
update (a kept adapter is saved shrunk to the gate's strength; 1.0 undoes that). Prints a JSON
object (also written to --out). The quiz file defaults to the home's quiz.jsonl, which
bench/sleep_seal.py writes. `--smoke`: seconds, on a tiny-model night (bench/common.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for common
import common  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True, type=Path, help="a reverie home with the night's adapter")
    ap.add_argument("--adapter", required=True, help="the adapter's name, e.g. night-1")
    ap.add_argument("--strengths", default="1.0", help="comma-separated, of the adapter's full update")
    ap.add_argument("--quiz", type=Path, help="JSONL of question/answer (default: HOME/quiz.jsonl)")
    ap.add_argument("--pairs", type=int, default=0, help="ask a random sample of this many trained pairs (0: all)")
    ap.add_argument("--out", type=Path)
    args = common.parse(ap, argv, lambda d: {"home": common.smoke_night_home(), "adapter": "night-1", "pairs": 4})
    if not (args.home / "reverie.db").is_file():
        sys.exit(f"error: {args.home} is not a reverie home (no reverie.db)")
    try:
        strengths = [float(s) for s in args.strengths.split(",")]
    except ValueError:
        sys.exit(f"error: --strengths takes numbers separated by commas, not {args.strengths!r}")

    from reverie.answers import contained, normalize
    from reverie.app import Reverie
    from reverie.config import load_settings
    from reverie.dream.base import parse_qa
    from reverie.errors import ReverieError
    from reverie.models import lora
    from reverie.quiz.questions import Question, load_questions
    from reverie.quiz.run import Measure
    from reverie.sleep import records

    rv = Reverie.from_settings(load_settings(home=args.home), log=common.log)
    row = rv.store.adapter(args.adapter)
    if row is None:
        sys.exit(f"error: no adapter {args.adapter} in {args.home}")
    try:
        questions = load_questions(args.quiz or args.home / "quiz.jsonl")
    except ReverieError as exc:
        sys.exit(f"error: {exc}")
    dreams = records.night_dreams(rv.store, row["night_id"], ("train",)) if row["night_id"] else []
    trained = [pair for d in dreams for pair in parse_qa(d["text"])]
    if not trained:
        sys.exit(f"error: no question-answer dreams were trained on in {args.home}")
    if args.pairs and args.pairs < len(trained):
        trained = random.Random(0).sample(trained, args.pairs)
    targets = {normalize(a) for _, a in trained}
    golds = [[q.answer] if isinstance(q.answer, str) else list(q.answer) for q in questions]
    covered = [any(normalize(g) in targets for g in gold) for gold in golds]

    loaded = lora.attach(rv.load_base(), row)
    baked = float(lora.read_meta(row["path"]).get("strength", 1.0))
    # The gate's own quiz (reverie.quiz.run.Measure: same prompt, greedy, quiz.max_new_tokens), for
    # every pair and question, not just quiz.max_questions. Measure builds a backend per call: the
    # engine's prefix cache holds keys and values of the weights of the moment, so a backend must
    # not outlive a strength change (reverie.models.engine).
    cfg = rv.settings.quiz.model_copy(update={"max_questions": max(len(trained), len(questions))})
    ask_pairs = Measure([Question(q, a) for q, a in trained], cfg, rv.settings.meter)
    ask_quiz = Measure(questions, cfg, rv.settings.meter)

    def share(flags: list[bool]) -> float | None:
        return round(sum(flags) / len(flags), 4) if flags else None

    rows = []
    for s in [0.0, *strengths]:
        print(f"strength {s}: asking {len(trained)} trained pairs and {len(questions)} questions", file=sys.stderr)
        scaled = lora.strength(loaded.model, args.adapter, s / baked) if s else contextlib.nullcontext()
        with lora.activate(loaded.model, args.adapter if s else None), scaled:
            said_pairs = ask_pairs(loaded, "pairs", rest=False).answers
            said_quiz = ask_quiz(loaded, "quiz", rest=False).answers
        pair_ok = [contained(out, a) for out, (_, a) in zip(said_pairs, trained, strict=True)]
        known = {normalize(a) for ok, (_, a) in zip(pair_ok, trained, strict=True) if ok}
        quiz_ok = [contained(out, gold) for out, gold in zip(said_quiz, golds, strict=True)]
        recalled = [any(normalize(g) in known for g in gold) for gold in golds]
        rows.append({
            "strength": s,
            "train_recall": share(pair_ok),
            "quiz_accuracy": share(quiz_ok),
            "quiz_covered": share([ok for ok, c in zip(quiz_ok, covered, strict=True) if c]),
            "quiz_not_covered": share([ok for ok, c in zip(quiz_ok, covered, strict=True) if not c]),
            "covered_and_recalled": sum(recalled),
            "transfer": share([ok for ok, r in zip(quiz_ok, recalled, strict=True) if r]),
        })
        print(json.dumps(rows[-1]), file=sys.stderr)
    result = {"home": str(args.home), "adapter": args.adapter, "trained_pairs": len(trained),
              "questions": len(questions), "covered": sum(covered), "rows": rows}
    common.write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
