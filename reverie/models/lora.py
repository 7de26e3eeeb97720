"""LoRA adapters on disk and in the store: create, save (PEFT format), check, attach, merge.

    from reverie.models.lora import new_lora, save_adapter, registered, attach, activate, merge
    model = new_lora(loaded.model, settings.sleep)            # trainable PeftModel
    save_adapter(model, path, base_identity=loaded.identity)  # adapter_config.json + safetensors
    row = registered(store, "night-3", loaded.identity)      # refuses an adapter of another base
    loaded = attach(loaded, row)                              # one more named adapter on the model
    with activate(loaded.model, "night-3"): ...               # None: the base model
    with strength(model, "night-3", 0.5): ...                 # half the adapter's update
    bake_strength(model, "night-3", 0.5)                      # ... made permanent in its weights

An adapter directory is plain PEFT (loadable by transformers, peft and vLLM) plus
`reverie_adapter.json`, which records the identity of the base model it was trained on.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

from reverie.errors import ReverieError

# PEFT asks transformers 5 for a renamed attribute each time it wraps a model; nothing to act on.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)

META = "reverie_adapter.json"


OUTPUT_AND_EMBEDDINGS = {"lm_head", "embed_tokens", "embed_out", "wte", "output"}


def linear_names(model) -> list[str]:
    """The last name of every linear layer inside the model's blocks, the output layer excluded:
    q_proj, k_proj, ... for Llama, Qwen2, Mistral and Gemma; qkv_proj, gate_up_proj for Phi-3."""
    import torch

    names = set()
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(module, torch.nn.Linear) and leaf not in OUTPUT_AND_EMBEDDINGS and "lora_" not in name:
            names.add(leaf)
    return sorted(names)


def resolve_targets(model, targets) -> list[str]:
    """`sleep.target_modules` for this architecture, as module names: 'all-linear' is every linear
    layer of the blocks (as PEFT means it: the output layer is left out), written out by name so
    that adapter_config.json lists what vLLM and others match against; named modules must exist."""
    have = linear_names(model)
    if targets == "all-linear":
        return have
    leaves = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in targets if t not in leaves]
    if missing:
        raise ReverieError(f"sleep.target_modules: {', '.join(missing)} not in this "
                           f"{getattr(model.config, 'model_type', 'model')} (its linear layers: {', '.join(have)}; "
                           "or 'all-linear')")
    return list(targets)


def lora_config(cfg, model=None):
    from peft import LoraConfig

    targets = resolve_targets(model, cfg.target_modules) if model is not None else cfg.target_modules
    return LoraConfig(
        r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets,
        bias="none", task_type="CAUSAL_LM",
    )


def new_lora(model, cfg):
    """A fresh LoRA (B = 0: the model is unchanged until trained) on the model, trainable."""
    from peft import get_peft_model

    return get_peft_model(model, lora_config(cfg, model))


def load_trainable(model, path: Path | str, base_identity: str):
    """The adapter at `path` on the model, trainable (night N continuing night N-1's adapter)."""
    from peft import PeftModel

    check_dir(path, base_identity)
    return PeftModel.from_pretrained(model, str(path), is_trainable=True)


def save_adapter(model, path: Path | str, base_identity: str, meta: dict | None = None) -> Path:
    """Save the active adapter at `path` (replacing it atomically: temp dir, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
    try:
        name = model.active_adapter
        model.save_pretrained(str(tmp), selected_adapters=[name])
        nested = tmp / name  # PEFT writes an adapter not named 'default' into a subfolder of its name
        if name != "default" and (nested / "adapter_config.json").is_file():
            for f in nested.iterdir():
                f.rename(tmp / f.name)
            nested.rmdir()
        (tmp / META).write_text(json.dumps({"base_model": base_identity, **(meta or {})}, indent=1), encoding="utf-8")
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def check_dir(path: Path | str, base_identity: str) -> None:
    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise ReverieError(f"{path} is not a LoRA adapter: expected a directory with adapter_config.json")
    base = read_meta(path).get("base_model")
    if base and base != base_identity:
        raise ReverieError(f"the adapter {path} was trained for the base model {base}, not {base_identity}")


def read_meta(path: Path | str) -> dict:
    """The adapter's `reverie_adapter.json` ({} for a plain PEFT adapter without one)."""
    meta = Path(path) / META
    return json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}


def registered(store, name: str, base_identity: str, user_id: int | None = None):
    """The store's row for adapter `name` of the owner (or of user `user_id`), refused when it
    belongs to another base model or was forgotten."""
    row = store.adapter(name)
    if row is None or row["user_id"] != user_id:
        raise ReverieError(f"no adapter {name!r} (see `reverie adapters`)")
    if row["verdict"] == "forgotten":
        raise ReverieError(f"the adapter {row['name']} was forgotten (`reverie forget`): its files are deleted")
    if row["base_model"] != base_identity:
        raise ReverieError(
            f"the adapter {row['name']} was trained for the base model {row['base_model']}, not {base_identity}"
        )
    check_dir(row["path"], base_identity)
    return row


def attach(loaded, row):
    """`loaded` with the registered adapter `row` added under its name (and active)."""
    from peft import PeftModel

    model = loaded.model
    try:
        if isinstance(model, PeftModel):
            model.load_adapter(row["path"], adapter_name=row["name"])
            model.set_adapter(row["name"])
        else:
            model = PeftModel.from_pretrained(model, row["path"], adapter_name=row["name"])
    except (ValueError, RuntimeError, KeyError) as exc:
        raise ReverieError(f"the adapter {row['name']} does not fit the model: {str(exc).splitlines()[0]}") from None
    model.eval()
    return replace(loaded, model=model)


@contextlib.contextmanager
def activate(model, name: str | None):
    """Within the block the model runs with adapter `name`, or as the base model for None."""
    if name is None:
        if hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                yield
        else:
            yield
        return
    model.set_adapter(name)
    yield


def _lora_layers(model, name: str) -> list:
    return [m for m in model.modules() if isinstance(getattr(m, "scaling", None), dict) and name in m.scaling]


@contextlib.contextmanager
def strength(model, name: str, factor: float):
    """Within the block adapter `name`'s update (B A x scaling) is multiplied by `factor`: the model
    runs at a point on the line between the base model and the adapted one (as WiSE-FT, Wortsman et
    al. 2022, interpolates weights). A LoRA update is linear in its scaling, so this is exact."""
    layers = _lora_layers(model, name)
    before = [m.scaling[name] for m in layers]
    try:
        for m, s in zip(layers, before, strict=True):
            m.scaling[name] = s * factor
        yield
    finally:
        for m, s in zip(layers, before, strict=True):
            m.scaling[name] = s


def bake_strength(model, name: str, factor: float) -> None:
    """Scale adapter `name`'s B matrices by `factor`, so that the saved adapter (plain PEFT) carries
    the strength the gate chose, for any tool that loads it."""
    import torch

    with torch.no_grad():
        for m in _lora_layers(model, name):
            m.lora_B[name].weight.mul_(factor)


def merge(loaded, row, out_dir: Path | str) -> Path:
    """Write base + adapter `row` merged into plain weights (a standalone HF model) at `out_dir`."""
    from peft import PeftModel

    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ReverieError(f"{out_dir} exists and is not empty; choose another --out")
    model = PeftModel.from_pretrained(loaded.model, row["path"]).merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    loaded.tokenizer.save_pretrained(str(out_dir))
    return out_dir
