"""Benchmark: accuracy against night length (issue 18's scaling row).

    python bench/sleep_scaling.py --home /tmp/seal50 --scale 2 4 --out scaling.json

--home is a finished `bench/sleep_seal.py` home (its first night done, its quiz.jsonl beside it).
For each scale, a copy of that home has its night rewound to just before training, with
`sleep.epochs` multiplied by the scale, and the night is resumed: the same dreams, self-replay
paragraphs and teacher answers (stored with the night's plan), the teacher's targets computed
again, then training, quiz and gate as shipped. So the rows differ only in training budget, and a
row's time is the teacher's targets + training + quiz (add the original night's dream, replay and
teacher-answer seconds for a whole night's).

`--set KEY=VALUE` (repeatable) changes a training setting for every row, the same way: the lever
of an ablation that needs the same dreams and teacher answers (for example
`--scale 1 --set 'sleep.target_modules=[gate_proj,up_proj,down_proj]'`). VALUE is read as YAML.

Prints a JSON summary (also written to --out) and, with --markdown, a BENCHMARKS.md table.
`--smoke`: seconds, one scale on a tiny-model night (bench/common.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import common  # bench/ is on the path: run as a script
from common import protocol_overrides, throttled_progress


def apply_sets(settings: dict, sets: dict[str, object]) -> dict:
    """The night's stored settings (its sleep and quiz sections) with `sets` (dotted keys) changed,
    validated: a misspelt --set fails before any work."""
    from pydantic import ValidationError

    from reverie.config import QuizConfig, SleepConfig

    settings = json.loads(json.dumps(settings))
    for section, schema in (("sleep", SleepConfig), ("quiz", QuizConfig)):
        for name in schema.stored(settings[section])[1]:  # deleted since the night ran: nothing to apply
            print(f"note: {section}.{name} is no longer a setting; the rewound night runs without it", file=sys.stderr)
            del settings[section][name]
    for key, value in sets.items():
        section, _, name = key.partition(".")
        if section not in ("sleep", "quiz"):
            sys.exit(f"error: --set {key}: a night stores only its sleep.* and quiz.* settings")
        settings[section][name] = value
    try:
        SleepConfig.model_validate(settings["sleep"])
        QuizConfig.model_validate(settings["quiz"])
    except ValidationError as e:
        err = e.errors()[0]
        sys.exit(f"error: --set: {'.'.join(map(str, err['loc']))}: {err['msg']}")
    return settings


def rewind(home: Path, scale: float, sets: dict[str, object]) -> float:
    """Rewind the home's first night to before training, with epochs x `scale` and the settings
    `sets` changed; returns the epochs."""
    from reverie.store import Store

    store = Store.open(home / "reverie.db")
    night = store.night(1)
    config = json.loads(night["config"])
    config["settings"] = apply_sets(config["settings"], sets)
    epochs = config["settings"]["sleep"]["epochs"] * scale
    config["settings"]["sleep"]["epochs"] = epochs
    with store.transaction():
        store.conn.execute("UPDATE nights SET status = 'interrupted', finished_at = NULL, metrics = '{}', "
                           "config = ? WHERE id = 1", (json.dumps(config),))
        store.conn.execute("DELETE FROM adapters")
        store.conn.execute("DELETE FROM state WHERE key = 'adapter'")
    store.close()
    # The copy's own folders: the stored adapter paths are absolute and name the source home's.
    shutil.rmtree(home / "nights", ignore_errors=True)
    shutil.rmtree(home / "adapters", ignore_errors=True)
    return epochs


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True, type=Path, help="a finished bench/sleep_seal.py home")
    ap.add_argument("--scale", type=float, nargs="+", default=[2.0, 4.0], help="training budget multiples")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--keep", action="store_true", help="keep the copied homes (printed)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting changed in every row, e.g. sleep.kl_weight=4 (VALUE read as YAML)")
    # its own smoke home: rewind() removes the adapter folders the copied store names, the original's
    args = common.parse(ap, argv, lambda d: {"home": common.smoke_night_home("scaling-home"), "scale": [2.0]})

    import yaml

    from reverie.app import Reverie
    from reverie.config import load_settings
    from reverie.store import Store

    sets = {}
    for item in args.sets:
        key, eq, value = item.partition("=")
        if not eq or "." not in key:
            sys.exit(f"error: --set {item!r}: expected SECTION.KEY=VALUE")
        sets[key] = yaml.safe_load(value)

    src = Store.open(args.home / "reverie.db")
    original = src.night(1)
    if original is None or original["finished_at"] is None:
        sys.exit(f"error: {args.home} holds no finished night 1 (run bench/sleep_seal.py --home {args.home})")
    first = {"timings": json.loads(original["timings"]), "metrics": json.loads(original["metrics"]),
             "epochs": json.loads(original["config"])["settings"]["sleep"]["epochs"]}
    wikitext = json.loads(original["config"])["settings"]["quiz"]["general_text"]
    apply_sets(json.loads(original["config"])["settings"], sets)  # fails early on a bad --set
    src.close()
    rows = [row(first["metrics"], first["timings"], 1.0, first["epochs"], {})]
    for scale in args.scale:
        home = Path(tempfile.mkdtemp(prefix=f"reverie-scale{scale:g}-"))
        shutil.copytree(args.home, home, symlinks=True, dirs_exist_ok=True)
        epochs = rewind(home, scale, sets)
        overrides = protocol_overrides(Path(wikitext) if wikitext else None)
        if args.threads:
            overrides["model"] = {"threads": args.threads}
        rv = Reverie.from_settings(load_settings(home=home, overrides=overrides), log=common.log)
        print(f"scale {scale:g}: epochs {epochs:g} in {home}", file=sys.stderr)
        result = rv.sleep(quiz_file=home / "quiz.jsonl", progress=throttled_progress(30))
        night = rv.store.night(result.night_id)
        rows.append(row(json.loads(night["metrics"]), result.timings, scale, epochs, sets))
        rv.store.close()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    out = {"home": str(args.home), "set": sets, "load_average": os.getloadavg(), "rows": rows}
    common.write_json(args.out, out)
    if args.markdown:
        print(markdown(out))
    return out


def row(metrics: dict, timings: dict, scale: float, epochs: float, sets: dict) -> dict:
    f = metrics["figures"]
    strength = f.get("strength") or {}
    return {"scale": scale, "epochs": epochs, "set": sets, "status": "kept" if all(c["passed"] for c in metrics["checks"])
            else "rejected", "strength": strength.get("chosen"),
            "accuracy": f["candidate"]["accuracy"], "f1": f["candidate"]["f1"],
            "perplexity_rise": f["candidate"]["perplexity"] / f["base"]["perplexity"] - 1,
            "probe_vendi": f["candidate"]["vendi"], "base_vendi": f["base"]["vendi"],
            "tried": strength.get("tried"), "trained_tokens": metrics["tokens"]["trained"],
            "train_seconds": timings["train"], "quiz_seconds": timings["quiz"]}


def markdown(out: dict) -> str:
    lines = ["| training budget | changed | epochs | verdict | strength | contained | token F1 | ppl rise | probe Vendi "
             "| train s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        changed = ", ".join(f"{k}={v}" for k, v in r["set"].items()) or "as the night ran"
        lines.append(f"| {r['scale']:g}x | {changed} | {r['epochs']:g} | {r['status']} | {r['strength'] or 1:g} | "
                     f"{r['accuracy']:.1%} | {r['f1']:.3f} | {r['perplexity_rise']:+.1%} | {r['probe_vendi']:.2f} | "
                     f"{r['train_seconds']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
