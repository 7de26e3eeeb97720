"""Every benchmark and diagnostic in smoke mode, one after another (`make bench-smoke`; CI runs it).

    python bench/smoke.py                        # all of bench/*.py and bench/diag/*.py
    python bench/smoke.py sleep_seal recall_split   # only these
    python bench/smoke.py --keep                 # keep the smoke folder (tiny model, homes, JSON) and print it

Each script runs as `python SCRIPT --smoke --out OUT.json` in its own process (bench/common.py:
the tiny random model, one torch thread, made-up passages), sharing one smoke folder so the tiny
model and the night homes several scripts read are made once. A script passes when it exits 0
and leaves a JSON file at OUT; any other outcome prints the end of its output and names it, and
the run exits 1 after trying the rest. A line per script gives its wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
HELPERS = {"common.py", "smoke.py"}


def scripts() -> list[Path]:
    """The benchmarks (bench/*.py), then the diagnostics (bench/diag/*.py), each by name."""
    return [p for p in sorted(BENCH.glob("*.py")) if p.name not in HELPERS] + sorted((BENCH / "diag").glob("*.py"))


def run(script: Path, folder: Path, timeout: float) -> tuple[bool, float, str]:
    """(passed, seconds, what went wrong) for one script in smoke mode."""
    out = folder / "out" / f"{script.stem}.json"
    env = dict(os.environ, BENCH_SMOKE_DIR=str(folder / "shared"),
               PYTHONPATH=os.pathsep.join(p for p in (str(BENCH.parent), os.environ.get("PYTHONPATH")) if p))
    log = folder / "logs" / f"{script.stem}.log"
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        try:
            code = subprocess.run([sys.executable, str(script), "--smoke", "--out", str(out)], stdout=fh,
                                  stderr=subprocess.STDOUT, env=env, cwd=BENCH.parent, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = f"timed out after {timeout:.0f} s"
    seconds = time.perf_counter() - t0
    if code != 0:
        problem = f"exit {code}" if isinstance(code, int) else code
    elif not out.is_file():
        problem = f"exit 0 but no JSON at {out}"
    else:
        try:
            json.loads(out.read_text(encoding="utf-8"))
            return True, seconds, ""
        except json.JSONDecodeError as exc:
            problem = f"{out} is not JSON: {exc}"
    tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-40:])
    return False, seconds, f"{problem}\n{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("only", nargs="*", help="script names (stem) to run; default: all")
    ap.add_argument("--timeout", type=float, default=300, help="seconds one script may take")
    ap.add_argument("--keep", action="store_true", help="keep the smoke folder")
    args = ap.parse_args(argv)
    chosen = [s for s in scripts() if not args.only or s.stem in args.only]
    unknown = set(args.only) - {s.stem for s in chosen}
    if unknown:
        ap.error(f"no such script: {', '.join(sorted(unknown))}")
    folder = Path(tempfile.mkdtemp(prefix="reverie-bench-smoke-"))
    (folder / "out").mkdir()
    (folder / "logs").mkdir()
    failed, times, t0 = [], {}, time.perf_counter()
    for script in chosen:
        name = script.relative_to(BENCH.parent)
        passed, seconds, problem = run(script, folder, args.timeout)
        times[str(name)] = round(seconds, 1)
        print(f"{'ok' if passed else 'FAILED':<6} {seconds:6.1f} s  {name}", flush=True)
        if not passed:
            failed.append(str(name))
            print(f"--- {name}: {problem}\n---", flush=True)
    total = time.perf_counter() - t0
    (folder / "out" / "smoke_times.json").write_text(json.dumps({"total_s": round(total, 1), "scripts": times},
                                                                indent=1), encoding="utf-8")
    print(f"{len(chosen) - len(failed)} of {len(chosen)} passed in {total:.0f} s")
    if args.keep:
        print(f"smoke folder: {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    if failed:
        print("bench smoke FAILED: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
