"""`reverie read PATH...`: read files and folders into the store (see `reverie.wake.reader`).

Shows a progress bar on a terminal, then what happened to each file: counts of new, updated,
unchanged and skipped files, and a table of the skipped ones with the reason. Warnings are
printed as they happen (through the Reverie log).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from reverie.cli.app import app, console, live_progress, reverie

_TABLE_ROWS = 20  # a folder full of unsupported files should not scroll the summary away


@app.command("read")
def read_cmd(
    paths: list[Path] = typer.Argument(None, help="Files (.txt .md .rst .html .pdf) and folders to read."),
    reindex: bool = typer.Option(
        False, "--reindex", help="Embed every chunk in the store again (after changing wake.embedder); no paths needed."
    ),
) -> None:
    """Read documents into memory and embed their chunks for search; unchanged files are recognised
    and skipped quickly, and a changed file's unchanged chunks keep their embeddings."""
    rv = reverie()
    try:
        with live_progress() as progress:
            report = rv.read(paths or [], progress=lambda e: progress(replace(e, detail=_shown(e.detail))),
                             reindex=reindex)
    finally:
        rv.close()

    if paths:
        console.print(
            f"read {report.read} file(s): {len(report.new)} new, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged; {len(report.skipped)} skipped; "
            f"{report.chunks_added} chunk(s) added, {report.chunks_embedded} embedded",
            highlight=False,
        )
    else:
        console.print(f"reindexed: {report.chunks_embedded} chunk(s) embedded", highlight=False)
    if report.skipped:
        table = Table("skipped", "reason", box=None, header_style="bold")
        for path, reason in sorted(report.skipped)[:_TABLE_ROWS]:
            table.add_row(Text(_shown(path)), Text(reason))  # Text: no markup in names
        if len(report.skipped) > _TABLE_ROWS:
            table.add_row(f"... and {len(report.skipped) - _TABLE_ROWS} more", "")
        console.print(table, highlight=False)


def _shown(path: str) -> str:
    """A path relative to the working folder when it lies inside it: shorter, still unambiguous."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path
