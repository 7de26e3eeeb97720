"""Imports run one way: from the CLI down to the store and the models. A stage may import from
the stages below it, never from one above (a later stage of the cycle, or the application)."""

from __future__ import annotations

import ast
from pathlib import Path

import reverie

# Lowest first. Shared foundations, then the cycle in the order it runs, then what drives it.
LAYERS = ["errors", "progress", "answers", "config", "store", "models", "meter", "wake", "dream", "quiz", "sleep", "report", "app",
          "serve", "cli"]
PACKAGE = Path(reverie.__file__).parent


def _stage(parts: tuple[str, ...]) -> str | None:
    return parts[0] if parts and parts[0] in LAYERS else None


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "reverie" and len(parts) > 1:
                yield name, _stage(tuple(parts[1:2]))


def test_no_stage_imports_from_a_later_one():
    backward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("").parts
        src = _stage(rel)
        if src is None:
            continue
        for name, dst in _imports(path):
            if dst is not None and LAYERS.index(dst) > LAYERS.index(src):
                backward.append(f"{'/'.join(rel)}.py imports {name} ({src} -> {dst})")
    assert not backward, "imports against the cycle's direction:\n" + "\n".join(sorted(set(backward)))


def test_every_stage_is_layered():
    """A new top-level module or folder must take its place in LAYERS."""
    tops = {p.stem for p in PACKAGE.iterdir() if (p.suffix == ".py" or p.is_dir()) and not p.name.startswith("_")}
    assert tops - {"samples"} <= set(LAYERS), sorted(tops - set(LAYERS))
