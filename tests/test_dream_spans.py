"""The dream scaffolding: sentences, answer spans, question openings, the pieces generators quote,
and the checks generators run on their own replies (reverie.dream.spans, qa.valid_question)."""

from __future__ import annotations

import random

import pytest

from reverie.dream.gate import answer_in_source
from reverie.dream.generators import qa
from reverie.dream.spans import (
    Span,
    answer_spans,
    blank,
    clause,
    echoes,
    first_sentence,
    grounded,
    in_running_text,
    in_situ_question,
    pick_sentences,
    pick_spans,
    question_words,
    sentences,
    short_piece,
)

MUSEUM = (
    "The main façade, built from red brick and Portland stone, stretches 720 feet (220 m) along Cromwell Gardens "
    "and was designed by Aston Webb after winning a competition in 1891 to extend the museum. Construction took "
    "place between 1899 and 1909. The gates were designed by F. W. Moody and made c. 1885 by St. John's workshop. "
    "The central garden was opened as the John Madejski Garden on 5 July 2005. The library holds over 18,000 books, "
    "including the \"Codex Forster\" of the 15th century. The Cast Courts 1870–73 hold plaster casts of famous "
    "buildings, including Trajan's Column."
)


def _kinds(sentence):
    return {(s.text, s.kind) for s in answer_spans(sentence)}


def test_sentences_keep_initials_and_abbreviations_whole():
    sents = sentences(MUSEUM)
    assert len(sents) == 6
    assert sents[2] == "The gates were designed by F. W. Moody and made c. 1885 by St. John's workshop."
    assert sentences("Hello there. it goes on") == ["Hello there. it goes on"]  # no capital: no new sentence
    assert sentences("") == []


def test_a_heading_or_a_blank_line_ends_a_sentence():
    # A read markdown file starts "# Title" then a blank line: the title must not join the
    # paragraph's first sentence, or a cloze asks "# Title" and answers from the sentence.
    chunk = "# Victoria and Albert Museum\n\n" + MUSEUM + "\n\nA second paragraph\nwrapped on two lines.\n## Notes\nLast one"
    sents = sentences(chunk)
    assert sents[0] == "# Victoria and Albert Museum"
    assert sents[1:7] == sentences(MUSEUM)
    assert sents[7:] == ["A second paragraph\nwrapped on two lines.", "## Notes", "Last one"]
    assert all(not s.startswith("#") for s in pick_sentences(chunk, random.Random(0), 9))
    assert all("#" not in sp.sentence for sp in pick_spans(chunk, random.Random(0), 20))
    long_heading = "## The history of the museum and its first buildings\n\n" + MUSEUM
    assert all(not s.startswith("#") for s in pick_sentences(long_heading, random.Random(0), 9))


def test_answer_spans_kinds_and_verbatim():
    first, second, third, fourth, fifth, sixth = sentences(MUSEUM)
    got = _kinds(first)
    assert {("720 feet", "quantity"), ("1891", "year"), ("Aston Webb", "name"), ("Cromwell Gardens", "name"),
            ("main façade", "thing")} <= got
    assert {("1899", "year"), ("1909", "year")} <= _kinds(second)
    assert ("Construction", "name") not in _kinds(second)  # a sentence's first word is not a name
    assert ("F. W. Moody", "name") in _kinds(third)
    assert {("5 July 2005", "date"), ("John Madejski Garden", "name")} <= _kinds(fourth)
    assert {("18,000 books", "quantity"), ("Codex Forster", "title"), ("15th century", "century")} <= _kinds(fifth)
    assert {("1870–73", "year"), ("Trajan's Column", "name")} <= _kinds(sixth)
    assert _kinds("Victoria and Albert Museum staff met Laverne & Shirley fans.") >= {
        ("Victoria and Albert Museum", "name")}
    # every span is verbatim, does not overlap another, and the gate accepts it as an answer
    for s in sentences(MUSEUM):
        spans = answer_spans(s)
        for sp in spans:
            assert sp.text in s and answer_in_source(sp.text, MUSEUM), sp
        ends = [(s.index(sp.text), s.index(sp.text) + len(sp.text)) for sp in spans]
        assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:], strict=False))


@pytest.mark.parametrize("text,kind,before,expected", [
    ("1891", "year", "in", ["In what year", "When"]),
    ("1990s", "year", "the", ["In what decade", "When"]),
    ("5 July 2005", "date", "on", ["When", "On what date"]),
    ("720 feet", "quantity", "stretches", ["How many feet"]),
    ("ten years", "quantity", "about", ["How many years", "How long"]),
    ("90%", "number", "represented", ["What percentage", "How much"]),
    ("£20", "number", "cost", ["How much"]),
    ("Aston Webb", "name", "by", ["Who"]),
    ("Cromwell Gardens", "name", "along", ["Where", "Which", "What"]),
    ("Cromwell Gardens", "name", "of", ["What", "Which"]),
    ("Scotland", "name", "in", ["Where", "Which", "What"]),
    ("Nicholas Stone", "name", "include", ["Who"]),
    ("wrought iron gates", "thing", "the", ["What", "Which"]),
])
def test_question_words_fit_the_span(text, kind, before, expected):
    assert question_words(Span(text, kind, f"... {text} ...", before)) == expected


def test_pick_spans_spreads_over_sentences_and_kinds():
    spans = pick_spans(MUSEUM, random.Random(1), 4)
    assert len(spans) == 4
    assert len({s.sentence for s in spans}) == 4  # one per sentence while there are enough
    assert len({s.kind for s in spans}) >= 3
    assert pick_spans(MUSEUM, random.Random(1), 4) == spans  # drawn from the item's rng: reproducible
    many = pick_spans(MUSEUM, random.Random(2), 12)
    assert len(many) == 12 and len(set(many)) == 12  # more than the sentences: several per sentence
    assert pick_spans("Too short.", random.Random(0), 3) == []


def test_pick_sentences_and_pieces():
    drawn = pick_sentences(MUSEUM, random.Random(3), 2)
    assert len(drawn) == 2 and all(d in MUSEUM for d in drawn)
    assert "Construction took place between 1899 and 1909." not in pick_sentences("Tiny. " + MUSEUM, random.Random(0), 9)[:0]
    long = sentences(MUSEUM)[0]
    piece = short_piece(long, max_words=20)
    assert long.startswith(piece) and 12 <= len(piece.split()) <= 20
    assert short_piece("A short one here.") == "A short one here."
    assert in_running_text("Construction took place in 1899.", MUSEUM) == "construction took place in 1899"
    assert in_running_text("Aston Webb won.", MUSEUM) == "Aston Webb won"
    assert in_running_text("Moody made them.", "made by Moody") == "Moody made them"


def test_clause_and_blank():
    first = sentences(MUSEUM)[0]
    webb = next(s for s in answer_spans(first) if s.text == "Aston Webb")
    piece = clause(webb)
    assert "Aston Webb" in piece and len(piece.split()) < len(first.split())
    assert blank(piece, webb) == piece.replace("Aston Webb", "___")
    date = next(s for s in answer_spans(sentences(MUSEUM)[3]) if s.kind == "date")
    assert "5 July 2005" in clause(date)
    # a thousands separator is not a comma to cut at
    items = "The collection holds over 19,000 items from the Islamic world, ranging from the early period."
    islamic = next(s for s in answer_spans(items) if s.text == "Islamic")
    assert clause(islamic).startswith("The collection holds over 19,000 items")


def test_self_checks():
    assert grounded("Aston Webb designed the main façade in 1891.", MUSEUM, 0.6)
    assert not grounded("Aston Webb designed the façade in 1925.", MUSEUM, 0.0)  # invented number
    assert not grounded("Bananas grow on volcanic islands quickly.", MUSEUM, 0.6)
    assert grounded("A cheerful nurse smiled.", MUSEUM, 0.6, extra='{"occupation": "cheerful nurse smiled"}')
    example = "The Eiffel Tower was completed in 1889."
    assert echoes("The Eiffel Tower was completed in 1889.", example, MUSEUM)
    assert echoes("The museum was completed in 1889.", example, MUSEUM)  # the example's number
    assert not echoes("The museum was completed in 1909.", example, MUSEUM)
    assert first_sentence('"Well, that is grand. I like it."\nMore') == "Well, that is grand."
    assert first_sentence("") is None and first_sentence("word " * 40) is None


def test_valid_question():
    first = sentences(MUSEUM)[0]
    webb = next(s for s in answer_spans(first) if s.text == "Aston Webb")
    assert qa.valid_question("Who designed the main façade?\nAnswer: Aston Webb", webb, MUSEUM) == \
        "Who designed the main façade?"
    assert qa.valid_question("Who is Aston Webb?", webb, MUSEUM) is None  # gives the answer away
    assert qa.valid_question("Who designed it", webb, MUSEUM) is None  # not a question
    assert qa.valid_question("Who?", webb, MUSEUM) is None  # too short
    assert qa.valid_question("Who designed the ___ of stone?", webb, MUSEUM) is None  # blank left in
    assert qa.valid_question("Who wants to know the answer?", webb, MUSEUM) is None  # not about the text
    assert qa.valid_question("who designed the main façade?", webb, MUSEUM, "Who") == "who designed the main façade?"
    assert qa.valid_question("When was the main façade designed?", webb, MUSEUM, "Who") is None  # another opening
    assert qa.valid_question("Who designed the Eiffel Tower façade?", webb, MUSEUM) is None  # the example's


def test_in_situ_question_asks_the_span_where_it_stands():
    first = sentences(MUSEUM)[0]
    spans = {s.text: s for s in answer_spans(first)}
    feet = in_situ_question(spans["720 feet"])
    assert "how many feet" in feet and "720" not in feet and feet.endswith("?") and feet[0].isupper()
    webb = in_situ_question(spans["Aston Webb"])
    assert "designed by whom" in webb and "Aston Webb" not in webb
    year = in_situ_question(spans["1891"])
    assert "what year" in year and "1891" not in year
    titled = next(s for s in answer_spans(sentences(MUSEUM)[4]) if s.kind == "title")
    assert in_situ_question(titled) is None  # a quoted title leaves its quotes behind: no question
