"""Loading a causal LM and its tokenizer from 'default', a Hugging Face directory, or a .gguf file.

GGUF files (the default included) are converted once into a safetensors directory under
`<home>/models/` and loaded from there afterwards.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from reverie.errors import ReverieError
from reverie.models.default import DEFAULT_NAME, convert_gguf, default_gguf


@dataclass
class LoadedModel:
    model: object  # transformers PreTrainedModel, in eval mode
    tokenizer: object  # transformers PreTrainedTokenizerBase, left padding
    identity: str  # stable id of the base weights: adapters record it
    path: Path  # the safetensors directory it was loaded from

    @property
    def name(self) -> str:
        return self.identity.split("@", 1)[0]


def _gguf_cache_dir(gguf: Path, models_dir: Path) -> Path:
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{st.st_size}".encode()).hexdigest()[:10]
    return models_dir / f"{gguf.stem}-{key}"


def resolve_model_path(spec: str, models_dir: Path, log=None) -> Path:
    """Map a model spec to a loadable Hugging Face directory, converting GGUF once if needed."""
    if spec in ("default", "", None):
        gguf = default_gguf()
        return convert_gguf(gguf, models_dir / f"{DEFAULT_NAME}-{gguf.stem.rsplit('.', 1)[-1]}", log=log)
    path = Path(spec).expanduser()
    if not path.exists():
        raise ReverieError(f"model path {spec} does not exist (use 'default', a model directory or a .gguf file)")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ReverieError(f"{spec} is not a model: expected a directory with config.json or a .gguf file")
        return convert_gguf(path, _gguf_cache_dir(path, models_dir), log=log)
    if not (path / "config.json").is_file():
        raise ReverieError(f"{spec} is not a model directory: it has no config.json")
    return path


def model_identity(path: Path) -> str:
    """'<name>@<hash>' from config.json and the weight files' names and sizes: cheap and stable."""
    h = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
    name = path.name
    source = path / "SOURCE"
    if source.is_file():
        name = Path(source.read_text(encoding="utf-8").strip()).stem
    return f"{name}@{h.hexdigest()[:12]}"


def resolve_device(spec: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is there, else 'mps' (Apple), else 'cpu'; others as given,
    refused when torch cannot use them."""
    import torch

    if spec in ("auto", "", None):
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ReverieError(f"model.device is {spec}, but torch sees no CUDA GPU (torch {torch.__version__})")
        index = int(spec.split(":", 1)[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise ReverieError(f"model.device is {spec}, but torch sees {torch.cuda.device_count()} CUDA GPU(s)")
    if spec == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ReverieError("model.device is mps, but torch has no MPS backend here")
    return spec


def native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16); elsewhere oneDNN
    emulates it, 3-4x slower than float32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(spec: str, device: str) -> str:
    """'auto' -> 'bfloat16' on a CUDA GPU that computes it, else 'float32' (the CPU's exact choice)."""
    if spec != "auto":
        return spec
    import torch

    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return "bfloat16"
    return "float32"


def model_device(model):
    """The device of the model's weights (a PEFT wrapper's included)."""
    return next(model.parameters()).device


def load_model(spec: str, models_dir: Path, dtype: str = "auto", threads: int | None = None, log=None,
               device: str = "auto"):
    """Load model and tokenizer onto `device` (resolve_device). `dtype`: 'auto', 'float32' or 'bfloat16'.
    Attention is transformers' SDPA (flash kernels on GPUs that have them)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    path = resolve_model_path(spec, Path(models_dir), log=log)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), attn_implementation="sdpa")
    except Exception as exc:
        raise ReverieError(f"{path} could not be loaded as a causal language model: {str(exc).splitlines()[0]}") from None
    if device != "cpu":
        model.to(device)
    model.eval()
    tokenizer.padding_side = "left"  # decoder-only batches must be left-padded for generation
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=model, tokenizer=tokenizer, identity=model_identity(path), path=path)

