"""Preference atoms: every checker and editor, and every source's composition."""

from __future__ import annotations

import pytest

from persona.bench import atoms as A
from persona.bench import text as T
from persona.bench.env import SOURCES, TASKS, Source, load_corpus
from persona.bench.metrics import edit_distance

CRAFTED = [
    "word",
    "Hi",
    "🎉",
    "🎉🎉 🚀",
    "Party time 🎉🎉 at the lake!!! Bring snacks 🍕",
    "- already\n- in bullets.",
    "* star bullet\n• dot bullet\n+ plus bullet",
    "1. one\n2. two\n\n3. three",
    "3. wrong\n1. order",
    "Dear Sam,\n\nThanks for the update! The draft looks good.\n\nBest regards,\nAna",
    "Hi Sam,\n\nQuick note: the launch moved to March.\n\nCheers,\nBo",
    "Subject: Launch\n\nHello,\n\nThe launch moved.\n\nThanks,\n[Your Name]",
    "Dear Dr. Smith,\n\nPlease find my comments below.\n\nSincerely,",
    "TL;DR: short\n\nBody text here.",
    "TL;DR:\n\nBody text, with no TL;DR content above.",
    "# Title\n\nbody line one\nbody line two",
    "Summary\n\nThis is a summary with two sentences. Here is the second one!",
    "ALL CAPS SHOUTING TEXT WITH NO PUNCTUATION",
    "Thanks!",
    "Best regards,",
    "  leading and trailing spaces  \n\n\n  ",
    "e.g. this is fine. U.S. rules apply, i.e. the usual ones?!",
    "Is this a question?",
    "Please reply by Friday.",
    "Read more at #science and #news",
    " ".join(f"word{i}" for i in range(130)),  # one very long run-on sentence
    "a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t, u, v, w, x, y, z",
    "Line one — with a dash —\nline two ends with a colon:\n- and a bullet;",
]

MODEL_LIKE = [
    "The article discusses the city council's decision to build bike lanes on Harbor Avenue. "
    "The project will cost 4.2 million dollars and start next spring. Some shop owners are "
    "worried about parking.",
    "Sure! Here is a summary of the text:\n\nThe axolotl is a salamander from Mexico that keeps "
    "its juvenile form. It can regenerate limbs and is critically endangered.",
    "Subject: Moving Day Help\n\nDear Friends,\n\nI am moving to a new flat on Saturday the 14th "
    "and I would love your help! We will start at 9 am. Pizza afterwards.\n\nBest regards,\n"
    "[Your Name]",
    "Hey team,\n\nHere are the notes from today's sync:\n\n* Release on the 18th\n* Dark mode "
    "postponed\n* Offline access is the top priority\n\nThanks,\nPriya",
    "In summary, the study shows that sleep helps bees remember routes 🐝. This could matter "
    "for pollination.",
]

CORPUS = [c.text for task in TASKS for c in load_corpus(task)]
TEXTS = CRAFTED + MODEL_LIKE + CORPUS


def test_there_are_enough_atoms() -> None:
    assert len(A.ATOMS) >= 10
    assert all(name == atom.name for name, atom in A.ATOMS.items())
    assert len({a.description for a in A.ATOMS.values()}) == len(A.ATOMS)


@pytest.mark.parametrize("atom", list(A.ATOMS.values()), ids=list(A.ATOMS))
def test_editor_satisfies_checker_and_is_idempotent(atom: A.Atom) -> None:
    for text in TEXTS + [atom.edit(t) for t in MODEL_LIKE]:
        edited = atom.edit(text)
        assert atom.check(edited), (text, edited)
        assert atom.edit(edited) == edited, (text, edited)
        if atom.check(text):
            assert edited == text


@pytest.mark.parametrize("atom", list(A.ATOMS.values()), ids=list(A.ATOMS))
def test_editor_changes_something_when_unsatisfied(atom: A.Atom) -> None:
    unsatisfied = [t for t in TEXTS if t.strip() and not atom.check(t)]
    assert unsatisfied, f"{atom.name}: no crafted text violates it"
    for text in unsatisfied:
        assert atom.edit(text) != text


def test_bullets() -> None:
    assert A.BULLETS.check("- a\n- b")
    assert not A.BULLETS.check("- a\nb")
    assert A.BULLETS.edit("One. Two!") == "- One.\n- Two!"
    assert A.BULLETS.edit("* a\n- b.") == "- a\n- b."
    kept = A.BULLETS.edit("Dear Sam,\n\nOne. Two.\n\nBest regards,\nAna")
    assert kept == "Dear Sam,\n\n- One.\n- Two.\n\nBest regards,\nAna"  # frame untouched


def test_numbered() -> None:
    assert A.NUMBERED.check("1. a\n2. b")
    assert not A.NUMBERED.check("1. a\n3. b")
    assert A.NUMBERED.edit("- a\n- b\nc. d.") == "1. a\n2. b\n3. c.\n4. d."


def test_max_words_counts_body_words_only_and_keeps_the_last_sentence() -> None:
    atom = A.max_words(5)
    assert atom.check("TL;DR: many header words here\n\n- one two three four five")
    assert not atom.check("one two three four five six")
    edited = atom.edit("One two three four five six seven. Please reply.")
    assert edited == "One two three ... Please reply."
    assert edit_distance("One two three four five six seven. Please reply.", edited) == 4
    assert atom.edit("a b c d e f g h") == "a b c d e ..."  # no closing sentence to keep


def test_short_sentences_split_at_commas() -> None:
    atom = A.short_sentences(6)
    edited = atom.edit("We went to the market early, and we bought apples, pears and plums.")
    assert atom.check(edited)
    assert edited.startswith("We went to the market early.")


def test_headers() -> None:
    assert A.TLDR.edit("The cat sat on the mat. It slept.").startswith(
        "TL;DR: The cat sat on the mat"
    )
    assert A.TITLE.edit("Axolotl\n\nA salamander.") == "# Axolotl\n\nA salamander."  # 2 tokens
    assert A.TITLE.edit("The axolotl (A. mexicanum) is a salamander.").startswith("# The axolotl\n")
    assert A.SUBJECT.edit("Hi Sam,\n\nThe launch moved.").startswith("Subject: The launch moved\n")
    moved = A.TLDR.edit("Subject: x\n\nTL;DR: y\n\nbody")
    assert moved.splitlines()[0] == "TL;DR: y"


LONG = (
    "The team will offer candidate B a raise, and candidate D a two-hour take-home task. "
    "The offers go out by Thursday, and the hiring panel meets again next week to decide."
)


@pytest.mark.parametrize(
    ("atom", "prefix"), [(A.TLDR, "TL;DR: "), (A.TITLE, "# "), (A.SUBJECT, "Subject: ")]
)
def test_a_whole_answer_behind_a_header_prefix_is_no_header(atom: A.Atom, prefix: str) -> None:
    answer = prefix + LONG  # 32 words: the answer itself, not a one-line header
    assert len(answer.split()) > T.HEADER_WORDS
    assert not atom.check(answer)
    edited = atom.edit(answer)
    head, _, body = edited.partition("\n\n")
    assert atom.check(edited) and head.startswith(prefix) and len(head.split()) <= 13
    assert body == LONG  # the content kept, its prefix gone
    assert atom.check(prefix + " ".join(LONG.split()[: T.HEADER_WORDS - 1]))


def test_body_atoms_are_not_satisfied_by_an_answer_hidden_in_a_tl_dr_line() -> None:
    meeting = SOURCES["email"]["meeting"]  # one-line TL;DR, bullet points, short sentences
    answer = "TL;DR: " + LONG
    assert not any(a.check(answer) for a in meeting.atoms)
    edited = A.apply_atoms(meeting.atoms, answer)
    assert all(a.check(edited) for a in meeting.atoms)
    assert edited.count("\n- ") >= 2 and edit_distance(answer, edited) > 10


def test_email_frame() -> None:
    assert (
        A.FORMAL.edit("Hi Sam,\n\nText.\n\nCheers,\nBo")
        == "Dear Sam,\n\nText.\n\nBest regards,\nBo"
    )
    assert A.FORMAL.edit("Text.") == "Dear all,\n\nText.\n\nBest regards,"
    assert A.CASUAL_GREETING.edit("Dear Sam,\n\nText.") == "Hey Sam,\n\nText."
    assert A.CASUAL_GREETING.check("Hi Sam,\n\nText.")
    assert A.NO_CLOSING.edit("Hey,\n\nText.\n\nBest regards,\n[Your Name]") == "Hey,\n\nText."


def test_character_atoms() -> None:
    assert A.NO_EMOJI.edit("Great news 🎉 for all 🚀!") == "Great news for all !"
    assert A.NO_EXCLAMATION.edit("Wow! Really?!") == "Wow. Really?"
    assert A.LOWERCASE.edit("Hello World") == "hello world"
    assert A.ENDS_WITH_EMOJI.edit("Done.") == "Done. 🙂"
    assert A.QUESTION_END.edit("Done") == "Done. What do you think?"
    assert A.CALL_TO_ACTION_END.edit("Done.") == "Done. Please reply to confirm."
    assert A.HASHTAG.edit("Bees sleep.") == "Bees sleep. #sleep"


@pytest.mark.parametrize(
    "source",
    [s for task in TASKS for s in SOURCES[task].values()],
    ids=[f"{t}-{n}" for t in TASKS for n in SOURCES[t]],
)
def test_source_atoms_compose(source: Source) -> None:
    atoms = source.atoms
    for text in TEXTS:
        edited = A.apply_atoms(atoms, text)
        failing = [a.name for a in atoms if not a.check(edited)]
        assert not failing, (text, edited, failing)
        assert A.apply_atoms(atoms, edited) == edited


def test_a_body_is_what_lies_between_the_frame_and_can_be_written_into_it() -> None:
    frame = "TL;DR: Rain all week.\n\n# Weather\n\nBest regards,\nSam"
    assert not T.has_body(frame) and T.has_body(
        frame.replace("# Weather", "# Weather\n\nIt rains.")
    )
    filled = T.with_body(frame, "It rains. Bring a coat.")
    assert (
        filled
        == "TL;DR: Rain all week.\n\n# Weather\n\nIt rains. Bring a coat.\n\nBest regards,\nSam"
    )
    assert T.has_body(filled) and T.with_body(filled, "Sunny.").count("It rains") == 0
