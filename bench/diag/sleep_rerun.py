"""Diagnostic: train another night on the stored dreams of an earlier SEAL home (no dreaming).

    python bench/diag/sleep_rerun.py --from /tmp/seal50 --to /tmp/rerun1 \
        --wikitext ../shared/data/wikitext2_valid.txt --set sleep.lr=1e-3 --set sleep.epochs=2 \
        --drop-generator restate

Dreaming is the slow part of a night and is not what a training ablation varies: this copies the
store of a home made by bench/sleep_seal.py (its models, passages and quiz are linked, not copied),
optionally marks whole generators' dreams as dropped, and runs `Reverie.sleep` there with the
given settings. The earlier night is finished, so nothing new was read and the night trains on
the pending dreams. Prints the night's figures as JSON (also written to --out). `--smoke`: seconds,
on a tiny-model night (bench/common.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for common
import common  # noqa: E402
from common import protocol_overrides, throttled_progress  # noqa: E402


def _setting(text: str) -> tuple[list[str], object]:
    key, _, value = text.partition("=")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.split("."), parsed


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="source", required=True, type=Path, help="a home made by bench/sleep_seal.py")
    ap.add_argument("--to", required=True, type=Path, help="the new home (replaced)")
    ap.add_argument("--wikitext", type=Path, help="wikitext2_valid.txt for perplexity")
    ap.add_argument("--set", action="append", default=[], help="a setting, e.g. sleep.lr=1e-3 (repeatable)")
    ap.add_argument("--drop-generator", action="append", default=[], help="leave this generator's dreams out")
    ap.add_argument("--out", type=Path)
    args = common.parse(ap, argv, lambda d: {"source": common.smoke_night_home(), "to": d.dir / "rerun-home",
                                             "wikitext": d.wikitext})

    from reverie.app import Reverie
    from reverie.config import load_settings

    shutil.rmtree(args.to, ignore_errors=True)
    args.to.mkdir(parents=True)
    shutil.copy(args.source / "reverie.db", args.to / "reverie.db")
    for name in ("models", "passages", "quiz.jsonl"):
        os.symlink((args.source / name).resolve(), args.to / name)
    with sqlite3.connect(args.to / "reverie.db") as db:
        for g in args.drop_generator:
            db.execute("UPDATE dreams SET status = 'dropped', drop_reason = 'left out by sleep_rerun' "
                       "WHERE generator = ? AND status = 'kept'", (g,))
    overrides = protocol_overrides(args.wikitext)
    for text in args.set:
        path, value = _setting(text)
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    settings = load_settings(home=args.to, overrides=overrides)
    rv = Reverie.from_settings(settings, log=common.log)
    night = rv.sleep(quiz_file=args.to / "quiz.jsonl", progress=throttled_progress(60))
    out = {"from": str(args.source), "settings": args.set, "dropped_generators": args.drop_generator,
           "status": night.status, "timings": night.timings, "tokens": night.tokens,
           "base": night.figures["base"], "sleep": night.figures["candidate"]}
    common.write_json(args.out, out)
    return out


if __name__ == "__main__":
    main()
