"""Benchmark: many nights against naive self-training (issue 19's collapse study).

    python bench/nights.py --data ../shared/data/squad_dev_200.json \
        --wikitext ../shared/data/wikitext2_valid.txt --wildchat ../shared/data/wildchat_prompts_200.jsonl \
        --nights 10 --per-night 3 --work /tmp/nights --out nights.json --report nights.html

Day d reads the next `--per-night` SQuAD passages. Three arms read the same days, in one process
and one seed; after every night each arm is measured the same way.

- naive: each night the model (with its adapter so far) writes `--samples` plain texts per passage
  read that day, from one fixed prompt (the dream baseline, reverie.dream.baseline), and its
  adapter is fine-tuned on them alone, replacing the last night's data (Shumailov et al., 2024).
- accumulate: the same samples, but the night trains on a draw from every night's samples so far
  and the raw passages (Gerstgrasser et al., 2024). Same training tokens per night as naive: the
  arms differ in which data, not in how much training.
- reverie: the defaults as shipped (`Reverie.read` then `Reverie.sleep` with `--budget` dream
  tokens per passage; its gate quizzes its own held-out dream questions and measures forgetting
  on the base model's own paragraphs; a rejected night leaves the adapter as it was).

Measured per arm after every night (the base model once, as night 0): closed-book accuracy
(answer contained) on the SQuAD questions of every passage read so far and of the first night's
passages alone, and the gold answers' mean log-probability a token (`logp_all`, `logp_first`: the
likelihood the gate tests, smooth where a few dozen right answers are not); WikiText perplexity (the first `--ppl-tokens` tokens); the probe on the first
`--prompts` WildChat prompts x `--probe-n` answers at temperature 1 (distinct answers, Vendi,
distinct-2, compression ratio, answer tokens); the lexical meter of the night's training texts.
No arm ever trains on the SQuAD questions.

Resumable: everything lives in --work (the reverie arm's home, the naive arms' adapters and
samples, the figures so far); run the same command again after a kill and it goes on from the
last finished night. --report writes the study's page (reverie.report.study_page).

On two cores, run the arms as two one-thread processes and merge them (the base model is
measured by each, with the same seed and figures):

    python bench/nights.py ... --arms reverie --threads 1 --work /tmp/nights-r &
    python bench/nights.py ... --arms naive accumulate --threads 1 --work /tmp/nights-n
    python bench/nights.py --merge /tmp/nights-r /tmp/nights-n --out nights.json --report nights.html

`--smoke`: seconds, two nights of two made-up passages on the tiny model (bench/common.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import time
from pathlib import Path

import common  # bench/ is on the path: run as a script

ARMS = ("naive", "accumulate", "reverie")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--merge", type=Path, nargs="+", help="only merge these finished --work folders' figures")
    ap.add_argument("--data", type=Path, help="squad_dev_200.json (SEAL's split)")
    ap.add_argument("--wikitext", type=Path, help="wikitext2_valid.txt (perplexity)")
    ap.add_argument("--wildchat", type=Path, help="wildchat_prompts_200.jsonl (the probe)")
    ap.add_argument("--nights", type=int, default=10)
    ap.add_argument("--per-night", type=int, default=3, help="new passages read each day")
    ap.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    ap.add_argument("--budget", type=int, default=400, help="reverie: dream tokens per passage")
    ap.add_argument("--samples", type=int, default=8, help="naive arms: texts written per passage")
    ap.add_argument("--epochs", type=float, default=2.0, help="naive arms: epochs over a night's samples")
    ap.add_argument("--prompts", type=int, default=20, help="WildChat prompts probed")
    ap.add_argument("--probe-n", type=int, default=10, help="answers per probe prompt")
    ap.add_argument("--ppl-tokens", type=int, default=8192)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--models", type=Path, help="reuse this folder of converted models")
    ap.add_argument("--work", type=Path, help="folder for the arms' state (resumable)")
    ap.add_argument("--out", type=Path, help="write the JSON figures here (default: WORK/nights.json)")
    ap.add_argument("--report", type=Path, help="write the study's HTML page here")
    ap.add_argument("--markdown", action="store_true", help="also print a BENCHMARKS.md table per arm")
    args = common.parse(ap, argv, lambda d: {
        "data": d.squad, "wikitext": d.wikitext, "wildchat": d.wildchat, "work": common.scratch_home("nights-"),
        "nights": 2, "per_night": 2, "budget": 40, "samples": 2, "prompts": 2, "probe_n": 2, "ppl_tokens": 128,
        "report": d.dir / "nights.html"})
    if args.merge:
        return merge(args.merge, args.out, args.report, args.markdown)
    if not (args.data and args.wikitext and args.wildchat and args.work):
        ap.error("--data, --wikitext, --wildchat and --work are required (or --merge)")

    args.work.mkdir(parents=True, exist_ok=True)
    out_path = args.out or args.work / "nights.json"
    state_path = args.work / "nights.json"
    passages = json.loads(args.data.read_text(encoding="utf-8"))[: args.nights * args.per_night]
    if len(passages) < args.nights * args.per_night:
        sys.exit(f"error: {args.data} has {len(passages)} passages, fewer than {args.nights} x {args.per_night}")
    days = [passages[d * args.per_night : (d + 1) * args.per_night] for d in range(args.nights)]
    prompts = [json.loads(line)["prompt"] for line in args.wildchat.read_text(encoding="utf-8").splitlines()]
    study = json.loads(state_path.read_text(encoding="utf-8")) if state_path.exists() else {
        "title": f"{args.nights} nights, {args.per_night} SQuAD passages a night", "settings": vars_json(args),
        "base": None, "arms": {a: [] for a in args.arms}, "bounds": None}
    for arm in args.arms:
        study["arms"].setdefault(arm, [])

    bench = Bench(args, prompts[: args.prompts])
    if study["base"] is None:
        study["base"] = bench.measure(bench.base(), days, 0) | {"night": 0}
        study["bounds"] = {k: getattr(bench.settings.sleep, k) for k in ("max_perplexity_rise", "max_vendi_drop")}
        save(study, state_path, out_path)
    arms = {a: make_arm(a, bench) for a in args.arms}
    for night in range(1, args.nights + 1):
        for name, arm in arms.items():
            if len(study["arms"][name]) >= night:
                continue  # done before a restart
            t0 = time.perf_counter()
            trained, kept = arm.night(night, days[night - 1])
            row = bench.measure(arm.model(), days, night) | {
                "night": night, "kept": kept, "train_meter": bench.meter(trained),
                "seconds": time.perf_counter() - t0}
            study["arms"][name].append(row)
            save(study, state_path, out_path)
            print(f"night {night} {name}: " + ", ".join(
                f"{k} {row[k]:.3g}" for k in ("accuracy_all", "accuracy_first", "perplexity", "vendi", "distinct_2")
                if row.get(k) is not None) + f", {row['seconds']:.0f} s", file=sys.stderr)
    return finish(study, args.report, args.markdown)


def finish(study: dict, report: Path | None, as_markdown: bool = False) -> dict:
    if report:
        from reverie.report import study_page

        report.write_text(study_page(study), encoding="utf-8")
        print(f"report: {report}", file=sys.stderr)
    print(json.dumps(summary(study), indent=1))
    if as_markdown:
        print(markdown(study))
    return study


def markdown(study: dict) -> str:
    """Rows for nights 1, 5 and the last of each arm: accuracy (all read, first night's), the first
    night's gold answers' log-prob, perplexity, the probe, the training set's distinct-2 and self-BLEU."""
    base = study["base"]

    def logp(r: dict) -> str:
        return "-" if r.get("logp_first") is None else f"{r['logp_first']:.2f}"

    lines = ["| arm | night | kept | accuracy, all read | first night's passages | their answers' log-prob | "
             "WikiText ppl | probe Vendi | probe distinct-2 | train distinct-2 | train self-BLEU |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| base | 0 | | {base['accuracy_all']:.1%} | {base['accuracy_first']:.1%} | {logp(base)} | "
             f"{base['perplexity']:.2f} | {base['vendi']:.2f} | {base['distinct_2']:.3f} | | |"]
    for arm, rows in study["arms"].items():
        shown = {1, 5, len(rows)}  # the first night, the middle and the last (the page has every night)
        for r in rows:
            if r["night"] not in shown:
                continue
            t = r.get("train_meter") or {}
            lines.append(
                f"| {arm} | {r['night']} | {'yes' if r.get('kept') else 'no'} | {r['accuracy_all']:.1%} | "
                f"{r['accuracy_first']:.1%} | {logp(r)} | "
                f"{r['perplexity']:.2f} ({r['perplexity'] / base['perplexity'] - 1:+.1%}) | "
                f"{r['vendi']:.2f} | {r['distinct_2']:.3f} | {t.get('distinct_2', float('nan')):.3f} | "
                f"{t.get('self_bleu', float('nan')):.3f} |")
    return "\n".join(lines)


def merge(folders: list[Path], out: Path | None, report: Path | None, as_markdown: bool = False) -> dict:
    """One study from several --work folders (arms run in separate processes)."""
    parts = [json.loads((f / "nights.json").read_text(encoding="utf-8")) for f in folders]
    study = dict(parts[0], arms={})
    for part in parts:
        study["arms"].update({arm: rows for arm, rows in part["arms"].items() if rows})
        study.setdefault("base_by_part", []).append(part["base"])
    if out:
        save(study, out)
    return finish(study, report, as_markdown)


def vars_json(args) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def save(study: dict, *paths: Path) -> None:
    text = json.dumps(study, indent=1) + "\n"
    for path in dict.fromkeys(paths):
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)  # a kill never leaves half a file


def summary(study: dict) -> dict:
    """Per arm: the last night's figures against the base and the first night's retention."""
    base = study["base"]
    out = {}
    for arm, rows in study["arms"].items():
        if not rows:
            continue
        last, first = rows[-1], rows[0]
        out[arm] = {"nights": len(rows), "kept": sum(1 for r in rows if r.get("kept")),
                    "accuracy_all": last["accuracy_all"],
                    "first_night_retained": last["accuracy_first"] / first["accuracy_first"]
                    if first["accuracy_first"] else None,
                    "perplexity_rise": last["perplexity"] / base["perplexity"] - 1,
                    "worst_perplexity_rise": max(r["perplexity"] for r in rows) / base["perplexity"] - 1,
                    "vendi_change": last["vendi"] / base["vendi"] - 1,
                    "worst_vendi_change": min(r["vendi"] for r in rows) / base["vendi"] - 1,
                    "distinct_2": [r["distinct_2"] for r in rows]}
    return out


class Bench:
    """What every arm shares: settings, the base model's files, the measurements."""

    def __init__(self, args, prompts: list[str]):
        from reverie.config import load_settings

        self.args = args
        self.prompts = prompts
        home = args.work / "reverie"
        home.mkdir(parents=True, exist_ok=True)
        if args.models and not (home / "models").exists():
            (home / "models").symlink_to(args.models.resolve())
        overrides = {"dream": {"baseline": False}, "generation": {"seed": args.seed}}
        if args.threads:
            overrides["model"] = {"threads": args.threads}
        self.settings = load_settings(home=home, overrides=overrides)
        self._embedder = None
        self._windows = None

    def rv(self):
        from reverie.app import Reverie

        return Reverie.from_settings(self.settings, log=lambda m: print(m, file=sys.stderr))

    def base(self):
        return self.rv().load_base()

    def embedder(self):
        from reverie.meter.embed import make_embedder

        if self._embedder is None:
            m = self.settings.meter
            self._embedder = make_embedder(m.embedder, m.max_tokens, m.embed_precision)
        return self._embedder

    def measure(self, loaded, days: list[list[dict]], night: int) -> dict:
        """Closed-book accuracy (all passages read so far, the first night's), perplexity, the probe."""
        from reverie.answers import contained
        from reverie.meter.probe import probe
        from reverie.models import SamplingParams, TransformersBackend
        from reverie.quiz.questions import Question
        from reverie.quiz.run import Measure

        read = [p for day in days[: max(night, 1)] for p in day]
        questions = [Question(q["question"], q["answer"]) for p in read for q in p["questions"]]
        first = sum(len(p["questions"]) for p in days[0])
        quiz = self.settings.quiz.model_copy(update={"probe_prompts": [], "probe_file": None,
                                                     "max_questions": len(questions),
                                                     "perplexity_tokens": self.args.ppl_tokens})
        measured = Measure(questions, quiz, self.settings.meter, self.args.wikitext)(loaded, "study")
        hits = [contained(a, q.answer) for a, q in zip(measured.answers, questions, strict=True)]
        params = SamplingParams(temperature=1.0, max_new_tokens=48, seed=1234)
        backend = TransformersBackend(loaded, batch_size=64)
        probed = probe(backend, self.prompts, self.args.probe_n, params, config=self.settings.meter,
                       embedder=self.embedder()).mean()
        logp = measured.answer_logp  # per question: the gold answer's log-prob a token (reverie.quiz.run)
        return {"accuracy_all": measured.accuracy, "accuracy_first": sum(hits[:first]) / first,
                "logp_all": sum(logp) / len(logp), "logp_first": sum(logp[:first]) / first,
                "n_questions": len(questions), "perplexity": measured.perplexity,
                **{k: probed.get(k) for k in ("vendi", "n_distinct", "distinct_2", "compression_ratio",
                                              "answer_tokens")}}

    def meter(self, texts: list[str]) -> dict:
        from reverie.meter.sets import meter_texts

        if len(texts) < 2:
            return {}
        m = meter_texts(texts, config=self.settings.meter, semantic=False)
        return {k: m[k] for k in ("n_texts", "mean_tokens", "distinct_2", "compression_ratio", "self_bleu")}


def make_arm(name: str, bench: Bench):
    return ReverieArm(bench) if name == "reverie" else SelfTraining(name, bench)


def document(p: dict) -> str:
    return f"# {p['title']}\n\n{p['context']}\n"


class ReverieArm:
    """The product as shipped: read the day's passages, sleep one night."""

    def __init__(self, bench: Bench):
        self.bench = bench
        self.home = bench.settings.home

    def night(self, night: int, day: list[dict]) -> tuple[list[str], bool]:
        from reverie.sleep import records

        rv = self.bench.rv()
        folder = self.home / "passages" / f"day-{night:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, p in enumerate(day):
            (folder / f"{i}.md").write_text(document(p), encoding="utf-8")
        finished = [r for r in rv.store.nights() if r["finished_at"]]
        if len(finished) >= night:  # slept before a kill that came before this night was measured
            night_id, status = finished[night - 1]["id"], finished[night - 1]["status"]
        else:
            rv.read([folder])
            result = rv.sleep(budget=self.bench.args.budget * len(day))
            night_id, status = result.night_id, result.status
        trained = [r["text"] for r in records.night_dreams(rv.store, night_id, ("train",))]
        rv.store.close()
        return trained, status == "kept"

    def model(self):
        from reverie.models.lora import attach, registered

        rv = self.bench.rv()
        loaded = rv.load_base()
        name = rv.store.get_state("adapter")
        if name:
            loaded = attach(loaded, registered(rv.store, name, loaded.identity))
            loaded.model.set_adapter(name)
        return loaded


class SelfTraining:
    """Naive self-training or its accumulating variant: the model writes about the day's passages
    and its adapter (continued night after night) is fine-tuned on plain text."""

    def __init__(self, name: str, bench: Bench):
        self.name = name
        self.bench = bench
        self.folder = bench.args.work / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.pool_path = self.folder / "pool.json"
        self.pool = json.loads(self.pool_path.read_text(encoding="utf-8")) if self.pool_path.exists() \
            else {"samples": [], "passages": []}
        self.loaded = None

    def _loaded(self):
        """The base model with this arm's adapter so far (trainable), loaded once."""
        from reverie.models.lora import load_trainable, new_lora

        if self.loaded is None:
            loaded = self.bench.base()
            adapter = self.folder / "adapter"
            model = load_trainable(loaded.model, adapter, loaded.identity) if adapter.exists() \
                else new_lora(loaded.model, self.cfg())
            loaded.model = model
            self.loaded = loaded
        return self.loaded

    def cfg(self):
        # Plain fine-tuning: no KL or entropy term, nothing held back (what naive self-training is).
        return self.bench.settings.sleep.model_copy(update={"kl_weight": 0.0, "entropy_weight": 0.0,
                                                            "objective": "sft"})

    def night(self, night: int, day: list[dict]) -> tuple[list[str], bool]:
        from reverie.dream import baseline
        from reverie.models import SamplingParams, TransformersBackend
        from reverie.models.lora import save_adapter
        from reverie.sleep.data import Example, encode
        from reverie.sleep.train import train

        loaded = self._loaded()
        seed = self.bench.args.seed * 1000 + night
        params = dataclasses.replace(SamplingParams.from_config(self.bench.settings.generation,
                                                                max_new_tokens=baseline.MAX_NEW_TOKENS), seed=seed)
        asked = [baseline.prompt(document(p)) for p in day for _ in range(self.bench.args.samples)]
        loaded.model.eval()
        written = [g.text.strip() for g in TransformersBackend(loaded, batch_size=16).generate(asked, params)]
        written = [t for t in written if t]
        self.pool["samples"].append(written)
        self.pool["passages"] += [document(p) for p in day]
        tok, cfg = loaded.tokenizer, self.cfg()
        tonight = [encode(tok, Example(t, None, "new"), cfg.max_tokens) for t in written]
        budget = self.bench.args.epochs * sum(len(e.ids) for e in tonight)  # the same tokens in both arms
        if self.name == "naive":
            data, texts = tonight, written
        else:  # accumulate: a draw from every night's samples and the raw passages, `budget` tokens
            texts = [t for night_texts in self.pool["samples"] for t in night_texts] + self.pool["passages"]
            rng = random.Random(seed)
            rng.shuffle(texts)
            data, used = [], 0
            for t in texts * 3:  # the pool is larger than a night's budget after a few nights
                if used >= budget:
                    break
                data.append(encode(tok, Example(t, None, "new"), cfg.max_tokens))
                used += len(data[-1].ids)
            texts = texts[: len(data)]
        cfg = cfg.model_copy(update={"epochs": budget / sum(len(e.ids) for e in data)})
        checkpoint = self.folder / f"checkpoint-{night}.pt"
        train(loaded.model, tok, data, cfg, seed, checkpoint)
        checkpoint.unlink(missing_ok=True)
        save_adapter(loaded.model, self.folder / "adapter", loaded.identity, {"night": night, "arm": self.name})
        self.pool_path.write_text(json.dumps(self.pool), encoding="utf-8")
        return texts, True

    def model(self):
        self._loaded().model.eval()
        return self.loaded


if __name__ == "__main__":
    main()
