"""Model metrics on the tiny model: perplexity, next-token entropy, KL(base || adapted) with LoRA."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reverie.errors import ReverieError
from reverie.meter import meter_texts
from reverie.meter.model_metrics import (
    answer_log_probs,
    kl_base_adapted,
    next_token_entropy,
    perplexities,
    text_nll,
    with_adapter,
)
from reverie.models import load_model
from reverie.models.tiny import make_tiny_model

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital of France, and the river flows to the sea.",
    "Hi",
    "",
]


@pytest.fixture
def loaded(tiny_model_dir, tmp_path):
    return load_model(str(tiny_model_dir), tmp_path / "models")


def _lora(tiny_model_dir, tmp_path, name: str, init: bool):
    from peft import LoraConfig, get_peft_model

    base = load_model(str(tiny_model_dir), tmp_path / "models")
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=init)
    torch.manual_seed(0)
    get_peft_model(base.model, config).save_pretrained(tmp_path / name)
    return tmp_path / name


def _manual_nll(loaded, text: str) -> tuple[float, int]:
    ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"]
    if ids.shape[1] < 2:
        return 0.0, 0
    with torch.no_grad():
        logits = loaded.model(ids).logits[0, :-1]
    return float(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum")), ids.shape[1] - 1


def test_batched_nll_equals_one_text_at_a_time(loaded):
    nll, counts = text_nll(loaded, TEXTS)
    for i, text in enumerate(TEXTS):
        expected, n = _manual_nll(loaded, text)
        assert counts[i] == n
        assert nll[i] == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_answer_log_probs_score_the_answer_alone_batched_or_not(loaded):
    prompts = ["Tell me a joke", "Why is the sky blue?", "Hi", "Hi"]
    answers = ["A cat, a dog and a computer walk into a bar.", "Because", "", ""]
    ended = [True, False, True, False]
    logp, counts = answer_log_probs(loaded, prompts, answers, ended)
    tok = loaded.tokenizer
    lengths = [len(tok(a, add_special_tokens=False)["input_ids"]) for a in answers]
    assert counts.tolist() == [n + e for n, e in zip(lengths, ended, strict=True)]  # the EOS of an ended answer
    assert counts[3] == 0 and logp[3] == 0 and logp[2] < 0  # nothing to score / only the EOS
    for i in range(len(prompts)):
        one, n = answer_log_probs(loaded, prompts[i : i + 1], answers[i : i + 1], ended[i : i + 1])
        assert n[0] == counts[i] and one[0] == pytest.approx(logp[i], rel=1e-4, abs=1e-4)


def test_perplexity_is_exp_mean_nll_and_nan_without_tokens(loaded):
    ppl = perplexities(loaded, TEXTS)
    nll, n = _manual_nll(loaded, TEXTS[0])
    assert ppl[0] == pytest.approx(math.exp(nll / n), rel=1e-4)
    assert math.isnan(ppl[3])


def test_entropy_is_within_zero_and_log_vocab(loaded):
    h = next_token_entropy(loaded, prompts=["Tell me a joke", "Why is the sky blue?"], texts=TEXTS)
    assert 0.0 <= h <= math.log(len(loaded.tokenizer)) + 1e-6


def test_prompt_entropy_is_that_of_the_first_answer_token(loaded):
    tok = loaded.tokenizer
    text = tok.apply_chat_template([{"role": "user", "content": "Tell me a joke"}], tokenize=False,
                                   add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(loaded.model(ids).logits[0, -1].float(), -1)
    expected = float(-(logp.exp() * logp).sum())
    assert next_token_entropy(loaded, prompts=["Tell me a joke"]) == pytest.approx(expected, rel=1e-5)


def test_kl_is_zero_for_a_fresh_lora_and_positive_for_a_random_one(loaded, tiny_model_dir, tmp_path):
    fresh = with_adapter(loaded, _lora(tiny_model_dir, tmp_path, "fresh", init=True))
    assert kl_base_adapted(fresh, prompts=["Tell me a joke"], texts=TEXTS) == pytest.approx(0.0, abs=1e-6)
    other = load_model(str(tiny_model_dir), tmp_path / "models")
    moved = with_adapter(other, _lora(tiny_model_dir, tmp_path, "moved", init=False))
    kl = kl_base_adapted(moved, prompts=["Tell me a joke"], texts=TEXTS)
    assert kl > 1e-4
    # The adapter is active by default and the base is back inside disable_adapter().
    plain = load_model(str(tiny_model_dir), tmp_path / "models")
    with moved.model.disable_adapter():
        assert next_token_entropy(moved, texts=TEXTS) == pytest.approx(next_token_entropy(plain, texts=TEXTS), rel=1e-5)
    assert next_token_entropy(moved, texts=TEXTS) != pytest.approx(next_token_entropy(plain, texts=TEXTS), rel=1e-5)


def test_kl_needs_an_adapter_and_a_scored_position(loaded, tiny_model_dir, tmp_path):
    with pytest.raises(ReverieError, match="adapter"):
        kl_base_adapted(loaded, prompts=["hi"])
    with pytest.raises(ReverieError, match="no position"):
        next_token_entropy(loaded, texts=[""])


def test_with_adapter_rejects_a_missing_or_foreign_adapter(loaded, tmp_path):
    from peft import LoraConfig, get_peft_model

    with pytest.raises(ReverieError, match="adapter_config.json"):
        with_adapter(loaded, tmp_path / "nowhere")
    wide = load_model(str(make_tiny_model(tmp_path / "wide", hidden=48)), tmp_path / "models")
    get_peft_model(wide.model, LoraConfig(r=4, target_modules=["q_proj"])).save_pretrained(tmp_path / "wide-lora")
    with pytest.raises(ReverieError, match="does not fit"):
        with_adapter(loaded, tmp_path / "wide-lora")


def test_meter_texts_adds_perplexity_under_a_reference(loaded):
    metrics = meter_texts(TEXTS[:3], semantic=False, reference=loaded)
    nll, counts = text_nll(loaded, TEXTS[:3])
    assert metrics["perplexity"] == pytest.approx(math.exp(nll.sum() / counts.sum()))
    assert metrics["perplexity_median"] == pytest.approx(float(np.median(np.exp(nll / counts))))
