"""Diagnostic: where on the general text does a night's adapter lose log-probability?

    python bench/diag/forgetting_tokens.py --home /tmp/seal50m --adapter night-1 \
        --wikitext ../shared/data/wikitext2_valid.txt --strength 1.0

The gate's forgetting figure is one number: perplexity on the first `quiz.perplexity_tokens`
tokens of the general text, in windows of 512 (reverie.quiz.run). This splits the rise. For
every scored token it takes the negative log-likelihood under the base model and under the
adapter, and reports the mean rise, the target tokens whose rise adds up most (what the adapter
now predicts worse), the tokens whose predicted probability grew most (where the mass went),
and the mean rise by position in the window (a rise that grows with position is lost in-context
behaviour, not lost facts). `--strength` is relative to the adapter's full update: a kept
adapter is saved already shrunk to the strength the gate chose, and 1.0 here undoes that.
Prints a JSON object (also written to --out). `--smoke`: seconds, on a tiny-model night
(bench/common.py).
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for common
import common  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True, type=Path, help="a reverie home with the adapter registered")
    ap.add_argument("--adapter", required=True, help="the adapter's name, e.g. night-1")
    ap.add_argument("--wikitext", required=True, type=Path, help="the general text the gate measures")
    ap.add_argument("--strength", type=float, default=1.0, help="of the adapter's full (unshrunk) update")
    ap.add_argument("--top", type=int, default=15, help="tokens listed per table")
    ap.add_argument("--out", type=Path)
    args = common.parse(ap, argv, lambda d: {"home": common.smoke_night_home(), "adapter": "night-1",
                                             "wikitext": d.wikitext, "top": 3})
    if not (args.home / "reverie.db").is_file():
        sys.exit(f"error: {args.home} is not a reverie home (no reverie.db)")

    import torch

    from reverie.app import Reverie
    from reverie.config import load_settings
    from reverie.models import lora
    from reverie.quiz.run import WINDOW, general_windows

    rv = Reverie.from_settings(load_settings(home=args.home), log=common.log)
    row = rv.store.adapter(args.adapter)
    if row is None:
        sys.exit(f"error: no adapter {args.adapter} in {args.home}")
    loaded = lora.attach(rv.load_base(), row)
    baked = float(lora.read_meta(row["path"]).get("strength", 1.0))
    tok, model = loaded.tokenizer, loaded.model.eval()
    windows = [tok(w, add_special_tokens=False)["input_ids"]
               for w in general_windows(args.wikitext, tok, rv.settings.quiz.perplexity_tokens)]

    def nll_and_probs(adapted: bool):
        for ids in windows:
            x = torch.tensor([ids])
            with torch.no_grad():
                if adapted:
                    with lora.strength(model, args.adapter, args.strength / baked):
                        logits = model(input_ids=x).logits[0, :-1]
                else:
                    with model.disable_adapter():
                        logits = model(input_ids=x).logits[0, :-1]
            logp = torch.log_softmax(logits.float(), -1)
            yield -logp.gather(1, x[0, 1:, None])[:, 0], logp.exp()

    rise = collections.Counter()
    count = collections.Counter()
    by_position = collections.defaultdict(list)
    mass = None
    total = 0
    for ids, (nb, pb), (na, pa) in zip(windows, nll_and_probs(False), nll_and_probs(True), strict=True):
        delta = (na - nb).tolist()
        for pos, (target, d) in enumerate(zip(ids[1:], delta, strict=True)):
            rise[target] += d
            count[target] += 1
            by_position[pos * 4 // WINDOW].append(d)
        grown = (pa - pb).sum(0)
        mass = grown if mass is None else mass + grown
        total += len(delta)
    summed = sum(rise.values())
    grew = torch.topk(mass / total, args.top)
    result = {
        "adapter": args.adapter, "strength": args.strength, "tokens": total,
        "mean_nll_rise": summed / total,
        "worse_predicted": [{"token": tok.decode([t]), "count": count[t], "rise": round(d, 1),
                             "share": round(d / summed, 3)} for t, d in rise.most_common(args.top)],
        "mass_grew": [{"token": tok.decode([i]), "mean_probability_gain": round(v, 5)}
                      for v, i in zip(grew.values.tolist(), grew.indices.tolist(), strict=True)],
        "mean_rise_by_window_quarter": [round(sum(v) / len(v), 4) for _, v in sorted(by_position.items())],
    }
    common.write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
