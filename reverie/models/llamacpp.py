"""A llama.cpp backend through llama-cpp-python (optional extra: pip install 'reverie[llamacpp]').

    backend = LlamaCppBackend("/models/smollm2.gguf", threads=2)

Prompts are generated one after another (llama-cpp-python has no batched sampling API); the
speed comes from llama.cpp's quantised CPU kernels. 'default' means the GGUF file of the default
model; a model directory is refused (llama.cpp needs a .gguf file). Prompt i of a call is
seeded with seed + i.
"""

from __future__ import annotations

from pathlib import Path

from reverie.errors import ReverieError
from reverie.models.backend import Generation, SamplingParams


class LlamaCppBackend:
    def __init__(self, path: str, threads: int | None = None, n_ctx: int = 4096):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ReverieError(
                "the llamacpp backend needs llama-cpp-python: pip install 'reverie[llamacpp]'"
            ) from None
        if path in ("default", ""):
            from reverie.models.default import default_gguf

            gguf = default_gguf()
        else:
            gguf = Path(path).expanduser()
            if gguf.suffix.lower() != ".gguf" or not gguf.is_file():
                raise ReverieError(f"the llamacpp backend needs a .gguf model file, not {path}")
        self.llm = Llama(model_path=str(gguf), n_ctx=n_ctx, n_threads=threads, verbose=False)
        self.identity = f"{gguf.stem}@llama.cpp"

    def _one(self, prompt, params: SamplingParams, seed: int) -> Generation:
        kwargs = dict(
            max_tokens=params.max_new_tokens, temperature=params.temperature, top_p=params.top_p,
            top_k=params.top_k, min_p=params.min_p, repeat_penalty=params.repetition_penalty,
            stop=params.stop or None, seed=seed,
        )
        if isinstance(prompt, str):
            out = self.llm.create_completion(prompt, **kwargs)
            text = out["choices"][0]["text"]
        else:
            out = self.llm.create_chat_completion(messages=prompt, **kwargs)
            text = out["choices"][0]["message"]["content"] or ""
        usage = out.get("usage") or {}
        return Generation(
            text=text.strip(),
            n_tokens=int(usage.get("completion_tokens", 0)),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            finish_reason="length" if out["choices"][0].get("finish_reason") == "length" else "stop",
            seed=seed,
        )

    def generate(self, prompts, params, progress=None):
        params = params.resolved()
        results = []
        for i, p in enumerate(prompts):
            results.append(self._one(p, params, params.seed + i))
            if progress:
                progress(1)
        return results
