"""Training on many devices (issue 23 part 4): `torchrun --nproc-per-node 2 -m reverie sleep` on the
CPU (gloo) trains each rank on its share of the night's batches, rank 0 alone writes the store and
the adapter, and the adapter equals the one a single process trains, to float tolerance."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from test_families import reading


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (conftest.one_thread)."""


def test_two_gloo_ranks_train_the_single_process_adapter(home, cli, tmp_path, monkeypatch, tiny_model_dir):
    home.mkdir(parents=True, exist_ok=True)
    general = tmp_path / "general.txt"
    general.write_text("The river flows through the old town, past the market, to the sea. " * 30, encoding="utf-8")
    (home / "config.yaml").write_text(
        "generation: {seed: 5, max_new_tokens: 6}\nmodel: {threads: 1}\nmeter: {embedder: tfidf}\n"
        "dream: {min_grounded: 0, max_perplexity: 1.0e+9, max_rare_rate: 1, baseline: false}\n"
        # two micro-batches a step: one per rank; general text exercises the cached base targets
        f"sleep: {{objective: sft, rank: 4, alpha: 8, batch_tokens: 96, grad_accum: 2, epochs: 2, lr: 0.01,\n"
        f"        general_text: '{general}', general_ratio: 0.5, self_replay: 0, strengths: [1.0],\n"
        "        max_perplexity_rise: 1.0e+30, max_vendi_drop: 1.0, max_length_change: 1.0e+30, max_probe_kl: 1.0e+30}\n"
        "quiz: {probe_prompts: ['Tell me a joke.'], probe_n: 2, probe_max_new_tokens: 4, max_new_tokens: 4,\n"
        "       own_text_paragraphs: 2, perplexity_tokens: 64}\n",
        encoding="utf-8")
    doc, quiz = reading(tmp_path)
    assert cli("read", doc).code == 0
    assert cli("dream", "--generators", "cloze", "--budget", "200", "--docs", "all").code == 0
    twin = tmp_path / "twin"
    shutil.copytree(home, twin)

    assert (r := cli("sleep", "--quiz", quiz)).code == 0, r.err
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVERIE_")}
    env.update(REVERIE_HOME=str(twin), REVERIE_MODEL__PATH=str(tiny_model_dir), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--master-port", "29533", "-m", "reverie", "sleep", "--quiz", str(quiz)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "rank 1: trained its share of 1 night(s)" in run.stderr, run.stderr[-3000:]
    assert run.stdout.count("night-1") >= 1 and ("kept: night-1" in run.stdout or "rejected: night-1" in run.stdout)

    single = load_file(home / "adapters" / "night-1" / "adapter_model.safetensors")
    ddp = load_file(twin / "adapters" / "night-1" / "adapter_model.safetensors")
    assert set(single) == set(ddp)
    diff = max(float((single[k] - ddp[k]).abs().max()) for k in single)
    moved = max(float(single[k].abs().max()) for k in single if "lora_B" in k)
    print(f"max abs weight difference, 2 gloo ranks vs one process: {diff:.2e} (largest B weight {moved:.2e})")
    assert moved > 1e-3 and diff < 1e-4
    from reverie.app import Reverie
    from reverie.config import load_settings

    nights = Reverie.from_settings(load_settings(home=twin, environ={})).store.nights()
    assert len(nights) == 1  # one rank wrote the store
    hist = [json.loads(Reverie.from_settings(load_settings(home=h, environ={})).store.adapter("night-1")["metrics"])
            ["training"] for h in (home, twin)]
    assert hist[0]["steps"] == hist[1]["steps"] and hist[0]["tokens"] == hist[1]["tokens"]
    torch.testing.assert_close(torch.tensor(hist[0]["history"]), torch.tensor(hist[1]["history"]), atol=1e-4, rtol=1e-4)


def test_a_step_with_fewer_micro_batches_than_ranks_is_refused_before_training(monkeypatch):
    from types import SimpleNamespace

    from reverie.errors import ReverieError
    from reverie.sleep import train as train_mod

    monkeypatch.setattr(train_mod, "world", lambda: (0, 2))
    tokenizer = SimpleNamespace(pad_token_id=0)
    with pytest.raises(ReverieError, match="grad_accum is 1, not a multiple of the 2 ranks.*set it to 2"):
        train_mod.train(None, tokenizer, [], SimpleNamespace(grad_accum=1), 0, None)
