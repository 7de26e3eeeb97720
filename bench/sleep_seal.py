"""Benchmark: the SEAL knowledge-incorporation protocol for `reverie sleep` (issue 18's "done when").

    python bench/sleep_seal.py --data ../shared/data/squad_dev_200.json --passages 50 \
        --wikitext ../shared/data/wikitext2_valid.txt --wildchat ../shared/data/wildchat_prompts_200.jsonl

1. A fresh home reads the first N passages (one Markdown document each, titled).
2. One night (`Reverie.sleep`) at the settings as shipped: dream (sleep.generators, BUDGET tokens
   per passage), the teacher's answers and targets (with `sleep.objective: distill`), train, quiz
   and gate. The quiz is the passages' SQuAD questions (closed book: the question alone), scored
   answer-contained and token F1; these questions and answers are never trained on (the dream
   generators write their own questions). Forgetting: perplexity on the first tokens of
   --wikitext. The gate's probe: its default open prompts.
3. Open book: the base model with each question's passage in its prompt, as the teacher reads it.
4. With --wildchat, what a user notices, base against the kept adapter: "Tell me a joke." x30 and
   the first 20 WildChat prompts x10 (answer length, Vendi).
5. Baseline (unless --no-baseline): plain LoRA (same settings, no regularisers) on the raw
   passages as plain text for the same number of training tokens as the night, quizzed the same
   way, at full strength and at the strongest of `sleep.strengths` within the gate's bounds (as
   the night's gate chooses). `--reuse-night` runs only this step on a --home whose night finished.

Prints a JSON summary (also written to --out) and, with --markdown, a BENCHMARKS.md table.
Settings can be changed with REVERIE_* environment variables: the previous recipe is
REVERIE_SLEEP__OBJECTIVE=sft REVERIE_SLEEP__EPOCHS=2.5. `--smoke`: seconds, 3 made-up passages on the
tiny model (bench/common.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import common  # bench/ is on the path: run as a script
from common import protocol_overrides, throttled_progress


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="squad_dev_200.json (SEAL's split)")
    ap.add_argument("--passages", type=int, default=50)
    ap.add_argument("--wikitext", type=Path, help="wikitext2_valid.txt for perplexity")
    ap.add_argument("--budget", type=int, default=400, help="dream tokens per passage")
    ap.add_argument("--home", type=Path, help="reverie home (default: a fresh temporary one)")
    ap.add_argument("--models", type=Path, help="reuse this folder of converted models")
    ap.add_argument("--threads", type=int, help="torch threads (1 is fastest on a loaded machine)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the raw-passage LoRA baseline")
    ap.add_argument("--arm", choices=("default", "as-dreamed"), default="default",
                    help="as-dreamed: distil each fact in its dreamed wording only (an ablation; no setting)")
    ap.add_argument("--wildchat", type=Path, help="wildchat_prompts_200.jsonl: open prompts asked of base and adapter")
    ap.add_argument("--reuse-night", action="store_true",
                    help="the --home already holds this protocol's finished night (a run stopped during the "
                    "baseline): report it and run only the baseline")
    ap.add_argument("--out", type=Path, help="write the JSON summary here")
    ap.add_argument("--markdown", action="store_true")
    args = common.parse(ap, argv, lambda d: {"data": d.squad, "passages": 3, "budget": 40, "wikitext": d.wikitext,
                                             "wildchat": d.wildchat})

    from reverie.app import Reverie
    from reverie.config import load_settings

    if args.arm == "as-dreamed":  # the ablation arm without the extra wordings: each fact asked once
        from reverie.sleep import distill

        distill.wordings = lambda question, *rest: [question]

    home = args.home or common.scratch_home("reverie-seal-")
    passages = json.loads(args.data.read_text(encoding="utf-8"))[: args.passages]
    docs, quiz = common.seal_home(home, passages)  # quiz.jsonl outside `docs`: never read, never dreamed about
    if args.models:
        (home / "models").mkdir(exist_ok=True)
        for m in args.models.iterdir():
            if not (home / "models" / m.name).exists():
                os.symlink(m.resolve(), home / "models" / m.name)
    overrides = protocol_overrides(args.wikitext)
    if args.threads:
        overrides["model"] = {"threads": args.threads}
    settings = load_settings(home=home, overrides=overrides)
    rv = Reverie.from_settings(settings, log=common.log)
    finished = rv.store.last_finished_night() if args.reuse_night else None
    if args.reuse_night and finished is None:
        sys.exit(f"error: {home} holds no finished night to reuse")
    read_s = None
    if finished is None:
        t0 = time.perf_counter()
        rv.read([docs])
        read_s = time.perf_counter() - t0
        result = rv.sleep(budget=args.budget * len(passages), quiz_file=quiz, progress=throttled_progress(30))
        night = {"id": result.night_id, "status": result.status, "timings": result.timings, "tokens": result.tokens,
                 "checks": [c.__dict__ for c in result.checks]}
        figures = result.figures
    else:
        metrics = json.loads(finished["metrics"])
        night = {"id": finished["id"], "status": finished["status"], "timings": json.loads(finished["timings"]),
                 "tokens": metrics["tokens"], "checks": metrics["checks"]}
        figures = metrics["figures"]
    out = {
        "passages": len(passages),
        "questions": figures["base"]["n_questions"],
        "budget_per_passage": args.budget,
        "threads": args.threads,
        "load_average": os.getloadavg(),
        "night": night,
        "base": figures["base"],
        "sleep": figures["candidate"],
        "strength": figures.get("strength"),
        "read_seconds": read_s,
        "settings": settings.sleep.model_dump(mode="json"),
        "arm": args.arm,
    }
    loaded = rv.load_base()  # one more copy of the base model, for both measurements below
    out["open_book"] = open_book(rv, loaded, passages)
    if args.wildchat:
        out["open_prompts"] = open_prompts(rv, loaded, f"night-{night['id']}" if night["status"] == "kept" else None,
                                           args.wildchat)
    if not args.no_baseline:
        out["raw_passages"], out["raw_passages_shrunk"] = raw_baseline(
            rv, passages, night["tokens"]["trained"], quiz, args.wikitext)
    common.write_json(args.out, out)
    if args.markdown:
        print(markdown(out))
    return out


def open_book(rv, loaded, passages) -> dict:
    """The base model with each question's passage in its prompt, as the night's teacher reads
    it (reverie.sleep.distill.Context.lead), scored as the quiz scores: the ceiling a night distils."""
    from reverie.answers import contained, token_f1
    from reverie.models import SamplingParams, TransformersBackend
    from reverie.sleep.distill import Context

    t0 = time.perf_counter()
    asked = [(Context(p["title"], p["context"]).lead(q["question"]), q["answer"]) for p in passages
             for q in p["questions"]]
    backend = TransformersBackend(loaded, batch_size=rv.settings.quiz.batch_size)
    params = SamplingParams(temperature=0.0, max_new_tokens=rv.settings.quiz.max_new_tokens, seed=0)
    said = [g.text for g in backend.generate([[{"role": "user", "content": lead}] for lead, _ in asked], params)]
    return {"n_questions": len(asked),
            "accuracy": sum(contained(a, g) for a, (_, g) in zip(said, asked, strict=True)) / len(asked),
            "f1": sum(token_f1(a, g) for a, (_, g) in zip(said, asked, strict=True)) / len(asked),
            "seconds": time.perf_counter() - t0}


def open_prompts(rv, loaded, adapter: str | None, wildchat: Path) -> dict:
    """What a user notices, for the base model and the kept adapter: "Tell me a joke." x30 and the
    first 20 WildChat prompts x10, at temperature 1 and 48 new tokens: mean answer length (tokens)
    and embedding Vendi, per prompt, averaged (joke and WildChat apart). Not the gate's prompts."""
    from reverie.meter.embed import make_embedder
    from reverie.meter.probe import probe
    from reverie.models import SamplingParams, TransformersBackend
    from reverie.models.lora import activate, attach, registered

    prompts = [json.loads(line)["prompt"] for line in wildchat.read_text(encoding="utf-8").splitlines()[:20]]
    if adapter:
        loaded = attach(loaded, registered(rv.store, adapter, loaded.identity))
    m = rv.settings.meter
    embedder = make_embedder(m.embedder, m.max_tokens, m.embed_precision)
    params = SamplingParams(temperature=1.0, max_new_tokens=48, seed=1234)
    out = {}
    for name in (None, adapter) if adapter else (None,):
        row = {}
        with activate(loaded.model, name):
            backend = TransformersBackend(loaded, batch_size=64)
            for label, asked, n in (("joke", ["Tell me a joke."], 30), ("wildchat", prompts, 10)):
                res = probe(backend, asked, n, params, config=m, embedder=embedder)
                lengths = [sum(len(loaded.tokenizer(a)["input_ids"]) for a in p.answers) / n for p in res.prompts]
                row[label] = {"tokens": sum(lengths) / len(lengths), "vendi": res.mean().get("vendi"),
                              "n_distinct": res.mean()["n_distinct"],
                              "examples": [p.answers[0] for p in res.prompts[:3]]}
        out[name or "base"] = row
    return out


def raw_baseline(rv, passages, tokens: int, quiz: Path, wikitext: Path | None) -> tuple[dict, dict]:
    """Plain LoRA on the raw passages (plain text, loss on every token) for `tokens` tokens: its
    figures at full strength (the issue's baseline), and at the strongest of `sleep.strengths`
    within the gate's bounds, chosen as a night chooses (so the night's shrinking is not an
    advantage the baseline was denied)."""
    from reverie.models import load_model
    from reverie.models.lora import new_lora
    from reverie.quiz.questions import load_questions
    from reverie.quiz.run import Measure
    from reverie.sleep.data import Example, encode
    from reverie.sleep.night import choose_strength
    from reverie.sleep.train import train

    s = rv.settings
    loaded = load_model(str(rv.model_path), s.models_dir, s.model.dtype, s.model.threads)
    cfg = s.sleep.model_copy(update={"kl_weight": 0.0, "entropy_weight": 0.0})
    encoded = [encode(loaded.tokenizer, Example(f"{p['title']}\n\n{p['context']}", None, "new"), cfg.max_tokens)
               for p in passages]
    per_epoch = sum(len(e.ids) for e in encoded)
    cfg = cfg.model_copy(update={"epochs": tokens / per_epoch})
    model = new_lora(loaded.model, cfg)
    t0 = time.perf_counter()
    result = train(model, loaded.tokenizer, encoded, cfg, seed=0, checkpoint=s.home / "raw-baseline.pt")
    loaded.model = model
    measure = Measure(load_questions(quiz), s.quiz, s.meter, wikitext)
    figures = measure(loaded, "raw passages").as_dict()
    figures["train"] = {"tokens": result.tokens, "epochs": cfg.epochs, "seconds": time.perf_counter() - t0,
                        "tokens_per_second": result.tokens_per_second}
    with model.disable_adapter():
        base = measure(loaded, "base", quiz=False)
    chosen, tried, at = choose_strength(loaded, model.active_adapter, measure, base, s.sleep, "raw passages shrunk")
    shrunk = at.as_dict()
    shrunk["strength"] = {"chosen": chosen, "tried": tried}
    return figures, shrunk


def markdown(out: dict) -> str:
    chosen = (out.get("strength") or {}).get("chosen", 1.0)
    shrunk = out.get("raw_passages_shrunk")
    rows = [("base (closed book)", out["base"]), ("raw-passage LoRA", out.get("raw_passages")),
            (f"raw-passage LoRA at strength {shrunk['strength']['chosen']:g}" if shrunk else "", shrunk),
            (f"reverie sleep (strength {chosen:g})", out["sleep"])]
    lines = ["| model | contained | token F1 | wikitext ppl | joke distinct | joke Vendi |", "|---|---|---|---|---|---|"]
    for label, f in rows:
        if f:
            lines.append(f"| {label} | {f['accuracy']:.1%} | {f['f1']:.3f} | {f['perplexity'] or float('nan'):.2f} | "
                         f"{f['n_distinct']:.0f} | {f['vendi']:.2f} |")
    ob = out.get("open_book")
    if ob:
        lines.append(f"| base, passage in the prompt (open book) | {ob['accuracy']:.1%} | {ob['f1']:.3f} | | | |")
    t = out["night"]["timings"]
    lines.append(f"\nnight: dream {t['dream']:.0f} s, teacher {t.get('teacher', 0):.0f} s, train {t['train']:.0f} s, "
                 f"quiz {t['quiz']:.0f} s, "
                 f"total {t['total']:.0f} s; {out['night']['tokens']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
