"""The typer application and what every command shares: global options and the Reverie object."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from reverie.progress import Event

app = typer.Typer(
    name="reverie",
    help="Give a local language model a sleep cycle: wake (read, chat), dream, sleep, meter.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Output that is not a terminal (a pipe, a log file) is never cut to 80 columns: a table in a log
# must show "rejected", not "rejec…". Width only matters for tables; text is soft-wrapped.
WIDE = 100_000
console = Console() if sys.stdout.isatty() else Console(width=WIDE)
err_console = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=WIDE)
LOG_EVERY = 5.0  # seconds between progress lines when stderr is not a terminal

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


def rule(title: str) -> None:
    """A section header: a full-width rule on a terminal, a short one elsewhere."""
    if console.is_terminal:
        from rich.rule import Rule

        console.print(Rule(title))
    else:
        console.print(f"-- {escape(title)} --", highlight=False)


@contextlib.contextmanager
def live_progress(every: float = LOG_EVERY):
    """Yields a reverie.progress callback: a live bar per phase on a terminal (stderr), else one
    line per phase every `every` seconds and when a phase completes."""
    if err_console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[detail]}", markup=False), TimeRemainingColumn(),
                      console=err_console, transient=True) as bar:
            tasks: dict[str, int] = {}

            def show(e: Event) -> None:
                if e.phase not in tasks:
                    tasks[e.phase] = bar.add_task(e.phase, total=e.total, detail="")
                bar.update(tasks[e.phase], completed=e.done, total=e.total, detail=e.detail)

            yield show
        return
    last: dict[str, float] = {}

    def line(e: Event) -> None:
        now = time.monotonic()
        finished = e.total is not None and e.done == e.total
        if not finished and now - last.get(e.phase, -every) < every:
            return
        last[e.phase] = now
        count = f" {e.done}/{e.total}" if e.total is not None else ""
        err_console.print(f"{escape(e.phase)}{count}{' ' + escape(e.detail) if e.detail else ''}",
                          highlight=False, soft_wrap=True)

    yield line
