"""The follow adapter's data: held-out atom types really absent, targets right, seeded."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from persona.bench.env import load_corpus
from persona.follow import data as D
from persona.follow.phrases import (
    HELD_OUT,
    HELD_OUT_WORDS,
    PHRASES,
    atom_named,
    atom_type,
    held_out_atoms,
    training_atoms,
)


@pytest.fixture(scope="module")
def examples() -> list[D.Example]:
    inputs = D.load_inputs()
    # The inputs stand in for the model's answers: real, varied text, no model needed.
    answers = {i.id: i.text for i in inputs}
    return D.build_examples(inputs, answers, seed=3, aggregate=120)


def test_corpus_is_its_own() -> None:
    inputs = D.load_inputs()
    assert len(inputs) == 135 and len({i.id for i in inputs}) == 135
    assert {i.kind for i in inputs} == {"document", "notes", "question"}
    bench = [c.text.lower().split() for t in ("summarization", "email") for c in load_corpus(t)]
    grams = {tuple(w[i : i + 8]) for w in bench for i in range(len(w) - 7)}
    for item in inputs:
        words = item.text.lower().split()
        assert not any(tuple(words[i : i + 8]) in grams for i in range(len(words) - 7)), item.id


def test_training_phrases_never_name_a_held_out_type() -> None:
    assert not set(PHRASES) & set(HELD_OUT)
    for options in PHRASES.values():
        for text in options:
            assert not any(w in text.lower() for w in HELD_OUT_WORDS), text
    assert all(atom_type(a) not in HELD_OUT for a in training_atoms())
    assert [atom_type(a) for a in held_out_atoms()] == list(HELD_OUT)
    for atom in training_atoms():  # what inference and aggregation targets say
        assert not any(w in atom.description.lower() for w in HELD_OUT_WORDS), atom.name


def _preference_part(ex: D.Example) -> str:
    if ex.kind == "follow":
        return ex.prompt.rsplit("prefers the following style:", 1)[1]
    if ex.kind == "aggregate":
        return ex.prompt + "\n" + ex.target
    if ex.kind == "infer":
        return ex.target
    return ""


def test_held_out_types_are_absent_as_editor_and_as_phrase(examples: list[D.Example]) -> None:
    kinds = {ex.kind for ex in examples}
    assert kinds == {"plain", "follow", "infer", "aggregate"}
    for ex in examples:
        assert all(atom_type(atom_named(n)) not in HELD_OUT for n in ex.atoms)
        text = _preference_part(ex).lower()
        assert not any(w in text for w in HELD_OUT_WORDS), (ex.kind, text)


def test_evaluation_inputs_are_never_trained_on(examples: list[D.Example]) -> None:
    evals = {i.id for i in D.load_inputs() if D.is_eval(i)}
    assert len(evals) == 27
    used = {ex.input_id for ex in examples if ex.input_id}
    assert used and not used & evals


def test_follow_targets_satisfy_their_atoms_and_keep_the_answer(
    examples: list[D.Example],
) -> None:
    follows = [ex for ex in examples if ex.kind == "follow"]
    assert len(follows) > 400
    for ex in follows:
        atoms = [atom_named(n) for n in ex.atoms]
        assert all(a.check(ex.target) for a in atoms), ex.atoms
        assert D.compatible(atoms)
        assert "Write it for a user who prefers the following style:" in ex.prompt


def test_follow_targets_are_compact_enough_to_end_within_the_answer_budget(
    examples: list[D.Example],
) -> None:
    answers = {i.id: D.tidy(i.text) for i in D.load_inputs()}
    follows = [ex for ex in examples if ex.kind == "follow"]
    for ex in follows:
        body = D.T.parse(D.compact(answers[ex.input_id])).content
        words = sum(len(line.split()) for line in body)
        sentences = sum(len(D.T.split_sentences(line.split())) for line in body)
        # whole sentences within the budget, or the first sentence alone when it is longer
        assert words <= D.FOLLOW_BODY_WORDS or sentences == 1
    ending = [ex for ex in follows if {"call_to_action", "ends_with_emoji"} & set(ex.atoms)]
    assert ending and all(len(ex.target.split()) < 90 for ex in ending)


def test_compact_keeps_whole_sentences_the_greeting_and_the_sign_off() -> None:
    email = (
        "Dear Sam,\n\nThe first sentence has six words. The second one has five. "
        "The third sentence would go past the budget.\n\nA second paragraph.\n\n"
        "Best regards,\nAna"
    )
    assert D.compact(email, words=12) == (
        "Dear Sam,\n\nThe first sentence has six words. The second one has five.\n\n"
        "Best regards,\nAna"
    )
    long = "One very long first sentence that runs well past the small budget given here."
    assert D.compact(long, words=5) == long  # never empty: the first sentence stays
    listing = "- First point here.\n- Second point here.\n- Third point here."
    assert D.compact(listing, words=6) == "- First point here.\n- Second point here."


def test_follow_targets_have_a_body_and_short_titles_of_their_own(
    examples: list[D.Example],
) -> None:
    follows = [ex for ex in examples if ex.kind == "follow"]
    assert all(D.T.has_body(ex.target) for ex in follows)
    titled = [ex for ex in follows if "title" in ex.atoms]
    assert len(titled) >= 10
    for ex in titled:
        title = ex.target.split("\n", 1)[0][2:]
        body = D.T.parse(ex.target).content[0].lower()
        # a heading of its own, or at least not the first sentence's words in the same case
        assert len(title.split()) <= D.TITLE_WORDS or not body.startswith(title.lower())
        assert not body.startswith(title) or "lowercase" in ex.atoms


def test_distinct_title_shortens_a_copied_title_and_leaves_others() -> None:
    copied = "# The tuba is a brass\n\nThe tuba is a brass instrument with a deep sound."
    assert D.distinct_title(copied) == (
        "# The Tuba\n\nThe tuba is a brass instrument with a deep sound."
    )
    assert D.distinct_title("# The history of the\n\nThe history of the press.") == (
        "# The History\n\nThe history of the press."
    )
    own = "# Brass instruments\n\nThe tuba is a brass instrument."
    assert D.distinct_title(own) == own  # a title of its own stays
    assert D.distinct_title("No title here.") == "No title here."
    assert D.distinct_title("# Only a title") == "# Only a title"


def test_inference_targets_name_only_what_the_edit_shows(examples: list[D.Example]) -> None:
    answers = {i.id: i.text for i in D.load_inputs()}
    for ex in (e for e in examples if e.kind == "infer"):
        answer = D.tidy(answers[ex.input_id])
        assert all(not (atom_named(n)).check(answer) for n in ex.atoms)
        assert "Revised answer by the user:" in ex.prompt
        assert "What changed, counted:\n" in ex.prompt  # since follow-data-4


def test_aggregate_keeps_the_most_represented(examples: list[D.Example]) -> None:
    for ex in (e for e in examples if e.kind == "aggregate"):
        lines = re.findall(r"^- (.*)$", ex.prompt, re.MULTILINE)
        assert len(lines) >= 2 and ex.atoms and ex.target


def test_generation_is_seeded() -> None:
    inputs = D.load_inputs()[:20]
    answers = {i.id: i.text for i in inputs}
    one = D.build_examples(inputs, answers, seed=1, aggregate=10)
    assert D.fingerprint(one) == D.fingerprint(
        D.build_examples(inputs, answers, seed=1, aggregate=10)
    )
    assert D.fingerprint(one) != D.fingerprint(
        D.build_examples(inputs, answers, seed=2, aggregate=10)
    )


def test_plain_weight_and_the_share_of_inference_prompts_with_facts() -> None:
    inputs = D.load_inputs()[:30]
    answers = {i.id: i.text for i in inputs}
    one = D.build_examples(inputs, answers, seed=4, aggregate=10)
    both = D.build_examples(inputs, answers, seed=4, aggregate=10, infer_facts=1.0)
    assert D.fingerprint(one) == D.fingerprint(both)  # the defaults are follow-data-7's
    shown = [e for e in one if e.kind == "infer"]
    assert shown and all("What changed, counted" in e.prompt for e in shown)

    mixed = D.build_examples(
        inputs, answers, seed=4, aggregate=10, plain_per_input=3, infer_facts=0.5
    )
    plain = Counter(e.target for e in mixed if e.kind == "plain")
    assert set(plain.values()) == {3}
    assert set(plain) == {e.target for e in one if e.kind == "plain"}
    infer = [e for e in mixed if e.kind == "infer"]
    with_facts = sum("What changed, counted" in e.prompt for e in infer)
    assert 0.25 < with_facts / len(infer) < 0.75
    assert D.data_version() == D.DATA_VERSION
    assert D.data_version(3, 0.5) == f"{D.DATA_VERSION} (plain x3, facts 0.5)"
    none = D.build_examples(inputs, answers, seed=4, aggregate=10, infer_facts=0.0)
    assert not any("What changed, counted" in e.prompt for e in none if e.kind == "infer")


def test_tidy_and_usable() -> None:
    cut = "A first full sentence of the answer. A second full sentence. And a third cut in the"
    assert D.tidy(cut) == "A first full sentence of the answer. A second full sentence."
    # Cutting back would drop most of the answer: kept as it is.
    assert D.tidy("Short. And then a long sentence that was cut off in the") == (
        "Short. And then a long sentence that was cut off in the"
    )
    assert D.tidy("Complete.") == "Complete."
    assert not D.usable("too short")
    assert not D.usable(" ".join(["the same six words again here"] * 3))
    assert D.usable("A plain answer with enough words to be kept as a target.")
