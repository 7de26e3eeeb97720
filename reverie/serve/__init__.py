"""`reverie serve`: an OpenAI-compatible server over the model, its adapters and what it read.

    reverie serve --port 8000        # pip install -e ".[serve]" (FastAPI, uvicorn)

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    client.chat.completions.create(model="reverie", messages=[{"role": "user", "content": "Hi"}])

Routes: POST /v1/chat/completions (streamed or not), POST /v1/completions, GET /v1/models,
POST /v1/embeddings (all-MiniLM-L6-v2), and a public GET /health (503 while the model loads).
`model` picks what answers: `reverie` (the base model with the caller's adapter in use: the
owner's is the one `reverie use` or the owner's last kept night chose, a user's the one their
last kept night chose), `reverie-base`, or one of the caller's adapters by its per-night name
(`night-3`). Chat answers recall what the caller may (the shared reading and their own) and list
it as `citations`; served conversations are stored as the caller's reading for their next night
unless the request says `store: false`. `POST /v1/documents` keeps a document the caller sends.
Callers are told apart by bearer tokens (`reverie users add NAME`; `serve.api_key` is the
owner's). See reverie.serve.app (routes, threads), .auth (callers), .scheduler (batching),
.memory (recall, storing).
"""

from __future__ import annotations

import ipaddress
import socket

from reverie.errors import ReverieError

LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings, log=None, no_auth: bool = False) -> None:
    """Run the server until interrupted (Ctrl-C, SIGTERM). Raises ReverieError for bad settings,
    a port in use, or a model that cannot be loaded. `no_auth`: no tokens, every caller is the
    owner (loopback only)."""
    from reverie.store import Store

    cfg = settings.serve
    say = log or (lambda msg: None)
    if no_auth and not is_loopback(cfg.host):
        raise ReverieError(f"--no-auth serves on loopback only (127.0.0.1, ::1), not on {cfg.host}")
    with Store.open(settings.db_path) as store:
        users = store.has_users()
    if not is_loopback(cfg.host) and not cfg.api_key and not users:
        raise ReverieError(
            f"serving on {cfg.host} without a key would show everything you read to anyone who can reach it; "
            "add a user (`reverie users add NAME`), set serve.api_key (REVERIE_SERVE__API_KEY) or serve on 127.0.0.1"
        )
    if no_auth:
        say("warning: --no-auth: no token is asked; every caller on this machine is the owner and sees what you read")
    elif not cfg.api_key and not users:
        say("no user and no serve.api_key: every caller on this machine is the owner (`reverie users add NAME`)")
    try:
        import uvicorn

        from reverie.serve.app import create_app
    except ImportError as exc:
        raise ReverieError(f"reverie serve needs FastAPI and uvicorn ({exc.name} is missing): "
                           "pip install 'reverie[serve]'") from None
    _check_port(cfg.host, cfg.port)
    failure: list[str] = []
    server = None

    def failed(message: str) -> None:
        failure.append(message)
        if server is not None:
            server.should_exit = True

    app = create_app(settings, log_line=log, on_failure=failed, no_auth=no_auth)
    server = uvicorn.Server(uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning",
                                           timeout_graceful_shutdown=5))
    if log:
        log(f"serving http://{cfg.host}:{cfg.port}/v1 (loading the model; /health answers 503 until it is ready)")
    server.run()
    if failure:
        raise ReverieError(f"the model could not be loaded: {failure[0]}")


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ReverieError(f"cannot listen on {host}:{port}: {exc.strerror} (choose another --port)") from None


__all__ = ["is_loopback", "serve"]
