"""`reverie dream` (generate a diverse, grounded dream set) and `reverie dreams` (list, export).

    reverie dream --budget 20000 --generators qa,facts,dream
    reverie dreams --dropped --generator qa
    reverie dreams --export dreams.parquet

Thin: the work is in `reverie.dream`. Ctrl-C keeps every committed batch; rerunning the same
command continues the run.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer
from rich.table import Table

from reverie.cli.app import app, console, live_progress, notice, reverie
from reverie.errors import ReverieError


@app.command("dream")
def dream_cmd(
    budget: int | None = typer.Option(None, "--budget", help="Tokens of kept dreams (default: dream.budget)."),
    generators: str | None = typer.Option(
        None, "--generators", help="Comma-separated: restate,qa,facts,bookclub,entities,reconcile,dream,spar."
    ),
    docs: str | None = typer.Option(
        None, "--docs", help="'all' or document ids like 1,2 (default: everything read since the last night)."
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Abandon an interrupted run instead of continuing it."),
) -> None:
    """Dream about what was read: generate, gate, deduplicate and select synthetic texts, then
    compare their diversity with a naive baseline, per source chunk at equal count."""
    rv = reverie()
    names = generators.split(",") if generators is not None else None
    with live_progress() as progress:
        result = rv.dream(budget=budget, generators=names, docs=docs, fresh=fresh, progress=progress)
    if result.resumed:
        notice(f"run {result.run_id} was continued from where it stopped")
    console.print(
        f"dream run {result.run_id}: kept {result.kept} dreams ({result.kept_tokens} tokens), "
        f"dropped {result.dropped}; generated {result.generated_tokens} tokens "
        f"at {result.tokens_per_second:.0f} tokens/s",
        highlight=False,
    )
    if result.drop_reasons:
        console.print(
            "dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(result.drop_reasons.items(), key=lambda x: -x[1])),
            highlight=False,
        )
    _print_meters(result)


def _print_meters(result) -> None:
    """Each whole set's meter (secondary), then the headline: dreams against the naive baseline
    per source chunk at equal count. Whole sets of unequal count and length are no comparison."""
    from reverie.meter.report import comparison_table, meter_table

    def show(table, title: str) -> None:
        table.title, table.min_width = title, len(title) + 2  # the title on one line where it fits
        console.print(table)

    if result.meter:
        sizes = " vs ".join(f"{m['n_texts']} {'naive texts' if name == 'baseline' else name}"
                            for name, m in result.meter.items())
        show(meter_table(result.meter), f"secondary: whole sets, {sizes} (count and length differ)"
             if len(result.meter) > 1 else f"whole set: {next(iter(result.meter))}")
    if result.kept < 2:
        notice("fewer than two dreams were kept: no meter (see `reverie dreams --dropped`)")
    elif result.comparison:
        show(comparison_table(result.comparison), "dreams vs naive baseline, per source chunk at equal count")
    elif "baseline" in result.meter:
        notice("no source chunk has two dreams and two naive texts: no per-chunk comparison "
               "(a larger --budget gives more)")


def _flat(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@app.command("dreams")
def dreams_cmd(
    generator: str | None = typer.Option(None, "--generator", "-g", help="Only this generator's dreams."),
    dropped: bool = typer.Option(False, "--dropped", help="Show dropped dreams with the gate's reasons."),
    everything: bool = typer.Option(False, "--all", help="Kept and dropped dreams."),
    run: int | None = typer.Option(None, "--run", help="Only this dream run's dreams."),
    limit: int | None = typer.Option(None, "--limit", "-n", min=1, help="At most this many."),
    export: Path | None = typer.Option(None, "--export", help="Write the dreams to this file instead of listing."),
    fmt: str | None = typer.Option(None, "--format", help="jsonl or parquet (default: from --export's suffix)."),
) -> None:
    """List, filter and export dreams (of finished runs)."""
    from reverie.dream.generators import GENERATORS

    if generator is not None and generator not in GENERATORS:
        raise ReverieError(f"unknown generator {generator!r}; choose from {', '.join(GENERATORS)}")
    if fmt is not None and export is None:
        raise ReverieError("--format goes with --export FILE")
    rv = reverie()
    status = None if everything else ("dropped" if dropped else "kept")
    rows = rv.store.list_dreams(generator=generator, status=status, run_id=run, limit=limit)
    if export is not None:
        from reverie.dream.export import export_dreams

        n = export_dreams(rows, export, fmt)
        rv.store.register_artifact("dreams", export.resolve(), {"count": n, "status": status, "generator": generator})
        console.print(f"wrote {n} dreams to {export}", highlight=False)
        return
    if not rows:
        console.print("no dreams" + (" dropped" if dropped else ""))
        return
    table = Table()
    for col in ("id", "generator", "sources", "tokens", "reason" if status != "kept" else "grounded", "text"):
        table.add_column(col, overflow="fold")
    for r in rows:
        metrics = json.loads(r["metrics"])
        last = r["drop_reason"] or "" if status != "kept" else f"{metrics.get('grounded', 0):.0%}"
        table.add_row(str(r["id"]), r["generator"], ",".join(map(str, json.loads(r["source_chunk_ids"]))),
                      str(metrics.get("n_tokens", "")), last, _flat(r["text"], 100))
    console.print(table)
    counts = Counter(r["generator"] for r in rows)
    notice(", ".join(f"{g} {n}" for g, n in counts.most_common()))
