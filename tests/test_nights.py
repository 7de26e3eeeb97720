"""Many nights on the tiny model: earlier nights' questions held out and asked again (retention),
forgetting measured on the base model's own held-out paragraphs when no general text is given,
a night that forgets earlier answers rolled back, and `reverie nights`."""

from __future__ import annotations

import json

import pytest
from test_sleep import _add_dreams, _rv


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (conftest.one_thread)."""


@pytest.fixture
def short_replies(monkeypatch):
    """The base model's paragraphs kept short, and kept although the tiny model writes no real words."""
    from reverie.sleep import self_replay

    monkeypatch.setattr(self_replay, "MAX_NEW_TOKENS", 12)
    monkeypatch.setattr(self_replay, "MIN_WORDS", 0)


def _qa(rv, pairs):
    from reverie.store.dreams import DreamRecord

    rv.store.add_dreams([DreamRecord("qa", f"Q: {q}\nA: {a}", "tiny", 1, []) for q, a in pairs])


NEW = [("What colour are bananas?", "Yellow"), ("How many legs has a spider?", "Eight"),
       ("Which planet is red?", "Mars")]


def test_earlier_nights_questions_stay_held_out_and_are_asked_every_later_night(sleepy, monkeypatch):
    from reverie.quiz.questions import dream_question, same_question
    from reverie.sleep import records

    monkeypatch.setenv("REVERIE_SLEEP__EPOCHS", "1")
    monkeypatch.setenv("REVERIE_QUIZ__HOLDOUT", "0.34")
    rv = _rv()
    _add_dreams(rv)
    first = rv.sleep()
    held = [dream_question(r["text"]) for r in records.night_dreams(rv.store, 1, ("quiz",))]
    assert len(held) == 1 and first.figures["candidate"]["n_retained"] == 0

    # Night 2 reads new facts, and one dream asks night 1's held-out question again.
    _qa(rv, NEW + [(held[0].question, held[0].answer)])
    second = _rv().sleep()
    trained = [dream_question(r["text"]) for r in records.night_dreams(rv.store, 2, ("train", "replay"))]
    assert not any(q is not None and same_question(q, held[0]) for q in trained)
    for label in ("base", "candidate"):
        figures = second.figures[label]
        assert figures["n_retained"] == 1 and figures["retained"] in (0.0, 1.0), figures
    assert second.figures["base"]["n_questions"] == len(records.night_dreams(rv.store, 2, ("quiz",)))
    assert "retained" in [c.name for c in second.checks]


def test_a_night_that_forgets_earlier_answers_is_rolled_back(sleepy, monkeypatch, cli):
    """Measured figures are replaced by fixed ones so the verdict is known: each night's candidate
    makes its own answers likelier, and night 2's makes every earlier one less likely (six
    questions each, as if the nights had held out more: the tests need them to reach their level)."""
    from reverie.quiz import run

    monkeypatch.setenv("REVERIE_SLEEP__EPOCHS", "1")
    monkeypatch.setenv("REVERIE_QUIZ__HOLDOUT", "0.34")
    real = run.Measure.__call__
    said = {"base": (-3.0, None, None), "night-1": (-2.0, -1.0, 1.0), "night-2": (-1.0, -4.0, 0.0)}
    # label: (tonight's answers' log-prob, earlier nights', earlier accuracy)

    def measured(self, loaded, label, *a, **k):
        out = real(self, loaded, label, *a, **k)
        if label in said and out.accuracy is not None:
            new, earlier, retained = said[label]
            out.answer_logp = [new + 0.1 * i for i in range(6)]
            if out.n_retained and earlier is not None:
                out.n_retained, out.retained = 6, retained
                out.retained_logp = [earlier + 0.1 * i for i in range(6)]
        return out

    monkeypatch.setattr(run.Measure, "__call__", measured)
    rv = _rv()
    _add_dreams(rv)
    assert rv.sleep().status == "kept"
    _qa(rv, NEW)
    result = _rv().sleep()
    assert result.status == "rejected"
    failed = [c for c in result.checks if not c.passed]
    assert [c.name for c in failed] == ["retained"], failed
    assert "-0.75 (night-1) -> -3.75, lower for 6 of 6" in failed[0].detail
    assert "accuracy 100.0% -> 0.0%" in failed[0].detail
    assert _rv().store.get_state("adapter") == "night-1"  # rolled back

    r = cli("nights")
    assert r.code == 0, r.err
    assert "kept" in r.out and "rejected" in r.out and "retained" in r.out, r.out
    rows = [json.loads(line) for line in cli("nights", "--json").out.splitlines()]
    assert [(n["id"], n["status"]) for n in rows] == [(1, "kept"), (2, "rejected")]
    assert rows[1]["figures"]["candidate"]["retained"] == 0.0


def test_forgetting_is_measured_on_the_base_models_own_paragraphs_without_general_text(
        sleepy, monkeypatch, short_replies):
    config = _rv().settings.home / "config.yaml"
    text = config.read_text(encoding="utf-8")
    start = text.index("general_text:")
    config.write_text(text[:start] + text[text.index("perplexity_tokens"):], encoding="utf-8")
    monkeypatch.setenv("REVERIE_SLEEP__EPOCHS", "1")
    monkeypatch.setenv("REVERIE_QUIZ__OWN_TEXT_PARAGRAPHS", "3")
    rv = _rv()
    assert rv.settings.quiz.general_text is None
    _add_dreams(rv)
    result = rv.sleep(quiz_file=sleepy)
    forgetting = next(c for c in result.checks if c.name == "forgetting")
    assert "not checked" not in forgetting.detail and result.figures["base"]["perplexity"] > 1
    own = json.loads(rv.store.get_state("own_text"))
    assert len(own) == 3 and "3 paragraphs the base model wrote" in result.figures["forgetting_text"]
    # Never trained on: the night's self-replay paragraphs are other texts.
    replayed = json.loads(rv.store.night(1)["config"])["self_replay"]["texts"]
    assert not set(own) & set(replayed)
    # The next night is measured on the same paragraphs, and so is `reverie quiz`.
    _qa(rv, NEW)
    again = _rv().sleep(quiz_file=sleepy)
    assert json.loads(_rv().store.get_state("own_text")) == own
    assert again.figures["base"]["perplexity"] == pytest.approx(result.figures["base"]["perplexity"], rel=1e-4)
    # ... taken from the store: the base model's perplexity and probe are measured once per home.
    cached = [k for (k,) in _rv().store.conn.execute("SELECT key FROM state WHERE key LIKE 'base_figures:%'")]
    assert len(cached) == 1 and "perplexity" not in again.figures["base"]["seconds"]


def test_nights_lists_nothing_on_a_fresh_home(home, cli):
    r = cli("nights")
    assert r.code == 0 and "no nights yet" in r.out
    assert cli("nights", "--json").out.strip() == ""


def test_a_night_records_its_quiz_with_lookup_and_its_probe_answers(sleepy, monkeypatch, tmp_path, cli):
    from conftest import QA

    monkeypatch.setenv("REVERIE_SLEEP__EPOCHS", "1")
    doc = tmp_path / "facts.md"
    doc.write_text("# Facts\n\n" + " ".join(f"{q} {a}." for q, a in QA) + "\n", encoding="utf-8")
    rv = _rv()
    rv.read([doc])
    _add_dreams(rv)
    result = rv.sleep(quiz_file=sleepy)
    for label in ("base", "candidate"):
        figures = result.figures[label]
        assert figures["lookup_accuracy"] is not None and figures["lookup_k"] == rv.settings.wake.recall_chunks
        assert figures["lookup_relevant"] > 0, figures  # the facts were read: lookup finds them
    r = cli("nights")
    assert r.code == 0 and "with lookup" in r.out, r.out

    # quiz.lookup off: closed book alone.
    monkeypatch.setenv("REVERIE_QUIZ__LOOKUP", "false")
    _qa(rv, NEW)
    again = _rv().sleep(quiz_file=sleepy)
    assert again.figures["candidate"]["lookup_accuracy"] is None and again.figures["candidate"]["accuracy"] is not None
    # Both nights keep what the probe said (the report shows it), the base model's from the home's cache.
    for night in (result, again):
        for label in ("base", "candidate"):
            said = night.figures[label]["probe_examples"]["Tell me a joke."]
            assert 1 <= len(said) <= 3 and all(isinstance(a, str) for a in said)
    assert again.figures["base"]["probe_examples"] == result.figures["base"]["probe_examples"]
