"""Any Hugging Face causal LM (issue 23 part 2): tiny random models of four families (Llama,
Qwen2, Mistral, Gemma), each with its own chat template, go through read -> dream -> sleep ->
quiz -> merge with the CLI; LoRA's 'all-linear' resolves per architecture; the engine serves the
Llama-like ones (the same logits and greedy texts as transformers) and the others fall back to
transformers' generate."""

from __future__ import annotations

import json

import pytest
import torch

from reverie.models import SamplingParams, TransformersBackend, load_model
from reverie.models.engine import supports
from reverie.models.tiny import FAMILIES, make_tiny_model

DOC = ("# Vell Harbour\n\nThe lighthouse of Vell Harbour was built in 1852 by Mara Quill. "
       "Its lamp burns whale oil and can be seen from 30 miles away. The harbour last froze in 1901.\n")
QUIZ = [("The lighthouse of Vell Harbour was built in what year by Mara Quill?", "1852"),
        ("The harbour last froze in what year?", "1901")]
ENGINE = {"llama": True, "qwen2": True, "mistral": True, "gemma": False}



def reading(folder):
    """(the document, its quiz file) written under `folder`."""
    doc = folder / "vell.md"
    doc.write_text(DOC, encoding="utf-8")
    quiz = folder / "quiz.jsonl"
    quiz.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in QUIZ), encoding="utf-8")
    return doc, quiz


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (conftest.one_thread)."""


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {f: make_tiny_model(root / f"tiny-{f}", family=f) for f in FAMILIES}


@pytest.fixture(scope="module")
def family_loaded(family_dirs, tmp_path_factory):
    models = tmp_path_factory.mktemp("family-models")
    return {f: load_model(str(d), models, threads=1) for f, d in family_dirs.items()}


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_runs_a_night_through_the_cli(family, family_dirs, home, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("REVERIE_MODEL__PATH", str(family_dirs[family]))
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(
        "generation: {seed: 5, max_new_tokens: 6}\nmodel: {threads: 1}\nmeter: {embedder: tfidf}\n"
        "dream: {min_grounded: 0, max_perplexity: 1.0e+9, max_rare_rate: 1, baseline: false}\n"
        # 'all-linear': the attention and MLP projections each architecture names its own way
        "sleep: {objective: sft, target_modules: all-linear, rank: 4, alpha: 8, batch_tokens: 256, epochs: 2,\n"
        "        lr: 0.01, self_replay: 0, max_perplexity_rise: 1.0e+30, max_vendi_drop: 1.0,\n"
        "        max_length_change: 1.0e+30, max_probe_kl: 1.0e+30}\n"
        "quiz: {probe_prompts: ['Tell me a joke.'], probe_n: 2, probe_max_new_tokens: 4, max_new_tokens: 4,\n"
        "       own_text_paragraphs: 2, perplexity_tokens: 64}\n",
        encoding="utf-8")
    doc, quiz = reading(tmp_path)

    assert (r := cli("read", doc)).code == 0, r.err
    assert (r := cli("dream", "--generators", "cloze", "--budget", "200", "--docs", "all")).code == 0, r.err
    r = cli("sleep", "--quiz", quiz)
    assert r.code == 0, r.err
    assert "kept: night-1" in r.out or "rejected: night-1" in r.out, r.out
    from reverie.models.lora import read_meta

    adapter = home / "adapters" / "night-1"
    config = json.loads((adapter / "adapter_config.json").read_text())
    targets = set(config["target_modules"])
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "down_proj"} <= targets, targets
    assert "lm_head" not in targets and "embed_tokens" not in targets
    assert read_meta(adapter)["base_model"].startswith(f"tiny-{family}@")
    assert (r := cli("quiz", "--quiz", quiz, "--adapter", "night-1")).code == 0, r.err
    assert "night-1" in r.out
    assert (r := cli("chat", "-p", "What was built in 1852?")).code == 0, r.err  # a system turn, whatever the template
    # a second turn: the history is fitted to the context in the model's own template (Gemma refuses a system turn)
    assert (r := cli("chat", "--continue", "1", "-p", "And in 1853?")).code == 0, r.err
    out = tmp_path / "merged"
    assert (r := cli("merge", "night-1", "--out", out)).code == 0, r.err
    merged = load_model(str(out), tmp_path / "models", threads=1)
    assert merged.model.config.model_type == family


@pytest.mark.parametrize("family", FAMILIES)
def test_engine_serves_llama_like_families_exactly(family, family_loaded):
    loaded = family_loaded[family]
    fast = TransformersBackend(loaded, batch_size=3)
    assert (fast.engine is not None) == ENGINE[family] == supports(loaded.model)
    slow = TransformersBackend(loaded, batch_size=3, engine=False)
    prompts = [[{"role": "user", "content": "What is the capital of France? Tell me about it."}], "Paris is",
               [{"role": "user", "content": "Tell me a joke about a cat"}]]
    greedy = SamplingParams(temperature=0, max_new_tokens=8)
    want = [g.text for g in slow.generate(prompts, greedy)]
    assert [g.text for g in fast.generate(prompts, greedy)] == want
    if fast.engine is not None:
        tok = loaded.tokenizer
        ids = tok(fast.format(prompts[0]), add_special_tokens=False)["input_ids"]
        import numpy as np

        with torch.inference_mode():
            _, _, _, logits = fast.engine._prefill([np.asarray(ids)], 0)
            alone = loaded.model(input_ids=torch.tensor([ids])).logits[0, -1]
        torch.testing.assert_close(logits[0], alone, atol=1e-4, rtol=1e-4)


def test_a_sliding_window_model_falls_back_to_transformers(family_dirs, tmp_path):
    from transformers import AutoModelForCausalLM, MistralConfig

    config = MistralConfig.from_pretrained(family_dirs["mistral"])
    config.sliding_window = 16
    model = AutoModelForCausalLM.from_config(config)
    assert not supports(model)  # the engine's cache keeps every slot: a window needs transformers' masks


def test_a_template_without_a_system_role_gets_it_in_the_first_user_turn(family_loaded):
    backend = TransformersBackend(family_loaded["gemma"])
    text = backend.format([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert text == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
