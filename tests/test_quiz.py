"""Quiz scoring (SQuAD normalisation, contained, F1), question files and held-out questions."""

from __future__ import annotations

import json

import pytest

from reverie.errors import ReverieError
from reverie.quiz.questions import dream_question, holdout, load_questions
from reverie.quiz.score import contained, normalize, token_f1


def test_normalize_like_squad():
    assert normalize("The  Eiffel-Tower, in Paris!") == "eiffeltower in paris"
    assert normalize("An apple a day") == "apple day"


def test_contained_on_word_boundaries():
    assert contained("It was built in 1852 by the city.", "1852")
    assert contained("the answer is Starkie Gardner.", "Starkie Gardner")
    assert contained("sgraffito", ["fresco", "Sgraffito"])
    assert not contained("in 18521", "1852")
    assert not contained("", "Paris")


def test_token_f1():
    assert token_f1("the Eiffel tower", "Eiffel Tower") == 1.0
    assert token_f1("Paris", "London") == 0.0
    assert token_f1("Paris France", "Paris") == pytest.approx(2 / 3)


def test_load_questions_and_errors(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"question": "Q?", "answer": "A"}) + "\n\n" + json.dumps({"question": "R?", "answer": ["B", "C"]}))
    qs = load_questions(f)
    assert [q.question for q in qs] == ["Q?", "R?"] and qs[1].answer == ["B", "C"]
    f.write_text('{"question": "Q?"}\n')
    with pytest.raises(ReverieError, match=":1: expected"):
        load_questions(f)
    f.write_text("not json\n")
    with pytest.raises(ReverieError, match="not a JSON object"):
        load_questions(f)
    f.write_text("")
    with pytest.raises(ReverieError, match="no questions"):
        load_questions(f)
    with pytest.raises(ReverieError, match="cannot read"):
        load_questions(tmp_path / "missing.jsonl")


def test_holdout_is_seeded_and_skips_unparsable():
    rows = [{"id": i, "text": f"Q: question {i}?\nA: answer {i}"} for i in range(20)] + [{"id": 99, "text": "no pair"}]
    a, b = holdout(rows, 0.25, seed=3), holdout(rows, 0.25, seed=3)
    assert a == b and len(a) == 5 and 99 not in a
    assert holdout(rows[:1], 0.1, seed=3) == [0]  # at least one
    assert holdout([], 0.5, seed=3) == []
    assert dream_question("Q: Who?\nA: Ada").answer == "Ada"


def test_a_quiz_longer_than_max_questions_says_it_is_cut():
    from reverie.config import MeterConfig, QuizConfig
    from reverie.quiz.questions import Question
    from reverie.quiz.run import Measure

    questions = [Question(f"Q{i}?", "A") for i in range(3)]
    said: list[str] = []
    m = Measure(questions, QuizConfig(max_questions=2), MeterConfig(), log=said.append)
    assert [q.question for q in m.questions] == ["Q0?", "Q1?"]
    assert said == ["asking the first 2 of 3 quiz questions (quiz.max_questions)"]
    Measure(questions, QuizConfig(max_questions=3), MeterConfig(), log=said.append)
    assert len(said) == 1
