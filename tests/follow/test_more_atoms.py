"""The follow adapter's extra training atom types: contracts, composition and a few edits."""

from __future__ import annotations

import random

import pytest

from persona.bench import atoms as A
from persona.bench.env import TASKS, load_corpus
from persona.follow import data as D
from persona.follow.more_atoms import TYPES
from persona.follow.phrases import (
    HELD_OUT,
    PHRASES,
    atom_named,
    atom_type,
    phrase,
    training_atoms,
)

#: Real texts of answer length: the benchmark corpus and persona's own follow corpus.
TEXTS = [c.text for task in TASKS for c in load_corpus(task)] + [i.text for i in D.load_inputs()]
TEXTS = [t for t in TEXTS if len(t.split()) >= 40]
ANSWER = (
    "Sure! Here is a summary of the text:\n\nThe axolotl is a salamander from Mexico that keeps "
    "its juvenile form (neoteny). It can't leave the water, and it's very good at regenerating "
    "limbs. Scientists study its behavior to realize new treatments. It is critically "
    "endangered, maybe because of pollution.\n\nI hope this helps! Let me know if you have any "
    "other requests."
)
EMAIL = (
    "Subject: Moving Day\n\nDear Friends,\n\nI am moving on Saturday and would love your help! "
    "We start at 9 am. Pizza afterwards.\n\nBest regards,\n[Your Name]"
)
NEW = [a for t in TYPES for a in t.atoms]
#: Training atoms whose targets another editor writes (same name and check as the benchmark's).
RETARGETED = [atom_named("tldr")]


def test_there_are_many_more_training_types_and_none_is_held_out() -> None:
    types = {atom_type(a) for a in training_atoms()}
    assert len(TYPES) >= 30 and len(types) >= 40
    assert not types & set(HELD_OUT)
    assert len({a.name for a in NEW}) == len(NEW)
    assert len({a.description for a in training_atoms()}) == len(training_atoms())
    assert all(t.name in PHRASES and len(t.phrases) >= 4 for t in TYPES)


@pytest.mark.parametrize("atom", NEW + RETARGETED, ids=[a.name for a in NEW + RETARGETED])
def test_editor_satisfies_checker_is_idempotent_and_minimal(atom: A.Atom) -> None:
    for text in [*TEXTS, ANSWER]:
        edited = atom.edit(text)
        assert atom.check(edited), (text[:80], edited[:200])
        assert atom.edit(edited) == edited
        if atom.check(text):
            assert edited == text
        else:
            assert edited != text


def test_a_tl_dr_target_ends_where_a_sentence_or_clause_ends() -> None:
    [tldr] = RETARGETED
    assert tldr in training_atoms() and tldr.edit(ANSWER) != A.TLDR.edit(ANSWER)
    for text in [*TEXTS, ANSWER, "TL;DR: " + " ".join(ANSWER.split()[8:50])]:
        head, _, rest = tldr.edit(text).partition("\n\n")
        assert head.startswith("TL;DR: ") and head.endswith(".") and len(head.split()) <= 16
        assert not rest.startswith("TL;DR")  # a whole answer behind the prefix loses it
    assert tldr.edit(ANSWER).startswith(
        "TL;DR: The axolotl is a salamander from Mexico that keeps its juvenile form (neoteny).\n"
    )


def test_phrases_fill_in_values_and_sizes() -> None:
    rng = random.Random(0)
    by_name = {a.name: a for a in NEW}
    for _ in range(20):
        assert "Hope this helps." in phrase(by_name["ends_with:Hope this helps."], rng)
        assert "4" in phrase(by_name["exact_bullets_4"], rng)
        assert "{" not in phrase(by_name["signed:Priya"], rng)


def test_compatibility_reads_groups_exclusions_and_kinds() -> None:
    by_name = {a.name: a for a in training_atoms()}
    bullets, markdown = by_name["bullets"], by_name["no_markdown"]
    assert not D.compatible([bullets, markdown]) and not D.compatible([markdown, bullets])
    assert not D.compatible([by_name["avoid_word:very"], by_name["avoid_word:just"]])
    assert D.compatible([bullets, by_name["no_contractions"], by_name["ends_with:More soon."]])
    assert D.applicable(by_name["signed:Sam"], "notes")
    assert not D.applicable(by_name["signed:Sam"], "document")
    assert not D.applicable(by_name["opens_with:In brief:"], "notes")
    order = D.ordered([by_name["max_sentences_3"], by_name["no_intro"], bullets])
    assert [a.name for a in order] == ["no_intro", "bullets", "max_sentences_3"]


def _atom(name: str) -> A.Atom:
    return next(a for a in NEW if a.name == name)


def test_wording_edits() -> None:
    assert _atom("no_contractions").edit("It's fine; we don't mind.") == (
        "It is fine; we do not mind."
    )
    assert _atom("british_spelling").edit("Organizing colors at the center.") == (
        "Organising colours at the centre."
    )
    assert _atom("american_spelling").edit("The organisation's favourite theatre.") == (
        "The organization's favorite theater."
    )
    assert _atom("avoid_word:just").edit("Just add salt. It is just right.") == (
        "Add salt. It is right."
    )
    assert _atom("no_parentheses").edit("A salamander (a newt) swims.") == "A salamander swims."
    assert _atom("no_commas").edit("Red, green, and 1,000 blue.") == "Red green and 1000 blue."


def test_openings_and_endings_keep_the_content() -> None:
    assert _atom("no_intro").edit(ANSWER).startswith("The axolotl is a salamander")
    assert _atom("no_outro").edit(ANSWER).endswith("maybe because of pollution.")
    recap = _atom("in_short").edit(ANSWER).splitlines()[-1]
    assert recap.startswith("In short: The axolotl is a salamander")
    ps = _atom("postscript").edit("One thing. Two things. Three things.")
    assert ps == "One thing. Two things.\n\nP.S. Three things."
    assert _atom("bold_title").edit(ANSWER).startswith("**The axolotl**\n\n")
    three = _atom("max_sentences_3").edit(ANSWER)
    assert "Sure" not in three and "hope this helps" not in three and three.count(".") == 3


def test_email_frame_edits() -> None:
    signed = _atom("signed:Alex").edit(EMAIL)
    assert signed.endswith("Best regards,\nAlex")
    assert _atom("closing_word:Cheers,").edit(EMAIL).endswith("Cheers,\n[Your Name]")
    assert "\nHello Friends,\n" in _atom("greeting_hello").edit(EMAIL)
    thanked = _atom("thanks_first").edit(EMAIL)
    assert "Dear Friends,\n\nThank you for reaching out. I am moving" in thanked


def test_follow_examples_now_cover_the_new_types() -> None:
    inputs = D.load_inputs()
    answers = {i.id: i.text for i in inputs}
    examples = D.build_examples(inputs, answers, seed=0, follow_per_input=8, aggregate=20)
    seen = {atom_type(atom_named(n)) for ex in examples for n in ex.atoms}
    assert {t.name for t in TYPES} <= seen
