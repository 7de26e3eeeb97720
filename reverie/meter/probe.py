"""The "it only knows three jokes" test: ask a model the same prompt N times, count its answers.

    from reverie.meter.probe import probe
    result = probe(backend, ["Tell me a joke"], n=50, params=SamplingParams(temperature=1.0))
    result.prompts[0].n_distinct        # distinct answers (semantic clusters)
    result.mean()["answer_tokens"]      # mean answer length in tokens, per prompt then over prompts
    result.as_dict()                    # per-prompt and mean figures, the seed included

Each prompt is sent as one user message (chat template) N times with the given sampling; the
answers are embedded once, clustered (`semantic.greedy_clusters` at `cluster_threshold`) and
metered (`sets.meter_texts`). Each answer's length in tokens, and whether it ended by itself, are
kept: a model that learned to answer in three words is collapsed even when its words differ.
Greedy decoding is deterministic, so under `temperature=0` each prompt is answered once and that
answer counts N times: one distinct answer by construction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from reverie.config import MeterConfig
from reverie.errors import ReverieError
from reverie.meter.embed import Embedder, make_embedder
from reverie.meter.semantic import greedy_clusters
from reverie.meter.sets import meter_texts


@dataclass
class PromptProbe:
    prompt: str
    answers: list[str]
    clusters: list[list[int]]  # answer indices, largest cluster first
    metrics: dict
    tokens: list[int] = field(default_factory=list)  # generated tokens of each answer (EOS excluded)
    ended: list[bool] = field(default_factory=list)  # each answer ended by itself, not at the token limit

    @property
    def n_distinct(self) -> int:
        return len(self.clusters)

    @property
    def answer_tokens(self) -> float:
        """Mean answer length in tokens (0 when the lengths are unknown)."""
        return sum(self.tokens) / len(self.tokens) if self.tokens else 0.0

    def as_dict(self, answers: bool = True) -> dict:
        out = {
            "prompt": self.prompt,
            "n_distinct": self.n_distinct,
            "answer_tokens": self.answer_tokens,
            "cluster_sizes": [len(c) for c in self.clusters],
            "examples": [self.answers[c[0]] for c in self.clusters],
            "metrics": self.metrics,
        }
        if answers:
            out["answers"] = self.answers
        return out


@dataclass
class ProbeResult:
    model: str
    adapter: str | None
    sampling: dict  # SamplingParams.as_dict() with the concrete seed
    n: int
    embedder: str
    prompts: list[PromptProbe]
    seconds: float
    model_metrics: dict  # next-token entropy over the prompts (and KL with an adapter), when measured

    @property
    def seed(self) -> int:
        return self.sampling["seed"]

    def mean(self) -> dict:
        """Mean over prompts of the distinct count, the answer length and every numeric set metric."""
        out = {"n_distinct": sum(p.n_distinct for p in self.prompts) / len(self.prompts),
               "answer_tokens": sum(p.answer_tokens for p in self.prompts) / len(self.prompts)}
        for key, value in self.prompts[0].metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[key] = sum(p.metrics[key] for p in self.prompts) / len(self.prompts)
        return out

    def as_dict(self, answers: bool = True) -> dict:
        return {
            "model": self.model,
            "adapter": self.adapter,
            "sampling": self.sampling,
            "seed": self.seed,
            "n": self.n,
            "embedder": self.embedder,
            "seconds": round(self.seconds, 2),
            "mean": self.mean(),
            "model_metrics": self.model_metrics,
            "prompts": [p.as_dict(answers) for p in self.prompts],
        }


def probe(
    backend,
    prompts: Sequence[str],
    n: int,
    params,
    *,
    config: MeterConfig | None = None,
    embedder: Embedder | None = None,
    adapter: str | None = None,
    loaded=None,
    progress: Callable[[int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> ProbeResult:
    """Sample `n` answers to each prompt with `backend` (a `TransformersBackend`) and `params`
    (`SamplingParams`; a seed is drawn and recorded when it has none), then cluster and meter
    them. `adapter` only labels the result: the backend's model already carries it.

    With `loaded` (the backend's `LoadedModel`), also measures the model itself on the prompts:
    the mean entropy of the first answer token and, when it carries an adapter, KL(base || adapted)
    (`reverie.meter.model_metrics`)."""
    if n < 2:
        raise ReverieError(f"a probe needs at least two answers per prompt (-n 2 or more), got {n}")
    if not prompts:
        raise ReverieError("a probe needs at least one prompt")
    config = config or MeterConfig()
    params = params.resolved()
    started = time.perf_counter()
    answers, tokens, ended = _sample_answers(backend, prompts, n, params, progress)
    embedder = embedder or make_embedder(config.embedder, config.max_tokens, config.embed_precision, warn)
    results = _cluster_and_meter(prompts, n, answers, tokens, ended, config, embedder)
    model_metrics = _measure_model(loaded, prompts) if loaded is not None else {}
    return ProbeResult(model=backend.identity, adapter=adapter, sampling=params.as_dict(), n=n,
                       embedder=embedder.name, prompts=results, seconds=time.perf_counter() - started,
                       model_metrics=model_metrics)


def _sample_answers(backend, prompts: Sequence[str], n: int, params, progress) -> tuple[list, list, list]:
    """Each prompt's n answers, their lengths in tokens and whether each ended by itself."""
    asked = 1 if params.temperature <= 0 else n  # greedy: the same answer every time
    requests = [[{"role": "user", "content": p}] for p in prompts for _ in range(asked)]
    gens = backend.generate(requests, params, progress)

    def per_prompt(values: list) -> list[list]:
        return [values[i * asked : (i + 1) * asked] * (n // asked) for i in range(len(prompts))]

    return (per_prompt([g.text for g in gens]), per_prompt([g.n_tokens for g in gens]),
            per_prompt([g.finish_reason == "stop" for g in gens]))


def _cluster_and_meter(prompts: Sequence[str], n: int, answers: list[list[str]], tokens: list[list[int]],
                       ended: list[list[bool]], config: MeterConfig, embedder: Embedder) -> list[PromptProbe]:
    """Each prompt's n answers clustered and metered, all of them embedded in one call."""
    vectors = embedder.encode([a for group in answers for a in group])
    results = []
    for i, prompt in enumerate(prompts):
        X = vectors[i * n : (i + 1) * n]
        clusters = sorted(greedy_clusters(X, config.cluster_threshold), key=len, reverse=True)
        metrics = meter_texts(answers[i], config=config, embedder=embedder, embeddings=X)
        results.append(PromptProbe(prompt, answers[i], clusters, metrics, tokens[i], ended[i]))
    return results


def _measure_model(loaded, prompts: Sequence[str]) -> dict:
    """The model's own figures on the prompts: first-token entropy, and KL(base || adapted) with an adapter."""
    from reverie.meter.model_metrics import kl_base_adapted, next_token_entropy

    out = {"next_token_entropy": next_token_entropy(loaded, prompts=prompts)}
    if hasattr(loaded.model, "disable_adapter"):
        out["kl_base_adapted"] = kl_base_adapted(loaded, prompts=prompts)
    return out
