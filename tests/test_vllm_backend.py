"""The in-process vLLM backend (issue 23 part 3), without vLLM: a fake `vllm` module records what
reverie asks of `vllm.LLM` (engine arguments, prompts as token ids, per-request sampling settings
and seeds, the LoRA request for the adapter in use) and answers in the shape of vLLM's
RequestOutput. Without the extra, `dream.backend: vllm` is one error line.

    OMP_NUM_THREADS=1 python -m pytest -q tests/test_vllm_backend.py
"""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest
from test_families import reading

from reverie.errors import ReverieError
from reverie.models.backend import SamplingParams, format_chat
from reverie.models.vllm_backend import MISSING, VLLMBackend


@pytest.fixture
def fake_vllm(monkeypatch, tiny_model_dir):
    """A `vllm` module in sys.modules whose LLM records its calls in the returned dict. Request i
    answers ' said i ': even ones stopped by end of sequence (kept in token_ids, as vLLM keeps
    it), odd ones cut at max_tokens."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    seen = {"llm": [], "generate": []}

    class LLM:
        def __init__(self, **kwargs):
            seen["llm"].append(kwargs)

        def get_tokenizer(self):
            return tok

        def generate(self, prompts, sampling_params, lora_request=None, use_tqdm=True):
            seen["generate"].append({"prompts": prompts, "params": sampling_params, "lora": lora_request})
            return [SimpleNamespace(prompt_token_ids=p["prompt_token_ids"], outputs=[SimpleNamespace(
                text=f" said {i} ", token_ids=[7, 8, tok.eos_token_id] if i % 2 == 0 else [7, 8, 9],
                finish_reason="stop" if i % 2 == 0 else "length", stop_reason=None)])
                for i, p in enumerate(prompts)]

    class Recorded:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, Recorded
    vllm.lora = types.ModuleType("vllm.lora")
    vllm.lora.request = types.ModuleType("vllm.lora.request")
    vllm.lora.request.LoRARequest = Recorded
    for name, module in (("vllm", vllm), ("vllm.lora", vllm.lora), ("vllm.lora.request", vllm.lora.request)):
        monkeypatch.setitem(sys.modules, name, module)
    seen["tokenizer"] = tok
    return seen


def test_sampling_settings_seeds_and_outputs_map_to_vllm(fake_vllm, tiny_model_dir):
    backend = VLLMBackend(tiny_model_dir, seed=3)
    assert fake_vllm["llm"] == [{"model": str(tiny_model_dir), "enable_lora": True, "max_lora_rank": 64, "seed": 3,
                                 "dtype": "auto"}]
    chat = [{"role": "user", "content": "Where is the lighthouse?"}]
    params = SamplingParams(temperature=0.8, top_p=0.9, min_p=0.05, repetition_penalty=1.1, max_new_tokens=7,
                            seed=10, stop=["\n\n"])
    gens = backend.generate([chat, "The lighthouse", chat], params)

    call = fake_vllm["generate"][0]
    assert call["lora"] is None
    tok = fake_vllm["tokenizer"]
    assert call["prompts"][0]["prompt_token_ids"] == tok(format_chat(tok, chat), add_special_tokens=False)["input_ids"]
    assert call["prompts"][1]["prompt_token_ids"] == tok("The lighthouse", add_special_tokens=False)["input_ids"]
    sent = [p.kwargs for p in call["params"]]
    assert sent[0] == {"temperature": 0.8, "top_p": 0.9, "top_k": -1, "min_p": 0.05, "repetition_penalty": 1.1,
                       "max_tokens": 7, "stop": ["\n\n"], "seed": 10}
    assert [s["seed"] for s in sent] == [10, 11, 12]  # request i: seed + i

    assert [g.text for g in gens] == ["said 0", "said 1", "said 2"]
    assert [g.n_tokens for g in gens] == [2, 3, 2]  # the end-of-sequence token is not counted
    assert [g.finish_reason for g in gens] == ["stop", "length", "stop"]
    assert [g.seed for g in gens] == [10, 11, 12]
    assert gens[1].prompt_tokens == len(call["prompts"][1]["prompt_token_ids"])

    backend.generate([chat], SamplingParams(top_k=5, stop=[], seed=10))
    again = fake_vllm["generate"][1]["params"][0].kwargs
    assert again["top_k"] == 5 and again["stop"] is None and again["seed"] == 10  # the same call, the same seed
    drawn = backend.generate(["a", "b"], SamplingParams())  # no seed: one is drawn and recorded
    assert drawn[1].seed == drawn[0].seed + 1
    assert backend.generate([], SamplingParams()) == [] and len(fake_vllm["generate"]) == 3


def test_mixed_settings_go_in_one_call(fake_vllm, tiny_model_dir):
    backend = VLLMBackend(tiny_model_dir)
    gens = backend.generate_mixed(["a", "b"], [SamplingParams(temperature=0.0, seed=99), SamplingParams(top_k=3)],
                                  seed=40)
    (call,) = fake_vllm["generate"]
    assert [p.kwargs["temperature"] for p in call["params"]] == [0.0, 0.7]
    assert [p.kwargs["seed"] for p in call["params"]] == [40, 41] and [g.seed for g in gens] == [40, 41]


def test_the_adapter_in_use_is_the_lora_request(fake_vllm, home, tiny):
    from reverie.app import Reverie
    from reverie.config import SleepConfig, load_settings
    from reverie.dream.run import DreamContext, make_backend
    from reverie.models.lora import new_lora, save_adapter

    settings = load_settings(home=home, overrides={"dream": {"backend": "vllm"}, "generation": {"seed": 5}})
    rv = Reverie.from_settings(settings)
    path = save_adapter(new_lora(tiny.model, SleepConfig(rank=4)), settings.adapters_dir / "night-1", tiny.identity)
    rv.store.add_adapter("night-1", str(path), tiny.identity, None, "kept", {})
    rv.store.set_state("adapter", "night-1")

    backend = make_backend(DreamContext(rv.store, settings, lambda: pytest.fail("no local model"), print))
    assert isinstance(backend, VLLMBackend) and backend.identity == tiny.identity
    (engine,) = fake_vllm["llm"]
    assert engine["max_lora_rank"] == 8 and engine["seed"] == 5  # rank 4, rounded up to a rank vLLM takes
    backend.generate(["a"], SamplingParams(seed=1))
    assert fake_vllm["generate"][0]["lora"].args == ("night-1", 1, str(path))


def test_without_the_extra_it_is_one_error_line(home, cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError, installed or not
    with pytest.raises(ReverieError) as exc:
        VLLMBackend("/nowhere")
    assert str(exc.value) == MISSING
    doc, _ = reading(tmp_path)
    assert cli("read", doc).code == 0
    monkeypatch.setenv("REVERIE_DREAM__BACKEND", "vllm")
    r = cli("dream", "--budget", "100")
    assert r.code != 0
    assert r.err.strip().splitlines() == [f"error: {MISSING}"], r.err
