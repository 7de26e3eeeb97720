"""Training checkpoints: adapter weights, optimizer, scheduler, step and RNG state in one file.

    save_checkpoint(path, model, optimizer, scheduler, step, extra)
    step, extra = load_checkpoint(path, model, optimizer, scheduler)   # (0, {}) when none

Written to a temporary file and renamed, so a kill during a save leaves the previous checkpoint.
A night resumes from its checkpoint: same plan (deterministic in the night's seed), steps already
done skipped, the dropout RNG restored.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import torch


def save_checkpoint(path: Path, model, optimizer, scheduler, step: int, extra: dict) -> None:
    from peft import get_peft_model_state_dict

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "adapter": get_peft_model_state_dict(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "extra": extra,
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, model, optimizer, scheduler) -> tuple[int, dict]:
    from peft import set_peft_model_state_dict

    if not path.is_file():
        return 0, {}
    state = torch.load(path, weights_only=False)
    set_peft_model_state_dict(model, state["adapter"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    return state["step"], state["extra"]
