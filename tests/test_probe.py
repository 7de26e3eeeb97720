"""`reverie probe` and `reverie.meter.probe`: N answers per prompt, clustered and counted."""

from __future__ import annotations

import json

import pytest
from peft import LoraConfig, get_peft_model

from reverie.config import MeterConfig
from reverie.errors import ReverieError
from reverie.meter.embed import TfidfEmbedder
from reverie.meter.probe import probe
from reverie.models import Generation, SamplingParams, load_model
from reverie.store import Store


class CannedBackend:
    """Answers from a fixed list, recording what it was asked."""

    identity = "canned@0"

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def generate(self, prompts, params, progress=None):
        self.calls.append((prompts, params))
        return [Generation(self.answers[i % len(self.answers)], 3, 5, "stop", params.seed) for i in range(len(prompts))]


JOKES = ["Why did the chicken cross the road?", "Knock knock. Who is there?", "Why did the chicken cross the road?"]


def test_probe_counts_distinct_answers_and_cluster_sizes():
    backend = CannedBackend(JOKES)
    result = probe(backend, ["Tell me a joke"], 6, SamplingParams(temperature=1.0, seed=11),
                   config=MeterConfig(embedder="tfidf"), embedder=TfidfEmbedder())
    (one,) = result.prompts
    # answers cycle chicken, knock, chicken -> chicken x4, knock x2
    assert one.n_distinct == 2
    assert [len(c) for c in one.clusters] == [4, 2]
    assert one.answers[one.clusters[0][0]] == JOKES[0]
    assert one.metrics["n_texts"] == 6 and one.metrics["n_clusters"] == 2
    assert one.tokens == [3] * 6 and one.ended == [True] * 6  # the canned generations' lengths
    assert one.answer_tokens == 3 and result.mean()["answer_tokens"] == 3
    assert result.seed == 11 and result.sampling["temperature"] == 1.0
    prompts, params = backend.calls[0]
    assert len(prompts) == 6 and prompts[0] == [{"role": "user", "content": "Tell me a joke"}]


def test_probe_draws_and_records_a_seed():
    result = probe(CannedBackend(JOKES), ["a", "b"], 3, SamplingParams(temperature=0.7), embedder=TfidfEmbedder())
    assert isinstance(result.seed, int)
    data = result.as_dict()
    assert data["seed"] == result.seed and len(data["prompts"]) == 2
    assert data["mean"]["n_distinct"] == pytest.approx(2.0)


def test_greedy_probe_asks_once_per_prompt():
    backend = CannedBackend(["the only answer"])
    result = probe(backend, ["a", "b"], 5, SamplingParams(temperature=0.0, seed=1), embedder=TfidfEmbedder())
    assert len(backend.calls[0][0]) == 2
    assert [p.n_distinct for p in result.prompts] == [1, 1]
    assert result.prompts[0].answers == ["the only answer"] * 5


def test_probe_needs_two_answers_and_a_prompt():
    with pytest.raises(ReverieError, match="at least two"):
        probe(CannedBackend(JOKES), ["a"], 1, SamplingParams(), embedder=TfidfEmbedder())
    with pytest.raises(ReverieError, match="at least one prompt"):
        probe(CannedBackend(JOKES), [], 3, SamplingParams(), embedder=TfidfEmbedder())


@pytest.fixture
def tfidf(home, monkeypatch):
    monkeypatch.setenv("REVERIE_METER__EMBEDDER", "tfidf")
    return home


def test_probe_cli_json_on_the_tiny_model(tfidf, cli):
    r = cli("--seed", 7, "probe", "--prompt", "Tell me a joke", "-n", 4, "--temperature", 1.0, "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["seed"] == 7 and data["n"] == 4 and data["sampling"]["temperature"] == 1.0
    (p,) = data["prompts"]
    assert len(p["answers"]) == 4 and sum(p["cluster_sizes"]) == 4
    assert p["n_distinct"] == len(p["cluster_sizes"]) == len(p["examples"])
    assert p["metrics"]["n_texts"] == 4
    assert 0 < data["model_metrics"]["next_token_entropy"] and "kl_base_adapted" not in data["model_metrics"]
    again = json.loads(cli("--seed", 7, "probe", "--prompt", "Tell me a joke", "-n", 4, "--temperature", 1.0,
                           "--json").out)
    assert again["prompts"][0]["answers"] == p["answers"]


def test_probe_cli_table_prints_the_seed_and_clusters(tfidf, cli):
    r = cli("probe", "--prompt", "Tell me a joke", "-n", 3)
    assert r.code == 0, r.err
    assert "seed " in r.out and "distinct answer" in r.out and "Vendi score" in r.out


def test_probe_cli_greedy_has_one_answer(tfidf, cli):
    r = cli("probe", "--prompt", "Tell me a joke", "-n", 3, "--greedy", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["sampling"]["temperature"] == 0.0 and data["prompts"][0]["n_distinct"] == 1


def test_probe_cli_prompts_file_with_limit_and_mean(tfidf, tmp_path, cli):
    f = tmp_path / "prompts.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in ({"prompt": "one"}, {"text": "two"}, {"prompt": "three"})) + "\n")
    r = cli("probe", "--prompts", f, "--limit", 2, "-n", 2, "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert [p["prompt"] for p in data["prompts"]] == ["one", "two"]
    assert "n_distinct" in data["mean"]
    table = cli("probe", "--prompts", f, "-n", 2)
    assert table.code == 0 and "mean" in table.out and "three" in table.out


def test_probe_cli_with_adapter_and_save(tfidf, tmp_path, cli, tiny_model_dir):
    base = load_model(str(tiny_model_dir), tmp_path / "models")
    get_peft_model(base.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(tmp_path / "lora")
    with Store.open(tfidf / "reverie.db") as store:
        night = store.start_night(seed=1, config={})
    r = cli("--seed", 5, "probe", "--prompt", "hi", "-n", 2, "--adapter", tmp_path / "lora",
            "--save", "jokes", "--night", night, "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["adapter"] == str(tmp_path / "lora")
    # A fresh LoRA (B = 0) leaves the model as it was.
    assert data["model_metrics"]["kl_base_adapted"] == pytest.approx(0.0, abs=1e-6)
    with Store.open(tfidf / "reverie.db") as store:
        (run,) = store.meter_runs("probe")
    assert run["label"] == "jokes" and run["night_id"] == night
    assert json.loads(run["metrics"])["seed"] == 5 and json.loads(run["params"])["sampling"]["seed"] == 5
    assert "answers" not in json.loads(run["metrics"])["prompts"][0]


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "--prompt TEXT or --prompts FILE.jsonl"),
        (["--prompt", "a", "--prompts", "x.jsonl"], "one of the two"),
        (["--prompt", "a", "-n", 1], "at least 2"),
        (["--prompt", "a", "--greedy", "--temperature", 1.0], "contradict"),
        (["--prompts", "missing.jsonl"], "does not exist"),
        (["--prompts", "prompts.txt"], "from a .jsonl file"),
        (["--prompts", "bad.jsonl"], "has no field 'prompt' or 'text'"),
        (["--prompt", "a", "--adapter", "no-adapter"], "adapter_config.json"),
        (["--prompt", "a", "--save", "x", "--night", 4], "night 4 does not exist"),
    ],
)
def test_probe_bad_input_is_one_error_line(tfidf, tmp_path, cli, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prompts.txt").write_text("a prompt\n")
    (tmp_path / "bad.jsonl").write_text('{"question": "a prompt"}\n')
    r = cli("probe", *args)
    assert r.code == 1
    assert "error:" in r.err and message in r.err
    assert "Traceback" not in r.err


@pytest.mark.slow
def test_probe_on_the_default_model(default_home, cli):
    r = cli("--seed", 1, "probe", "--prompt", "Tell me a joke", "-n", 3, "--max-new-tokens", 24, "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["model"].startswith("SmolLM2") and 1 <= data["prompts"][0]["n_distinct"] <= 3
    assert all(a.strip() for a in data["prompts"][0]["answers"])


def test_probe_report_shows_clusters_with_examples_and_caps_the_list():
    from rich.console import Console

    from reverie.meter.report import CLUSTER_ROWS, probe_report

    answers = [f"answer number {i} about topic {i * 7}" for i in range(CLUSTER_ROWS + 5)]
    result = probe(CannedBackend(answers), ["q"], len(answers), SamplingParams(temperature=1.0, seed=2),
                   embedder=TfidfEmbedder(), config=MeterConfig(cluster_threshold=0.99))
    console = Console(record=True, width=200)
    for part in probe_report(result):
        console.print(part)
    text = console.export_text()
    assert f"{len(answers)} distinct answers of {len(answers)}" in text
    assert "answer number 0 about topic 0" in text and "5 more clusters" in text
    assert "seed 2" in text
