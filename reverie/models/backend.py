"""The generation backend interface and its transformers implementation.

A backend turns prompts into texts. Prompts are either chat message lists (formatted with the
tokenizer's own chat template) or raw strings. Later backends (OpenAI-compatible HTTP,
llama.cpp) implement the same `generate`.

Reproducibility: each Generation records the seed it was drawn with. With reverie's engine,
prompt i of a call seeded `seed` draws from its own stream `row_seed(seed, i)`, so its text does
not depend on the batch size or its neighbours; transformers' generate samples batch i after
`torch.manual_seed(seed + i)` (the same prompts, order, batch size and seed give the same texts).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

Messages = list[dict[str, str]]
Prompt = Messages | str


@dataclass
class SamplingParams:
    temperature: float = 0.7  # 0 = greedy
    top_p: float = 1.0
    min_p: float = 0.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 256
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, gen, **overrides) -> SamplingParams:
        """From a `reverie.config.GenerationConfig`, with keyword overrides (None = keep)."""
        values = {k: getattr(gen, k) for k in ("temperature", "top_p", "min_p", "top_k",
                                               "repetition_penalty", "max_new_tokens", "seed")}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def resolved(self) -> SamplingParams:
        """A copy with a concrete seed (drawn now if None), so it can be recorded."""
        seed = self.seed if self.seed is not None else random.SystemRandom().randrange(2**31)
        return SamplingParams(**{**asdict(self), "seed": seed})

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Generation:
    text: str
    n_tokens: int  # generated tokens (EOS excluded)
    prompt_tokens: int
    finish_reason: str  # 'stop' (EOS or a stop string) or 'length'
    seed: int | None = None


class Backend(Protocol):
    identity: str

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, progress: Callable[[int], None] | None = None
    ) -> list[Generation]: ...


def generate_mixed(backend, prompts: Sequence[Prompt], params: Sequence[SamplingParams], seed: int,
                   progress: Callable[[int], None] | None = None) -> list[Generation]:
    """Each prompt with its own sampling settings. A backend with its own `generate_mixed` runs
    them in shared batches; any other gets one `generate` call per distinct setting, group g
    sampled with seed + 7919 g. `params[i].seed` is ignored: `seed` decides."""
    native = getattr(backend, "generate_mixed", None)
    if native is not None:
        return native(prompts, params, seed, progress)
    return by_setting(prompts, params, seed, lambda ps, p: backend.generate(ps, p, progress))


def by_setting(prompts, params, seed: int, generate: Callable) -> list[Generation]:
    """One `generate(prompts, params)` call per distinct setting (for backends that take one)."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(params):
        groups.setdefault(repr(dataclasses.replace(p, seed=None)), []).append(i)
    results: list[Generation | None] = [None] * len(prompts)
    for g, members in enumerate(groups.values()):
        p = dataclasses.replace(params[members[0]], seed=(seed + 7919 * g) & 0x7FFFFFFF)
        for i, gen in zip(members, generate([prompts[i] for i in members], p), strict=True):
            results[i] = gen
    return results


def format_chat(tokenizer, messages: Messages, add_generation_prompt: bool = True) -> str:
    """The messages in the tokenizer's own chat template. A template that refuses a system turn
    (Gemma's raises) gets it at the head of the first user turn, as such models are prompted."""
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as exc:  # jinja2's TemplateError, from raise_exception() in the template
        if not messages or messages[0]["role"] != "system" or "system" not in str(exc).lower():
            raise
    system, rest = messages[0]["content"], list(messages[1:])
    if rest and rest[0]["role"] == "user":
        rest[0] = {**rest[0], "content": f"{system}\n\n{rest[0]['content']}"}
    else:
        rest.insert(0, {"role": "user", "content": system})
    return tokenizer.apply_chat_template(rest, tokenize=False, add_generation_prompt=add_generation_prompt)


def _cut_at_stop(text: str, stops: Sequence[str], finish: str) -> tuple[str, str]:
    """The text up to its first stop string (then finished by 'stop'), stripped."""
    for s in stops:
        if s in text:
            text, finish = text[: text.index(s)], "stop"
    return text.strip(), finish


def _generation_config(params: SamplingParams, tok):
    """transformers' GenerationConfig for `params` (greedy when temperature <= 0; cuts that are off stay None)."""
    from transformers import GenerationConfig

    greedy = params.temperature <= 0
    return GenerationConfig(
        max_new_tokens=params.max_new_tokens,
        do_sample=not greedy,
        temperature=None if greedy else params.temperature,
        top_p=None if greedy or params.top_p >= 1 else params.top_p,
        top_k=params.top_k if (params.top_k and not greedy) else None,
        min_p=params.min_p if (params.min_p and not greedy) else None,
        repetition_penalty=params.repetition_penalty if params.repetition_penalty != 1.0 else None,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        stop_strings=params.stop or None,
    )


class TransformersBackend:
    """Batched generation with a local transformers model.

    Llama-family models go through reverie.models.engine (continuous batching, static KV cache,
    prompt-prefix reuse across calls, exact top-p over a shortlist): measured 2.6x transformers'
    own generate on the 2-core CPU (BENCHMARKS.md); `stream` feeds it requests as they arise.
    Other architectures, or `engine=False`, use `model.generate` with left padding. Every
    Generation records the seed it was sampled with.
    """

    def __init__(self, loaded, batch_size: int = 8, engine: bool = True):
        from reverie.models import engine as fast

        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.identity = loaded.identity
        self.batch_size = batch_size
        self.engine = None
        if engine and fast.supports(self.model):
            eos = {self.tokenizer.eos_token_id}
            config_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
            eos |= set(config_eos if isinstance(config_eos, list) else [config_eos])
            self.engine = fast.Engine(self.model, {e for e in eos if e is not None})

    def format(self, prompt: Prompt) -> str:
        if isinstance(prompt, str):
            return prompt
        return format_chat(self.tokenizer, prompt)

    def generate(self, prompts, params, progress=None):
        params = params.resolved()
        return self.generate_mixed(prompts, [params] * len(prompts), params.seed, progress)

    def generate_mixed(self, prompts, params: Sequence[SamplingParams], seed: int, progress=None):
        """Each prompt with its own sampling settings, in shared batches of at most `batch_size`
        rows. `params[i].seed` is ignored: `seed` decides."""
        texts = [self.format(p) for p in prompts]
        if self.engine is None:  # transformers' generate takes one setting per call
            return by_setting(texts, params, seed, lambda ts, p: self._generate_hf(ts, p, progress))
        return self._generate_engine(texts, list(params), seed, progress)

    def _generate_engine(self, texts, params, seed, progress):
        from reverie.models.engine import row_seed

        # similar lengths enter the batch together; prompt i samples from row_seed(seed, i)
        queue = [(texts[i], params[i], row_seed(seed, i), i) for i in sorted(range(len(texts)), key=lambda i: len(texts[i]))]
        results: dict[int, Generation] = {}

        def pull(n: int) -> list:
            taken = queue[:n]
            del queue[:n]
            return taken

        def done(i, gen) -> None:
            results[i] = gen
            if progress:
                progress(1)

        self.stream(pull, done)
        return [results[i] for i in range(len(texts))]

    # -- continuous batching (reverie.dream.run streams dream steps through it) -----------------
    @property
    def streams(self) -> bool:
        return self.engine is not None

    def stream(self, pull: Callable[[int], list[tuple[Prompt, SamplingParams, int, object]]],
               done: Callable[[object, Generation], None]) -> None:
        """Generate until `pull(n)` (up to n (prompt, params, seed, tag) tuples) runs dry; each
        result goes to `done(tag, generation)` as soon as it is finished, and `done` may make
        more prompts available. Each prompt draws from its own stream seeded `seed`."""
        import torch

        from reverie.models.engine import Request

        if self.engine is None:
            raise TypeError("streaming needs reverie's engine (a Llama-family model)")
        tok = self.tokenizer

        def take(n: int) -> list[Request]:
            got = pull(n)
            if not got:
                return []
            ids = tok([self.format(p) for p, _, _, _ in got], add_special_tokens=False)["input_ids"]
            return [Request(x, params, seed, self._stop_test(params.stop), tag)
                    for x, (_, params, seed, tag) in zip(ids, got, strict=True)]

        with torch.inference_mode():
            self.engine.serve(take, lambda r, out: done(r.tag, self._generation(r, out)), self.batch_size)

    def _stop_test(self, stops: Sequence[str]) -> Callable[[list[int]], bool] | None:
        if not stops:
            return None
        tok = self.tokenizer
        return lambda out: any(s in tok.decode(out[-16:], skip_special_tokens=True) for s in stops)

    def _generation(self, r, out) -> Generation:
        text, finish = _cut_at_stop(self.tokenizer.decode(out.ids, skip_special_tokens=True), r.params.stop,
                                    out.finish_reason)
        return Generation(text=text, n_tokens=len(out.ids), prompt_tokens=len(r.ids), finish_reason=finish,
                          seed=r.seed)

    def _generate_hf(self, texts, params, progress):
        config = _generation_config(params, self.tokenizer)
        # Sort by length so batches pad little; restore the order afterwards.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: dict[int, Generation] = {}
        for b, start in enumerate(range(0, len(order), self.batch_size)):
            idx = order[start : start + self.batch_size]
            gens = self._generate_hf_batch([texts[i] for i in idx], config, params, params.seed + b)
            results.update(zip(idx, gens, strict=True))
            if progress:
                progress(len(idx))
        return [results[i] for i in range(len(texts))]

    def _generate_hf_batch(self, texts, config, params, seed: int) -> list[Generation]:
        """One padded batch through `model.generate`, sampled after `torch.manual_seed(seed)`."""
        import torch

        tok = self.tokenizer
        # add_special_tokens=False: the chat template already wrote BOS/role tokens.
        enc = tok(texts, padding=True, add_special_tokens=False)
        enc = {k: torch.tensor(v, device=self.model.device) for k, v in enc.items()}  # where the model is
        torch.manual_seed(seed)
        with torch.inference_mode():
            gen = self.model.generate(**enc, generation_config=config, tokenizer=tok if params.stop else None)
        new = gen[:, enc["input_ids"].shape[1] :]
        return [self._hf_generation(new[row].tolist(), int(enc["attention_mask"][row].sum()), params.stop, seed)
                for row in range(len(texts))]

    def _hf_generation(self, ids: list[int], prompt_tokens: int, stops: Sequence[str], seed: int) -> Generation:
        """One row of generate's output: cut at EOS (finished by 'stop'), pads dropped, stop strings applied."""
        tok = self.tokenizer
        finish = "length"
        if tok.eos_token_id in ids:
            ids = ids[: ids.index(tok.eos_token_id)]
            finish = "stop"
        while ids and ids[-1] == tok.pad_token_id:
            ids.pop()
        text, finish = _cut_at_stop(tok.decode(ids, skip_special_tokens=True), stops, finish)
        return Generation(text=text, n_tokens=len(ids), prompt_tokens=prompt_tokens, finish_reason=finish, seed=seed)

    def chat(self, messages: Messages, params: SamplingParams) -> Generation:
        return self.generate([messages], params)[0]
