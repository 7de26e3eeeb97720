"""Benchmark: "it only knows three jokes" -- distinct answers of the default model to one prompt.

    python bench/probe_joke.py                          # -n 50 at temperature 1.0, 0.7 and greedy
    python bench/probe_joke.py --n 20 --prompt "Write a haiku about rain"
    python bench/probe_joke.py --smoke                  # seconds: -n 3 on the tiny model (bench/common.py)

Runs the real command, once per setting, in a reverie home under bench/out/ (the default model is
converted there once, about half a minute):

    reverie --home bench/out/home --seed 0 probe --prompt "Tell me a joke" -n 50 --temperature 1.0 --json
    reverie --home bench/out/home --seed 0 probe --prompt "Tell me a joke" -n 50 --temperature 0.7 --json
    reverie --home bench/out/home --seed 0 probe --prompt "Tell me a joke" -n 50 --greedy --json

and prints a Markdown table (distinct answers, largest clusters, Vendi, self-BLEU, time) for
BENCHMARKS.md. Full results, answers included, go to bench/out/probe_joke.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import common  # bench/ is on the path: run as a script


def run_probe(home: Path, seed: int, prompt: str, n: int, setting: list[str], model: str | None) -> dict:
    cmd = ["--home", str(home), "--seed", str(seed)]
    if model:
        cmd += ["--model", model]
    cmd += ["probe", "--prompt", prompt, "-n", str(n), *setting, "--json"]
    print("reverie " + " ".join(f'"{c}"' if " " in c else c for c in cmd), flush=True)
    done = subprocess.run([sys.executable, "-m", "reverie", *cmd], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"probe failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt", default="Tell me a joke")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", help="model spec (default: the configured default model)")
    ap.add_argument("--home", type=Path, default=Path("bench/out/home"))
    ap.add_argument("--out", type=Path, default=Path("bench/out/probe_joke.json"))
    args = common.parse(ap, argv, lambda d: {"n": 3, "home": d.dir / "probe-home", "out": d.dir / "probe_joke.json"})

    settings = {"temperature 1.0": ["--temperature", "1.0"], "temperature 0.7": ["--temperature", "0.7"],
                "greedy": ["--greedy"]}
    results = {name: run_probe(args.home, args.seed, args.prompt, args.n, s, args.model)
               for name, s in settings.items()}

    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs; prompt {args.prompt!r}, n={args.n}, "
          f"seed {args.seed}, model {next(iter(results.values()))['model']}\n")
    print("| decoding | distinct answers | largest clusters | Vendi | self-BLEU | distinct-2 | time |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        p = r["prompts"][0]
        m = p["metrics"]
        sizes = ", ".join(str(s) for s in p["cluster_sizes"][:5]) + (", ..." if len(p["cluster_sizes"]) > 5 else "")
        label = name if r["sampling"]["temperature"] <= 0 else f"{name}, top-p {r['sampling']['top_p']}"
        print(f"| {label} | {p['n_distinct']} of {r['n']} | {sizes} | "
              f"{m['vendi']:.2f} | {m['self_bleu']:.3f} | {m['distinct_2']:.3f} | {r['seconds']:.0f} s |")
    print("\nlargest cluster, one example each:")
    for name, r in results.items():
        p = r["prompts"][0]
        print(f"- {name}: {' '.join(p['examples'][0].split())[:160]!r}")
    common.write_json(args.out, results, indent=2, echo=False)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
