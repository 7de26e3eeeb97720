"""bench/ as a suite, read without running it (`make bench-smoke` runs it, in CI): every benchmark
and diagnostic takes --smoke through bench/common.py, and no script imports another."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
_spec = importlib.util.spec_from_file_location("bench_smoke", BENCH / "smoke.py")
smoke = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(smoke)


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_runner_finds_benchmarks_and_diagnostics():
    found = {str(p.relative_to(BENCH)) for p in smoke.scripts()}
    assert "sleep_seal.py" in found and "diag/recall_split.py" in found
    assert not {"common.py", "smoke.py"} & found


def test_every_script_takes_smoke_through_common():
    missing = [p.name for p in smoke.scripts() if "common.parse(" not in p.read_text(encoding="utf-8")]
    assert not missing, f"without --smoke (common.parse): {missing}"


def test_no_script_imports_another():
    scripts = {p.stem for p in BENCH.rglob("*.py")} - {"common"}
    crossed = {p.name: sorted(_imported(p) & scripts) for p in BENCH.rglob("*.py")}
    assert not {k: v for k, v in crossed.items() if v}, "bench scripts share code through bench/common.py only"
