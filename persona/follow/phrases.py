"""Which atoms the follow adapter trains on, which it never sees, and how people word them.

The held-out atom *types* (:data:`HELD_OUT`) never enter training: not as an editor applied to
a target, not as a phrase in a prompt or a target. They measure whether the adapter learned
to follow a stated preference in general or only the ones it was shown.

Parametrised atoms are one type whatever their size: every ``max_words_*`` is the type
``max_words``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cache

from persona.bench import atoms as A
from persona.follow.editors import tldr_line
from persona.follow.more_atoms import TYPES

#: Atom types never used in training (editor or phrase); kept for held-out measurement.
HELD_OUT: tuple[str, ...] = ("numbered", "lowercase", "hashtag", "question_end", "subject")
#: Words that name a held-out type: no training phrase may contain one.
HELD_OUT_WORDS: tuple[str, ...] = (
    "number",
    "lowercase",
    "lower case",
    "hashtag",
    "question",
    "subject",
)

#: Sizes of the parametrised atoms used in training.
MAX_WORDS = (40, 50, 60, 70, 80, 100)
SHORT_SENTENCES = (8, 10, 12, 15)

#: Ways a person states each training atom type ({n}: the atom's size).
PHRASES: dict[str, tuple[str, ...]] = {
    "bullets": (
        "bullet points",
        "use bullet points",
        "a bulleted list",
        "put the points in a bulleted list",
        "bullets, one point per line",
        "format it as bullet points",
    ),
    "single_paragraph": (
        "a single paragraph",
        "one paragraph only",
        "keep it to one paragraph",
        "a single block of text, no line breaks",
        "write it as one paragraph",
    ),
    "tldr": (
        "start with a one-line TL;DR",
        "open with a TL;DR line",
        "a TL;DR first",
        "begin with 'TL;DR:' and the gist in one line",
        "put a TL;DR at the top",
    ),
    "title": (
        "start with a '# ' title line",
        "a markdown title first",
        "begin with a heading line that starts with '# '",
        "give it a '#' title",
        "open with a short '# ' heading",
    ),
    "formal": (
        "formal greeting and closing ('Dear …,' / 'Best regards,')",
        "formal: open with 'Dear ...,' and close with 'Best regards,'",
        "a formal salutation and sign-off",
        "start with Dear and end with Best regards",
    ),
    "casual_greeting": (
        "casual greeting ('Hey …,')",
        "open casually with 'Hey ...,'",
        "a relaxed 'Hey' greeting",
        "start with Hey, not Dear",
    ),
    "no_closing": (
        "no sign-off",
        "skip the closing line",
        "don't end with a sign-off like 'Best regards'",
        "no closing formula at the end",
    ),
    "no_emoji": (
        "no emojis",
        "never use emojis",
        "plain text without emoji",
        "leave out emojis",
    ),
    "no_exclamation": (
        "no exclamation marks",
        "avoid exclamation points",
        "calm punctuation, never '!'",
        "don't use exclamation marks",
    ),
    "ends_with_emoji": (
        "end with an emoji",
        "finish with an emoji",
        "close the text with a smiley emoji",
        "put an emoji at the very end",
    ),
    "call_to_action": (
        "end with a call to action",
        "finish by asking the reader to act",
        "close with a clear call to action",
        "end by asking the reader to reply",
    ),
    "max_words": (
        "at most {n} words",
        "no more than {n} words",
        "keep it under {n} words",
        "{n} words maximum",
        "short: {n} words or fewer",
    ),
    "short_sentences": (
        "short sentences (at most {n} words each)",
        "keep sentences short, {n} words max",
        "short, punchy sentences of {n} words or fewer",
        "sentences no longer than {n} words",
    ),
}


PHRASES.update({t.name: t.phrases for t in TYPES})


def atom_type(atom: A.Atom) -> str:
    """The type of an atom: its name without size or value (``max_words_60`` → ``max_words``,
    ``ends_with:Thanks.`` → ``ends_with``)."""
    name = atom.name.split(":", 1)[0]
    head, _, tail = name.rpartition("_")
    return head if tail.isdigit() else name


def atom_size(atom: A.Atom) -> int | None:
    tail = atom.name.split(":", 1)[0].rpartition("_")[2]
    return int(tail) if tail.isdigit() else None


def atom_value(atom: A.Atom) -> str:
    """The value of a valued atom (``ends_with:Thanks.`` → ``Thanks.``), else ''."""
    return atom.name.partition(":")[2]


#: Benchmark atoms whose training targets are written by another editor (same check).
_TRAINING_EDITORS = {"tldr": A.Atom("tldr", A.TLDR.description, *tldr_line())}


def training_atoms(*, extra: bool = True) -> list[A.Atom]:
    """Every atom the adapter trains on (all sizes and values), none of a held-out type;
    without ``extra``, only the edit benchmark's types (13)."""
    fixed = [
        _TRAINING_EDITORS.get(a.name, a)
        for a in A.ATOMS.values()
        if atom_size(a) is None and a.name in PHRASES
    ]
    sized = [A.max_words(n) for n in MAX_WORDS] + [A.short_sentences(n) for n in SHORT_SENTENCES]
    return fixed + sized + ([a for t in TYPES for a in t.atoms] if extra else [])


@cache
def _by_name() -> dict[str, A.Atom]:
    return {a.name: a for a in [*A.ATOMS.values(), *training_atoms()]}


def atom_named(name: str) -> A.Atom:
    """The training or benchmark atom called ``name`` (as recorded in an example)."""
    return _by_name()[name]


def held_out_atoms() -> list[A.Atom]:
    return [A.ATOMS[name] for name in HELD_OUT]


def phrase(atom: A.Atom, rng: random.Random) -> str:
    """One way a person words ``atom`` (only training atoms have several)."""
    options = PHRASES.get(atom_type(atom))
    if options is None:
        return atom.description
    return rng.choice(options).format(n=atom_size(atom), w=atom_value(atom))


def join(phrases: Sequence[str], rng: random.Random) -> str:
    """Phrases joined as the layer joins preferences (mostly '; '), sometimes as prose."""
    if len(phrases) == 1:
        return phrases[0]
    style = rng.random()
    if style < 0.6:
        return "; ".join(phrases)
    if style < 0.8:
        return ", ".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]
