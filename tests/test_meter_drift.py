"""Drift guards: rare-word rate and degenerate (looping) texts."""

from __future__ import annotations

import pytest
from wordfreq import zipf_frequency

from reverie.meter.drift import degenerate_flags, rare_word_rate


def test_rare_word_rate_hand_count():
    # words: the cat sat on the zorblax times (42 and punctuation are not words) -> 1 rare of 7
    assert zipf_frequency("zorblax", "en") < 3 <= min(zipf_frequency(w, "en") for w in ("cat", "sat", "times"))
    assert rare_word_rate(["The cat sat on the zorblax, 42 times!"]) == pytest.approx(1 / 7)


def test_rare_word_rate_counts_every_occurrence_across_texts():
    assert rare_word_rate(["zorblax zorblax", "the house"]) == pytest.approx(2 / 4)
    assert rare_word_rate(["42 !", "..."]) == 0.0  # no words at all


def test_a_looping_text_is_flagged_degenerate():
    loop = "I think that the answer is yes. " * 4
    tail = "Once upon a time there was a cat. " + "and then and then " * 6
    assert degenerate_flags([loop, tail]).tolist() == [True, True]


def test_ordinary_text_is_not_degenerate():
    texts = [
        "The quick brown fox jumps over the lazy dog, and the dog does not mind at all.",
        "It was very very very good.",  # a short repeat is emphasis, not a loop
        "no, no, no!",
        "-" * 40 + " a heading underlined with dashes",  # punctuation-only units are not loops
        "",
    ]
    assert degenerate_flags(texts).tolist() == [False] * 5


def test_loop_must_cover_min_span_and_repeats():
    assert degenerate_flags(["ha " * 12]).tolist() == [True]  # 12 tokens, period 1
    assert degenerate_flags(["ha " * 11]).tolist() == [False]  # 11 < min_span
    assert degenerate_flags(["one two three four five six " * 2]).tolist() == [False]  # 2 repeats
    assert degenerate_flags(["one two three four five six " * 3]).tolist() == [True]  # 3 repeats


def test_loops_do_not_cross_text_boundaries():
    # Each text alone is short; joined they would look like a loop.
    assert degenerate_flags(["ha ha ha ha ha ha"] * 4).tolist() == [False] * 4
