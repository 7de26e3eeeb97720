"""Devices and precision (issue 23 part 1): `model.device` and `model.dtype` resolve (auto is the
CPU here, bfloat16 only on a GPU that has it), autocast follows the device, and the hot paths
(generation, training, the meter's scoring) create no tensor off the model's device.

How the last is checked without a GPU: inside `torch.device("meta")` every tensor made without
an explicit device lands on the meta device, which holds no data. The model stays on the CPU, so
a hot path that makes a tensor without saying where (`torch.zeros(...)` rather than
`torch.zeros(..., device=model's)`) mixes meta with CPU tensors or copies out of a meta tensor,
and fails: on a GPU, that tensor would have been on the CPU beside CUDA weights."""

from __future__ import annotations

import pytest
import torch

from reverie.config import load_settings
from reverie.errors import ReverieError
from reverie.models import SamplingParams, TransformersBackend, load_model
from reverie.models.loading import resolve_device, resolve_dtype
from reverie.sleep import train as training


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (conftest.one_thread)."""


def test_auto_is_the_cpu_here_and_a_missing_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(ReverieError, match="no CUDA GPU"):
        resolve_device("cuda:0")
    assert resolve_dtype("auto", "cpu") == "float32" and resolve_dtype("bfloat16", "cpu") == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ReverieError, match="2 CUDA GPU"):
        resolve_device("cuda:2")
    for bf16, want in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda bf16=bf16: bf16)
        assert resolve_dtype("auto", "cuda:1") == want
        assert training.use_autocast("auto", "cuda") is bf16
    assert training.use_autocast("off", "cuda") is False


def test_device_settings_are_checked(tmp_path):
    assert load_settings(home=tmp_path, environ={}).model.device == "auto"
    assert load_settings(home=tmp_path, environ={}).model.dtype == "auto"
    for ok in ("cpu", "cuda", "cuda:3", "mps"):
        assert load_settings(home=tmp_path, environ={"REVERIE_MODEL__DEVICE": ok}).model.device == ok
    with pytest.raises(ReverieError, match="model.device"):
        load_settings(home=tmp_path, environ={"REVERIE_MODEL__DEVICE": "gpu"})


def test_the_model_loads_on_the_resolved_device_and_dtype(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = load_model(str(tiny_model_dir), tmp_path, threads=1)
    assert loaded.model.device.type == "cpu" and loaded.model.dtype == torch.float32
    assert loaded.model.config._attn_implementation == "sdpa"


PROMPTS = [[{"role": "user", "content": "Hello there, tell me about Paris"}], "Paris is", "The river",
           [{"role": "user", "content": "Why is the sky blue?"}]]


@pytest.mark.parametrize("engine", [True, False])
def test_generation_makes_no_tensor_off_the_model_device(tiny, engine):
    backend = TransformersBackend(tiny, batch_size=2, engine=engine)
    mixed = [SamplingParams(temperature=0.8, top_p=0.9, repetition_penalty=1.2, max_new_tokens=5),
             SamplingParams(temperature=0, max_new_tokens=4), SamplingParams(top_k=5, min_p=0.1, max_new_tokens=6),
             SamplingParams(max_new_tokens=3)]
    want = [g.text for g in backend.generate_mixed(PROMPTS, mixed, seed=3)]
    if backend.engine is not None:
        backend.engine.prefix.clear()
    with torch.device("meta"):
        got = [g.text for g in backend.generate_mixed(PROMPTS, mixed, seed=3)]
    assert got == want


def test_training_and_scoring_make_no_tensor_off_the_model_device(tiny, tmp_path):
    from reverie.config import SleepConfig
    from reverie.meter.model_metrics import perplexities
    from reverie.models.lora import new_lora
    from reverie.sleep.data import Example, encode

    tok = tiny.tokenizer
    cfg = SleepConfig(rank=4, batch_tokens=128, epochs=1, grad_accum=2, kl_weight=1.0, entropy_weight=0.1)
    rows = [encode(tok, Example(f"It was {y}.", f"When was the bridge number {i} built?", "replay"), 64)
            for i, y in enumerate((1852, 1901, 1969, 1066))]
    rows += [encode(tok, Example("The river flows through the old town to the sea.", None, "general"), 64)]
    torch.manual_seed(0)
    model = new_lora(tiny.model, cfg)
    with torch.device("meta"):
        result = training.train(model, tok, rows, cfg, seed=1, checkpoint=tmp_path / "ck.pt")
        ppl = perplexities(tiny, ["The quick brown fox jumps over the lazy dog."])
    assert result.steps >= 1 and all(torch.isfinite(torch.tensor(result.history)))
    assert ppl[0] > 1
