"""`reverie serve`: the OpenAI-compatible server (see `reverie.serve`).

    reverie serve                      # http://127.0.0.1:8000/v1
    reverie serve --port 9000 --queue-size 16
    reverie serve --no-auth            # loopback only: no token asked, every caller is the owner
"""

from __future__ import annotations

import typer

from reverie.cli.app import app, notice, settings


@app.command("serve")
def serve_cmd(
    host: str | None = typer.Option(None, help="Address to listen on (default serve.host, 127.0.0.1)."),
    port: int | None = typer.Option(None, min=1, max=65535, help="Port (default serve.port, 8000)."),
    batch_size: int | None = typer.Option(None, min=1, help="Requests decoded together."),
    queue_size: int | None = typer.Option(None, min=0, help="Requests waiting beyond the batch before 429."),
    no_auth: bool = typer.Option(False, "--no-auth", help="Ask no token: every caller is the owner (loopback only)."),
) -> None:
    """Answer OpenAI API clients with the model and its adapter; conversations become reading."""
    from reverie.serve import serve

    serve(settings(serve={"host": host, "port": port, "batch_size": batch_size, "queue_size": queue_size}), log=notice,
          no_auth=no_auth)
