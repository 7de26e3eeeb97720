"""Benchmark: `reverie serve` under load, concurrent streaming clients against one after another.

    python bench/serve_load.py --clients 50 --max-tokens 32 --models /tmp/exp/home/models

Starts the server in-process (uvicorn in a thread, 127.0.0.1, a free port) on the default model in
a scratch home, then sends the same `--clients` short questions twice with the official `openai`
client: all at once (each its own streaming request) and one after another. Each request has
its own seed and `store: false` (a stored answer would be recalled into the next prompt and make
the two runs differ). Reports per request the time to the first content token and to the last,
p50 and p95 of both, and the aggregate generated tokens/s; and checks that every concurrent
stream is exactly the text the same request got alone (reverie's engine draws each row from its
own random stream, so batching must not change a word). Prints the figures as JSON (also written to
--out). `--smoke`: seconds, 3 clients on the tiny model (bench/common.py).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import threading
import time
from pathlib import Path

import common  # bench/ is on the path: run as a script

QUESTIONS = [
    "What is the capital of France?", "Why is the sky blue?", "Tell me a joke.", "How do plants make food?",
    "What is a prime number?", "Name three colours.", "Why do cats purr?", "What is rain?",
    "How far is the Moon?", "What is a verb?",
]


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


async def one(client, i: int, max_tokens: int) -> dict:
    t0 = time.perf_counter()
    first, text, tokens = None, [], 0
    stream = await client.chat.completions.create(
        model="reverie", messages=[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}], max_tokens=max_tokens,
        seed=1000 + i, stream=True, stream_options={"include_usage": True}, store=False)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first = first or time.perf_counter()
            text.append(chunk.choices[0].delta.content)
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    end = time.perf_counter()
    return {"i": i, "ttft": (first or end) - t0, "total": end - t0, "tokens": tokens, "text": "".join(text)}


def summary(name: str, rows: list[dict], wall: float) -> dict:
    tokens = sum(r["tokens"] for r in rows)
    out = {"run": name, "requests": len(rows), "generated_tokens": tokens, "wall_s": round(wall, 2),
           "tokens_per_s": round(tokens / wall, 1)}
    for key in ("ttft", "total"):
        vals = [r[key] for r in rows]
        out[f"{key}_p50_s"] = round(percentile(vals, 0.5), 3)
        out[f"{key}_p95_s"] = round(percentile(vals, 0.95), 3)
    return out


async def drive(url: str, clients: int, max_tokens: int) -> dict:
    import openai

    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0, timeout=600)
    await one(client, 0, 4)  # warm up: first prefill, allocator
    t0 = time.perf_counter()
    together = await asyncio.gather(*(one(client, i, max_tokens) for i in range(clients)))
    wall_together = time.perf_counter() - t0
    t0 = time.perf_counter()
    alone = [await one(client, i, max_tokens) for i in range(clients)]
    wall_alone = time.perf_counter() - t0
    same = sum(a["text"] == b["text"] for a, b in zip(together, alone, strict=True))
    a, b = summary("concurrent", together, wall_together), summary("sequential", alone, wall_alone)
    return {"concurrent": a, "sequential": b, "speedup": round(a["tokens_per_s"] / b["tokens_per_s"], 2),
            "streams_identical": f"{same}/{clients}"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64, help="serve.batch_size (rows decoded together)")
    ap.add_argument("--threads", type=int, default=None, help="model.threads (torch threads); default torch's")
    ap.add_argument("--models", type=Path, default=None, help="a folder of converted models to reuse")
    ap.add_argument("--out", type=Path, default=None)
    args = common.parse(ap, argv, lambda d: {"clients": 3, "max_tokens": 4, "batch_size": 4, "threads": 1})

    import uvicorn

    from reverie.config import load_settings
    from reverie.serve.app import create_app

    home = common.scratch_home("reverie-serve-bench-")
    if args.models:
        (home / "models").symlink_to(args.models.resolve())  # the default model converted once, reused
    queue = max(0, args.clients - args.batch_size) + 8
    settings = load_settings(home=home, overrides={"serve": {"batch_size": args.batch_size, "queue_size": queue},
                                                   "model": {"threads": args.threads}})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(settings, log_line=lambda m: print(m, file=sys.stderr))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while app.state.service.status == "loading" or not server.started:
        time.sleep(0.1)
    if app.state.service.status != "ok":
        raise SystemExit(f"the model did not load: {app.state.service.error}")
    try:
        result = asyncio.run(drive(f"http://127.0.0.1:{port}", args.clients, args.max_tokens))
    finally:
        server.should_exit = True
        thread.join(30)
    import torch

    result |= {"clients": args.clients, "max_tokens": args.max_tokens, "batch_size": args.batch_size,
               "threads": torch.get_num_threads(),
               "model": app.state.service.identity}
    common.write_json(args.out, result)


if __name__ == "__main__":
    main()
