"""Adapters reverie saves load in vLLM as they are (issue 23 part 3), checked without vLLM against
the rules of its LoRA loader (vllm/lora/peft_helper.py, lora_model.py, utils.py):

- adapter_config.json has r, lora_alpha and target_modules (PEFTHelper.from_dict's required
  fields); modules_to_save is empty and use_dora false (PEFTHelper._validate_features refuses both);
- the weights are adapter_model.safetensors, every key `base_model.model.<module>.lora_A.weight` or
  `.lora_B.weight` (parse_fine_tuned_lora_name);
- each module's last name is a linear layer of the model (check_unexpected_modules against
  get_supported_lora_modules: vLLM's linear layers, whose names are the HF ones for these families).
  lm_head and embed_tokens are outside that set for most models, so 'all-linear' leaves them out."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from test_families import FAMILIES, family_dirs, family_loaded  # noqa: F401 (fixtures)

from reverie.config import SleepConfig
from reverie.models.lora import linear_names, new_lora, save_adapter


def vllm_problems(adapter_dir, supported: set[str]) -> list[str]:
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    problems = [f"missing {k}" for k in ("r", "lora_alpha", "target_modules") if k not in config]
    if config.get("modules_to_save"):
        problems.append("modules_to_save is set")
    if config.get("use_dora"):
        problems.append("DoRA")
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        return problems + ["no adapter_model.safetensors"]
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118
            parts = key.split(".")
            if parts[:2] != ["base_model", "model"] or parts[-1] != "weight" or parts[-2] not in ("lora_A", "lora_B"):
                problems.append(f"unparseable {key}")
            elif parts[-3] not in supported:
                problems.append(f"unexpected module {'.'.join(parts[2:-2])}")
    return problems


@pytest.mark.parametrize("family", FAMILIES)
def test_saved_adapters_meet_vllms_loader(family, family_loaded, tmp_path):  # noqa: F811 (the fixture)
    loaded = family_loaded[family]
    torch.manual_seed(0)
    model = new_lora(loaded.model, SleepConfig(rank=4))
    path = save_adapter(model, tmp_path / "night-1", loaded.identity)
    model.unload()  # the module-scoped model goes back as it was
    supported = set(linear_names(loaded.model))
    assert vllm_problems(path, supported) == []
    config = json.loads((path / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == sorted(supported)  # names, not 'all-linear' or full paths


def test_an_output_layer_adapter_is_flagged(family_loaded, tmp_path):  # noqa: F811 (the fixture)
    loaded = family_loaded["llama"]
    model = new_lora(loaded.model, SleepConfig(rank=4, target_modules=["q_proj", "lm_head"]))
    path = save_adapter(model, tmp_path / "head", loaded.identity)
    model.unload()
    problems = vllm_problems(path, set(linear_names(loaded.model)))
    # and, the output layer being tied to the embeddings, PEFT saves the tied weight beside its LoRA
    assert "unexpected module lm_head" in problems and any("lm_head.base_layer" in p for p in problems), problems
