"""The typer application and what every command shares: global options and the Reverie object."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    name="reverie",
    help="Give a local language model a sleep cycle: wake (read, chat), dream, sleep, meter.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

_GLOBAL: dict = {}


@app.callback()
def _global_options(
    home: Path | None = typer.Option(None, "--home", help="Reverie home (store, models); env REVERIE_HOME."),
    config: Path | None = typer.Option(None, "--config", help="YAML config file; env REVERIE_CONFIG."),
    model: str | None = typer.Option(None, "--model", help="'default', a HF model directory or a .gguf file."),
    seed: int | None = typer.Option(None, "--seed", help="Sampling seed (recorded with everything)."),
) -> None:
    _GLOBAL.update(home=home, config=config, model=model, seed=seed)


def notice(msg: str) -> None:
    """A one-line notice on stderr; library messages starting with 'warning:' print as warnings."""
    if msg.startswith("warning: "):
        warn(msg[len("warning: ") :])
    else:
        err_console.print(f"[dim]{escape(msg)}[/dim]", highlight=False)


def warn(msg: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {escape(msg)}", highlight=False)


def error(msg: str) -> None:
    err_console.print(f"[red]error:[/red] {escape(msg)}", highlight=False, soft_wrap=True)


def settings(**overrides):
    """Effective settings: defaults < YAML < environment < global options < `overrides`."""
    from reverie.config import load_settings

    merged: dict = {}
    if _GLOBAL.get("model"):
        merged.setdefault("model", {})["path"] = _GLOBAL["model"]
    if _GLOBAL.get("seed") is not None:
        merged.setdefault("generation", {})["seed"] = _GLOBAL["seed"]
    for section, values in overrides.items():
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            merged.setdefault(section, {}).update(values)
    return load_settings(home=_GLOBAL.get("home"), config_file=_GLOBAL.get("config"), overrides=merged)


def reverie(**overrides):
    from reverie.app import Reverie

    return Reverie.from_settings(settings(**overrides), log=notice)
