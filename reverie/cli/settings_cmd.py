"""`reverie config`: print the effective configuration (and where it came from)."""

from __future__ import annotations

import yaml

from reverie.cli.app import app, console, settings


@app.command("config")
def config_cmd() -> None:
    """Print the effective configuration as YAML (defaults < file < environment < options)."""
    s = settings()
    data = s.model_dump(mode="json")
    console.print(yaml.safe_dump(data, sort_keys=False).rstrip(), markup=False, highlight=False, soft_wrap=True)
