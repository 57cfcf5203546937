"""Word-level Levenshtein distance: PRELUDE's per-round cost."""

from __future__ import annotations

import random

import pytest

from persona.bench.metrics import edit_distance


def _reference(a: str, b: str) -> int:
    """The textbook dynamic programme, to check the bit-parallel implementation against."""
    x, y = a.split(), b.split()
    prev = list(range(len(y) + 1))
    for i, xi in enumerate(x, start=1):
        cur = [i]
        for j, yj in enumerate(y, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (xi != yj)))
        prev = cur
    return prev[-1]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("the cat sat", "the cat sat", 0),  # identical
        ("the cat sat", "the black cat sat", 1),  # insert
        ("the black cat sat", "the cat sat", 1),  # delete
        ("the cat sat", "the dog sat", 1),  # substitute
        ("", "", 0),
        ("", "one two three", 3),
        ("one two three", "", 3),
        ("a b c", "x y z", 3),
        ("kitten sitting", "sitting kitten", 2),
        ("same  words\nother   spacing", "same words other spacing", 0),  # whitespace-split
        ("Word", "word", 1),  # case matters
        ("a b c d e", "a x c y e", 2),
    ],
)
def test_small_cases(a: str, b: str, expected: int) -> None:
    assert edit_distance(a, b) == expected
    assert edit_distance(b, a) == expected


def test_matches_reference_and_is_symmetric() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        a = " ".join(rng.choice("abcde") for _ in range(rng.randint(0, 15)))
        b = " ".join(rng.choice("abcde") for _ in range(rng.randint(0, 15)))
        assert edit_distance(a, b) == _reference(a, b) == edit_distance(b, a)
    for _ in range(50):  # longer than one machine word of bits
        a = " ".join(rng.choice("abcdefgh") for _ in range(rng.randint(70, 150)))
        b = " ".join(rng.choice("abcdefgh") for _ in range(rng.randint(70, 150)))
        assert edit_distance(a, b) == _reference(a, b)


def test_paired_difference_separates_a_real_gain_from_noise() -> None:
    from persona.bench.metrics import paired_difference

    rng = random.Random(1)
    base = [rng.randint(10, 40) for _ in range(60)]
    better = [c - 5 + rng.randint(-2, 2) for c in base]  # 5 fewer edits a round, give or take
    gain = paired_difference(better, base)
    assert -6 < gain["mean_per_round"] < -4
    assert gain["ci95"][0] < gain["mean_per_round"] < gain["ci95"][1] < 0
    assert gain["rounds_cheaper"] > 50
    noise = paired_difference([c + rng.choice([-3, 3]) for c in base], base)
    assert noise["ci95"][0] < 0 < noise["ci95"][1]  # cannot tell them apart
    assert paired_difference(base, base) == {
        "mean_per_round": 0.0,
        "ci95": [0.0, 0.0],
        "rounds_cheaper": 0,
        "rounds_dearer": 0,
    }
    assert paired_difference([], [])["ci95"] is None
    with pytest.raises(ValueError, match="length"):
        paired_difference([1, 2], [1])


def test_repeats_finds_a_looping_answer() -> None:
    from persona.bench.metrics import repeats

    loop = "Subject: Project: A New Approach to the Business Model " * 3
    assert repeats(loop)
    assert not repeats("Dear Ms. Lee, the trip is booked for Monday and the budget is approved.")
    assert not repeats("one two three four five")  # shorter than a run
    assert repeats("a b c d e f x a b c d e f")


def test_short_answers_count_words_not_markup() -> None:
    from persona.bench.metrics import content_words, is_short

    assert content_words("# # #\n- \n**") == 0
    assert content_words("# Title: 3 things, done.") == 4
    assert is_short("# The plan") and is_short("")
    assert not is_short(" ".join(["word"] * 12))


def test_normal_interval_is_the_mean_and_1_96_standard_errors() -> None:
    from persona.bench.metrics import normal_interval

    assert normal_interval([1, 1, 1, 1]) == [1.0, 1.0, 1.0]
    # mean 2, sd sqrt(10/3), se sqrt(10/3)/2 = 0.9129; 1.96 * se = 1.789
    assert normal_interval([0, 1, 3, 4]) == [0.21, 2.0, 3.79]
    with pytest.raises(ValueError, match="at least 2"):
        normal_interval([3])
