"""Diagnostic: the gate's paired likelihood tests, asked again of a home's finished nights.

    python bench/diag/regate.py --home /tmp/nights-r/reverie --markdown

For every finished night of the home's owner, the candidate adapter (at the strength the gate
chose) against the adapter in use before it (the last kept one, or the base model): per
question, the gold answer's mean log-probability a token, closed book
(reverie.quiz.run.gold_logp), on the night's held-out questions (or the home's quiz.jsonl, as
bench/sleep_seal.py leaves one) and on earlier nights' held-out questions; the one-sided
signed-rank tests of reverie.sleep.verdict (learned: tonight's higher; retained: earlier ones
not lower) at `--significance`, beside the verdict stored with the night. It is how a gate
that counted right answers was compared with the one that tests likelihoods (docs/LOG.md,
2026-12-01, fourth session), and how a stored home can be read again under another level.

Prints a JSON object (also written to --out). `--smoke`: seconds, on a tiny-model night
(bench/common.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for common
import common  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True, type=Path, help="a reverie home with finished nights")
    ap.add_argument("--significance", type=float, default=0.05, help="the tests' level (sleep.significance)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--markdown", action="store_true", help="also print a table")
    args = common.parse(ap, argv, lambda d: {"home": common.smoke_night_home()})
    if not (args.home / "reverie.db").is_file():
        sys.exit(f"error: {args.home} is not a reverie home (no reverie.db)")

    from reverie.app import Reverie
    from reverie.config import load_settings
    from reverie.errors import ReverieError
    from reverie.models import lora
    from reverie.quiz.questions import held_out_questions, load_questions
    from reverie.quiz.run import gold_logp
    from reverie.sleep.verdict import Paired

    rv = Reverie.from_settings(load_settings(home=args.home))
    store = rv.store
    quiz_file = args.home / "quiz.jsonl"
    fixed = load_questions(quiz_file) if quiz_file.is_file() else None
    loaded = rv.load_base()
    adapters = {r["night_id"]: r for r in store.adapters() if r["night_id"] is not None and r["user_id"] is None}
    nights = [n for n in store.nights() if n["finished_at"] and n["user_id"] is None and n["id"] in adapters]
    try:
        for n in nights:
            loaded = lora.attach(loaded, adapters[n["id"]])
    except ReverieError as exc:
        sys.exit(f"error: {exc}")

    def logp(name: str | None, factor: float, questions) -> list[float]:
        scaled = lora.strength(loaded.model, name, factor) if name else contextlib.nullcontext()
        with lora.activate(loaded.model, name), scaled:
            return gold_logp(loaded, questions).tolist()

    rows, in_use = [], (None, 1.0)  # (adapter name, factor) the user had before each night
    for n in nights:
        metrics = json.loads(n["metrics"])
        row = adapters[n["id"]]
        chosen = (metrics["figures"].get("strength") or {}).get("chosen") or 1.0
        # A kept adapter is saved shrunk to its strength; a rejected one is saved as trained.
        factor = chosen / float(lora.read_meta(row["path"]).get("strength", 1.0))
        stored = {c["name"]: c["passed"] for c in metrics["checks"]}
        # As many questions as the night asked (its own quiz settings, e.g. bench/sleep_seal.py's whole quiz).
        cap = json.loads(n["config"]).get("settings", {}).get("quiz", {}).get("max_questions",
                                                                              rv.settings.quiz.max_questions)
        out = {"night": n["id"], "status": n["status"], "strength": chosen, "stored_learned": stored.get("learned"),
               "stored_retained": stored.get("retained")}
        for what, questions, test in (("new", (fixed or held_out_questions(store, n["id"]))[:cap], Paired.learned),
                                      ("earlier", held_out_questions(store, before=n["id"])[-cap:], Paired.forgot)):
            if not questions or (what == "earlier" and fixed):
                continue
            t = test(logp(*in_use, questions), logp(row["name"], factor, questions))
            out[what] = {"n": len(questions), "before": t.before, "after": t.after, "up": t.up, "down": t.down,
                         "p": t.p}
        out["learned"] = "new" in out and out["new"]["p"] < args.significance
        out["retained"] = "earlier" not in out or out["earlier"]["p"] >= args.significance
        rows.append(out)
        print(json.dumps(out), file=sys.stderr)
        if n["status"] == "kept":
            in_use = (row["name"], 1.0)  # saved at its strength: as the next night's reference saw it
    result = {"home": str(args.home), "significance": args.significance, "nights": rows}
    common.write_json(args.out, result)
    if args.markdown:
        print(markdown(result))
    return result


def markdown(result: dict) -> str:
    lines = ["| night | verdict then | strength | tonight's answers: log-prob, higher / lower, p | learned (then -> now) "
             "| earlier answers: log-prob, higher / lower, p | retained (then -> now) |", "|---|---|---|---|---|---|---|"]
    yes = {True: "yes", False: "no", None: "-"}

    def cell(t):
        return "-" if t is None else (f"{t['before']:.2f} -> {t['after']:.2f}, {t['up']} / {t['down']} of {t['n']}, "
                                      f"{t['p']:.2g}")

    for r in result["nights"]:
        lines.append(f"| {r['night']} | {r['status']} | {r['strength']:g} | {cell(r.get('new'))} | "
                     f"{yes[r['stored_learned']]} -> {yes[r['learned']]} | {cell(r.get('earlier'))} | "
                     f"{yes[r['stored_retained']]} -> {yes[r['retained']]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
