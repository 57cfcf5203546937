"""The feedback benchmark's checkers and its two shipped feedback sets."""

from __future__ import annotations

from typing import Any

import pytest

from persona.bench.feedback_checks import (
    CHECKER_ARGS,
    CHECKERS,
    SPLITS,
    adheres,
    load_feedback_set,
)

GROUPS = ("in_scope", "near_scope", "out_of_scope")
LONG = " ".join(["The meeting covered the budget, the launch date and hiring plans."] * 6)

# checker -> (args, adhering answer, violating answer, baseline)
CASES: dict[str, tuple[dict[str, Any], str, str, str]] = {
    "no_emoji": ({}, "Hi Dana, the report is attached.", "Report attached 🎉", ""),
    "has_emoji": ({}, "Happy birthday, Lily! 🦄🎂", "Happy birthday, Lily!", ""),
    "max_words": ({"n": 10}, "Fresh sourdough is back this Saturday.", LONG, ""),
    "shorter_than_baseline": ({"ratio": 0.8}, "Budget approved; launch in May.", LONG, LONG),
    "bullets": (
        {},
        "Key findings:\n- Productivity rose 13%.\n- Loneliness increased.",
        "The study found productivity rose 13% while loneliness increased.",
        "",
    ),
    "numbered": (
        {},
        "**Day 1**\n1. Colosseum in the morning.\n2. Trastevere for dinner.",
        "Start at the Colosseum, then eat dinner in Trastevere.",
        "",
    ),
    "no_bullets": (
        {},
        "I grew up by a creek.\n\nIt taught me patience.",
        "- creek\n- patience",
        "",
    ),
    "no_exclamation": ({}, "I would welcome the chance to talk.", "I'd love to join!", ""),
    "ends_with_question": ({}, "Big news today. What would you do?", "Big news today.", ""),
    "starts_with": (
        {"prefix": "Thanks for reaching out"},
        "Hi Sam,\n\nThanks for reaching out. A replacement is on its way.",
        "Sorry about the cracked screen. A replacement is on its way.",
        "",
    ),
    "includes_phrase": (
        {"phrase": "potluck"},
        "Book club is Thursday at 7; snacks are Potluck.",
        "Book club is Thursday at 7; I'll bring snacks.",
        "",
    ),
    "imperative_first_word": ({}, "Fix login timeout on slow networks", "Fixed the login bug", ""),
    "python_type_hints": (
        {},
        "```python\ndef add(self, a: int, b: int = 0) -> int:\n    return a + b\n```",
        "```python\ndef add(a, b):\n    return a + b\n```",
        "",
    ),
    "code_comments": (
        {},
        "```sql\n-- top customers\nSELECT name FROM customers;\n```",
        "```sql\nSELECT name FROM customers;\n```",
        "",
    ),
    "metric_units": (
        {},
        "Use 250 g flour, 200 ml milk and bake at 180°C.",
        "Use 2 cups flour.",
        "",
    ),
    "no_words": (
        {"words": ["seamless", "cutting-edge"]},
        "A steel bottle that keeps water cold all day.",
        "A cutting-edge bottle with seamless design.",
        "",
    ),
    "british_spelling": (
        {},
        "We organised the colour review.",
        "We organized the color review.",
        "",
    ),
    "all_lowercase": ({}, "omw, grabbing tacos", "OMW, grabbing tacos", ""),
    "max_sentences": ({"n": 2}, "A prime has two factors. Seven is prime.", "A. B. C. D.", ""),
    "code_block": ({}, "Run this:\n```bash\ndf -h\n```", "Run df -h in a terminal.", ""),
}


def _all() -> list[dict[str, Any]]:
    return [fb for split in SPLITS for fb in load_feedback_set(split)]


def test_every_checker_has_a_case() -> None:
    assert set(CASES) == set(CHECKERS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_checker_accepts_and_rejects(name: str) -> None:
    args, good, bad, baseline = CASES[name]
    fb = {"checker": name, "checker_args": args}
    assert adheres(fb, good, baseline or LONG) is True
    assert adheres(fb, bad, baseline or LONG) is False


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_checkers_survive_empty_text(name: str) -> None:
    args = CASES[name][0]
    assert isinstance(CHECKERS[name]("", "", args), bool)


def test_edge_cases() -> None:
    assert not CHECKERS["metric_units"]("Bake at 180°C for 1 hour, 8 oz butter.", "", {})
    assert CHECKERS["metric_units"]("Roast 1.5 kg of chicken for 90 minutes.", "", {})
    assert not CHECKERS["python_type_hints"]("def f(x: int):\n    pass", "", {})
    assert not CHECKERS["python_type_hints"]("no code here", "", {})
    assert CHECKERS["code_comments"]("# load data\nrows = read()", "", {})
    assert CHECKERS["imperative_first_word"]("- Add tests for the date parser", "", {})
    assert CHECKERS["imperative_first_word"]("Commit message:\n```\nBump requests\n```", "", {})
    assert CHECKERS["ends_with_question"]("What would you do? 🤔\n\n#careers #growth", "", {})
    assert not CHECKERS["max_sentences"]("", "", {"n": 3})
    assert adheres({"checker": None}, "anything", "") is None


def test_quantitative_feedbacks_name_valid_checkers() -> None:
    for fb in _all():
        assert fb["kind"] in {"quantitative", "qualitative"}, fb["id"]
        if fb["kind"] == "qualitative":
            assert fb["checker"] is None, fb["id"]
            continue
        assert fb["checker"] in CHECKERS, fb["id"]
        args = fb["checker_args"]
        for key, typ in CHECKER_ARGS.get(fb["checker"], {}).items():
            assert isinstance(args.get(key), typ), (fb["id"], key)
        CHECKERS[fb["checker"]]("some answer", "some baseline answer", args)


@pytest.mark.parametrize("split", sorted(SPLITS))
def test_set_shape(split: str) -> None:
    fbs = load_feedback_set(split)
    assert len(fbs) >= (20 if split == "test" else 10)
    quantitative = sum(fb["checker"] is not None for fb in fbs)
    assert 0.5 * len(fbs) <= quantitative <= 0.8 * len(fbs)
    assert len({fb["id"] for fb in fbs}) == len(fbs)
    for fb in fbs:
        assert fb["text"] and fb["scope"], fb["id"]
        for group in GROUPS:
            assert len(fb[group]) >= 10, (fb["id"], group)
            for prompt in fb[group]:
                assert 6 <= len(prompt.split()) <= 40, prompt


def test_prompts_distinct_and_splits_disjoint() -> None:
    sets = {split: load_feedback_set(split) for split in SPLITS}
    prompts = [
        p.strip().lower() for fbs in sets.values() for fb in fbs for g in GROUPS for p in fb[g]
    ]
    assert len(prompts) == len(set(prompts))
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not {fb["id"] for fb in sets[a]} & {fb["id"] for fb in sets[b]}
                assert not {fb["text"] for fb in sets[a]} & {fb["text"] for fb in sets[b]}


def test_an_unknown_split_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'final'"):
        load_feedback_set("final")
