"""An in-process vLLM backend: `vllm.LLM` generates, with the adapter in use as a LoRA request.

    pip install 'reverie[vllm]'          # then, in the config: dream: {backend: vllm}
    backend = VLLMBackend("/models/qwen2", adapter={"name": "night-3", "path": "/home/adapters/night-3"})
    backend.generate([[{"role": "user", "content": "Hi"}]], SamplingParams(seed=1))

Prompts are written in the tokenizer's own chat template (reverie.models.backend.format_chat, as
the transformers backend writes them) and sent to vLLM as token ids, without special tokens
added again. A call goes to vLLM in one `LLM.generate`, each prompt with its own sampling
settings; request i of a call is seeded seed + i, so a call is reproducible. The adapter (a
store row: `name`, `path`) is sent with every request; reverie saves adapters in the PEFT
layout vLLM loads (tests/test_vllm_adapters.py). vLLM takes most of the GPU's memory; the dream
gate's perplexity still loads the model with transformers beside it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from reverie.errors import ReverieError
from reverie.models.backend import Generation, SamplingParams, format_chat

MISSING = "dream.backend vllm needs the vllm extra: pip install 'reverie[vllm]'"
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the values vLLM accepts for max_lora_rank


def lora_rank(adapter_path: Path | str | None) -> int:
    """vLLM's max_lora_rank for the adapter: its rank, rounded up to a value vLLM accepts; 64 without one."""
    if adapter_path is None:
        return 64
    r = json.loads((Path(adapter_path) / "adapter_config.json").read_text(encoding="utf-8"))["r"]
    return next((k for k in LORA_RANKS if k >= r), r)


class VLLMBackend:
    def __init__(self, model_path: Path | str, adapter=None, seed: int = 0, identity: str | None = None):
        try:
            import vllm
            from vllm.lora.request import LoRARequest
        except ImportError:
            raise ReverieError(MISSING) from None
        from reverie.models.loading import model_identity

        self.vllm = vllm
        self.llm = vllm.LLM(model=str(model_path), enable_lora=True, seed=seed, dtype="auto",
                            max_lora_rank=lora_rank(adapter["path"] if adapter else None))
        self.tokenizer = self.llm.get_tokenizer()
        self.lora = LoRARequest(adapter["name"], 1, str(adapter["path"])) if adapter else None
        self.identity = identity or model_identity(Path(model_path))

    def sampling(self, params: SamplingParams, seed: int):
        """Our sampling settings as vLLM's (top_k 0, ours for off, is -1 there)."""
        return self.vllm.SamplingParams(
            temperature=params.temperature, top_p=params.top_p, top_k=params.top_k or -1, min_p=params.min_p,
            repetition_penalty=params.repetition_penalty, max_tokens=params.max_new_tokens,
            stop=list(params.stop) or None, seed=seed,
        )

    def generate(self, prompts, params, progress=None):
        params = params.resolved()
        return self.generate_mixed(prompts, [params] * len(prompts), params.seed, progress)

    def generate_mixed(self, prompts, params: Sequence[SamplingParams], seed: int, progress=None):
        """Each prompt with its own sampling settings, in one vLLM call; prompt i is seeded
        seed + i (`params[i].seed` is ignored)."""
        if not prompts:
            return []
        texts = [p if isinstance(p, str) else format_chat(self.tokenizer, p) for p in prompts]
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]  # the template wrote them
        seeds = [seed + i for i in range(len(prompts))]
        outs = self.llm.generate([{"prompt_token_ids": x} for x in ids],
                                 [self.sampling(p, s) for p, s in zip(params, seeds, strict=True)],
                                 lora_request=self.lora, use_tqdm=False)
        if progress:
            progress(len(prompts))
        return [self._generation(r, s) for r, s in zip(outs, seeds, strict=True)]

    @staticmethod
    def _generation(request_output, seed: int) -> Generation:
        out = request_output.outputs[0]
        n = len(out.token_ids)
        # vLLM keeps the end-of-sequence token (stop_reason None) or stop token (its id) in token_ids
        reason = getattr(out, "stop_reason", None)
        if out.finish_reason == "stop" and (reason is None or isinstance(reason, int)):
            n = max(0, n - 1)
        return Generation(text=out.text.strip(), n_tokens=n, prompt_tokens=len(request_output.prompt_token_ids),
                          finish_reason="length" if out.finish_reason == "length" else "stop", seed=seed)
