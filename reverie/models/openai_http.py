"""An OpenAI-compatible HTTP backend: a vLLM or llama.cpp server (e.g. on a GPU) generates.

    backend = OpenAIBackend("http://127.0.0.1:8000/v1", model=None, batch_size=32)
    backend.generate([[{"role": "user", "content": "Hi"}]], SamplingParams(seed=1))

Chat prompts go to /chat/completions, raw strings to /completions, one request per prompt with
up to `batch_size` in flight (the server batches them). Standard library only (urllib). The
server's model is asked from /models when none is named. Sampling fields beyond OpenAI's
(top_k, min_p, repetition_penalty) are sent as vLLM and llama.cpp accept them; request i of a
call is seeded with seed + i, so a call is reproducible where the server honours seeds.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from reverie.errors import ReverieError
from reverie.models.backend import Generation, SamplingParams


class OpenAIBackend:
    def __init__(self, endpoint: str, model: str | None = None, batch_size: int = 32, timeout: float = 600.0):
        self.endpoint = endpoint.rstrip("/")
        self.batch_size = batch_size
        self.timeout = timeout
        self.model = model or self._first_model()
        self.identity = f"{self.model}@{self.endpoint}"

    def _request(self, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.endpoint + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:200]
            raise ReverieError(f"the server at {self.endpoint} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ReverieError(f"cannot reach the server at {self.endpoint}: {reason}") from None

    def _first_model(self) -> str:
        models = self._request("/models").get("data") or []
        if not models:
            raise ReverieError(f"the server at {self.endpoint} lists no model; set dream.api_model")
        return models[0]["id"]

    def _one(self, prompt, params: SamplingParams, seed: int) -> Generation:
        body = {
            "model": self.model,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": seed,
        }
        if params.top_k:
            body["top_k"] = params.top_k
        if params.min_p:
            body["min_p"] = params.min_p
        if params.repetition_penalty != 1.0:
            body["repetition_penalty"] = params.repetition_penalty
        if params.stop:
            body["stop"] = params.stop
        if isinstance(prompt, str):
            out = self._request("/completions", body | {"prompt": prompt})
            text = out["choices"][0]["text"]
        else:
            out = self._request("/chat/completions", body | {"messages": prompt})
            text = out["choices"][0]["message"]["content"] or ""
        usage = out.get("usage") or {}
        return Generation(
            text=text.strip(),
            n_tokens=int(usage.get("completion_tokens", len(text.split()))),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            finish_reason="length" if out["choices"][0].get("finish_reason") == "length" else "stop",
            seed=seed,
        )

    def generate(self, prompts, params, progress=None):
        params = params.resolved()
        results: list[Generation] = []
        with ThreadPoolExecutor(max_workers=self.batch_size) as pool:
            futures = [pool.submit(self._one, p, params, params.seed + i) for i, p in enumerate(prompts)]
            for f in futures:
                results.append(f.result())
                if progress:
                    progress(1)
        return results
