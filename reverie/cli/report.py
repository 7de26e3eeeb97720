"""`reverie report`: every night in the store on one self-contained HTML page.

    reverie report                    # writes <home>/reports/report-<timestamp>.html
    reverie report --out nights.html  # or here
    reverie report --no-map           # without the dream map (loads no embedding model)

Thin: the page is built by `reverie.report`; the file is registered in the store as an artifact.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from reverie.cli.app import app, console, reverie


@app.command("report")
def report_cmd(
    out: Path | None = typer.Option(None, "--out", "-o", help="Where to write the page (default: <home>/reports/)."),
    no_map: bool = typer.Option(False, "--no-map", help="Skip the map of the dreams (no embedding model loaded)."),
) -> None:
    """Write the nights as one HTML page: the gate's figures night by night with its bounds, each
    night's verdict and reasons, its dreams by generator, a map of the dreams, probe answers."""
    from reverie.meter.embed import make_embedder
    from reverie.report import default_path, night_page, write_page

    rv = reverie()
    try:
        store, settings = rv.store, rv.settings
        embedder = None
        if not no_map and store.list_dreams(status="kept", limit=1):  # no dreams: no model to load
            m = settings.meter
            embedder = make_embedder(m.embedder, m.max_tokens, m.embed_precision, warn=rv.log)
        path = write_page(night_page(store, embedder, home=settings.home), out or default_path(settings.home))
        store.register_artifact("report", path.resolve(), {"nights": len(store.nights()), "map": embedder is not None})
    finally:
        rv.close()
    console.print(f"wrote {escape(str(path))}", highlight=False, soft_wrap=True)
