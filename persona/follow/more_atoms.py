"""More executable atom types, for training the follow adapter only.

The edit benchmark's atoms (:mod:`persona.bench.atoms`) are the traits its simulated users hold.
The follow adapter needs far more variety to learn *following a stated preference* rather than
a dozen fixed tricks, so these types exist for its training data alone: layouts, wording,
openings, endings, email frames, spelling and punctuation habits people actually state.

None of them is one of the held-out types (:data:`persona.follow.phrases.HELD_OUT`), and none
is worded with one's name. Every atom keeps the contract of :class:`~persona.bench.atoms.Atom`:
``check(edit(t))`` holds and a satisfied text is left as it is. Atoms with a value carry it
after a colon in their name (``ends_with:Hope this helps.``); sized ones end in ``_<n>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from persona.bench import atoms as A
from persona.follow import editors as E
from persona.follow import wording as W

Kinds = frozenset[str]
ALL: Kinds = frozenset({"document", "notes", "question"})
EMAIL: Kinds = frozenset({"notes"})
NOT_EMAIL: Kinds = frozenset({"document", "question"})
BULLET_FAMILY = ("bullets", "asterisk_bullets", "emoji_bullets", "exact_bullets")


@dataclass(frozen=True)
class AtomType:
    """One training atom type: its atoms (one per value or size), how people state it, what
    it cannot be combined with, where it goes in the order of edits, and where it applies."""

    name: str
    atoms: tuple[A.Atom, ...]
    phrases: tuple[str, ...]  # {n}: the size, {w}: the value
    rank: float  # editors run in rank order: frame first, wording next, endings and limits last
    groups: tuple[str, ...] = ()  # types sharing a group cannot hold together
    excludes: tuple[str, ...] = ()  # further types it cannot hold together with
    kinds: Kinds = ALL


def _valued(name: str, values: Sequence[str], description: str, make: Callable) -> tuple:
    return tuple(A.Atom(f"{name}:{v}", description.format(w=v), *make(v)) for v in values)


def _sized(name: str, sizes: Sequence[int], description: str, make: Callable) -> tuple:
    return tuple(A.Atom(f"{name}_{n}", description.format(n=n), *make(n)) for n in sizes)


# --------------------------------------------------------------------------- the types

OPENERS = ("Bottom line:", "In brief:", "Quick update:", "Here is the gist:", "Key point:")
ENDINGS = ("Hope this helps.", "Thanks for reading.", "That is all for now.", "More soon.",
           "Have a great day.")  # fmt: skip
CLOSINGS = ("Cheers,", "Thanks,", "Warm regards,", "All the best,")
NAMES = ("Sam", "Alex", "Jordan", "Priya", "Chris")
AVOIDED_SINGLES = ("very", "really", "just", "actually", "basically", "also")


def _avoid(w: str) -> E.Pair:
    return W.without_words((w,))


def _one(name: str, description: str, pair: tuple[Callable, Callable]) -> tuple[A.Atom]:
    return (A.Atom(name, description, *pair),)


TYPES: tuple[AtomType, ...] = (
    AtomType(
        "no_intro",
        _one("no_intro", "no preamble ('Sure!', 'Here is ...')", E.no_intro()),
        (
            "skip the preamble",
            "no 'Sure!' or 'Here is' opener, get straight to it",
            "start with the content itself, no intro line",
            "don't open with 'Here is a ...'",
        ),
        -3,
    ),
    AtomType(
        "thanks_first",
        _one("thanks_first", "open by thanking the reader", E.thanks_first()),
        (
            "open by thanking the reader",
            "start with a thank-you",
            "begin with 'Thank you ...'",
            "thank them first",
        ),
        -2,
        groups=("opening",),
        kinds=frozenset({"notes", "question"}),
    ),
    AtomType(
        "bold_title",
        _one("bold_title", "a bold title line ('**…**')", E.bold_title()),
        (
            "a bold title line at the top",
            "start with a title in **bold**",
            "open with a short bolded heading",
            "put a **bold** title first",
        ),
        2.5,
        groups=("header", "opening", "layout"),
        kinds=NOT_EMAIL,
    ),
    AtomType(
        "greeting_hello",
        _one("greeting_hello", "greet with 'Hello …,'", E.greeting_hello()),
        (
            "greet with 'Hello'",
            "open with 'Hello ...,'",
            "a 'Hello' greeting, not Dear or Hi",
            "start the email with Hello",
        ),
        4.2,
        groups=("greeting",),
        kinds=EMAIL,
    ),
    AtomType(
        "closing_word",
        _valued("closing_word", CLOSINGS, "sign off with '{w}'", E.closing_word),
        (
            "sign off with '{w}'",
            "close with '{w}'",
            "end the email with '{w}' as the sign-off",
            "use '{w}' as the closing",
        ),
        4.4,
        groups=("closing",),
        kinds=EMAIL,
    ),
    AtomType(
        "signed",
        _valued("signed", NAMES, "sign with the name {w}", E.signed),
        (
            "sign it with my name, {w}",
            "put my name ({w}) under the sign-off",
            "end with the name {w} on its own line",
            "sign as {w}",
        ),
        4.6,
        excludes=("no_closing",),
        kinds=EMAIL,
    ),
    AtomType(
        "asterisk_bullets",
        _one("asterisk_bullets", "a list with '* ' markers", E.marked("* ")),
        (
            "a list with '* ' markers",
            "use asterisks as list markers",
            "list the points, each line starting with '* '",
            "star bullets (*)",
        ),
        6.1,
        groups=("layout",),
    ),
    AtomType(
        "emoji_bullets",
        _one("emoji_bullets", "a checklist with ✅ on each line", E.marked("✅ ")),
        (
            "a checklist with ✅ on each line",
            "start every line with ✅",
            "list the points as ✅ items",
            "a ✅ checklist",
        ),
        6.2,
        groups=("layout",),
        excludes=("no_emoji", "plain_ascii"),
    ),
    AtomType(
        "exact_bullets",
        _sized("exact_bullets", (3, 4, 5), "exactly {n} bullet points", E.exact_bullets),
        (
            "exactly {n} bullet points",
            "{n} bullets, no more, no fewer",
            "a list of exactly {n} '- ' points",
            "boil it down to {n} bullet points",
        ),
        6.3,
        groups=("layout",),
    ),
    AtomType(
        "prose_only",
        _one("prose_only", "prose, no lists", E.prose_only()),
        (
            "prose, no lists",
            "no bullet points or lists, full sentences",
            "write in paragraphs, never a list",
            "avoid lists",
        ),
        6.4,
        groups=("layout",),
    ),
    AtomType(
        "two_paragraphs",
        _one("two_paragraphs", "exactly two paragraphs", E.paragraphs(2)),
        (
            "exactly two paragraphs",
            "two paragraphs",
            "split it into two paragraphs",
            "two short paragraphs, nothing more",
        ),
        8.1,
        groups=("layout",),
    ),
    AtomType(
        "sentence_lines",
        _one("sentence_lines", "one sentence per line", E.sentence_lines()),
        (
            "one sentence per line",
            "put each sentence on its own line",
            "a line break after every sentence",
            "every sentence on a new line",
        ),
        8.2,
        groups=("layout",),
    ),
    AtomType(
        "short_paragraphs",
        _sized(
            "short_paragraphs",
            (2, 3),
            "paragraphs of at most {n} sentences",
            E.short_paragraphs,
        ),
        (
            "paragraphs of at most {n} sentences",
            "short paragraphs, {n} sentences max",
            "break it into paragraphs of {n} sentences or fewer",
            "no paragraph longer than {n} sentences",
        ),
        8.3,
        groups=("layout",),
    ),
    AtomType(
        "spaced_lines",
        _one("spaced_lines", "a blank line between lines", E.spaced()),
        (
            "a blank line between lines",
            "leave an empty line between paragraphs",
            "airy spacing: a blank line after every line",
            "double-spaced lines",
        ),
        8.4,
        groups=("spacing",),
    ),
    AtomType(
        "opens_with",
        _valued("opens_with", OPENERS, "start with '{w}'", E.opens_with),
        (
            "start with '{w}'",
            "open with the words '{w}'",
            "begin the answer with '{w}'",
            "first words: '{w}'",
        ),
        8.6,
        groups=("header", "opening"),
        excludes=BULLET_FAMILY,
        kinds=NOT_EMAIL,
    ),
    AtomType(
        "emoji_start",
        _one("emoji_start", "start with an emoji", E.emoji_start()),
        (
            "start with an emoji",
            "open with an emoji",
            "put an emoji at the very beginning",
            "first character: an emoji",
        ),
        8.7,
        groups=("header", "opening"),
        excludes=(*BULLET_FAMILY, "no_emoji", "plain_ascii"),
        kinds=NOT_EMAIL,
    ),
    AtomType(
        "no_contractions",
        _one("no_contractions", "no contractions (do not, not don't)", W.no_contractions()),
        (
            "no contractions",
            "write 'do not', never 'don't'",
            "spell out contractions",
            "avoid contractions like it's or we're",
        ),
        9.1,
        groups=("contractions",),
    ),
    AtomType(
        "avoid_word",
        _valued("avoid_word", AVOIDED_SINGLES, "never use the word '{w}'", _avoid),
        (
            "never use the word '{w}'",
            "avoid the word '{w}'",
            "don't write '{w}'",
            "cut every '{w}'",
        ),
        9.2,
    ),
    AtomType(
        "no_hedging",
        _one(
            "no_hedging", "no hedging words (perhaps, maybe, possibly)", W.without_words(W.HEDGES)
        ),
        (
            "no hedging words",
            "don't hedge: no perhaps, maybe or possibly",
            "be direct, no 'maybe' or 'probably'",
            "drop hedges like perhaps",
        ),
        9.3,
    ),
    AtomType(
        "filler_free",
        _one("filler_free", "no filler words (very, really, just)", W.without_words(W.AVOIDED)),
        (
            "no filler words",
            "cut filler like very, really and just",
            "no 'very', 'really', 'basically'",
            "tight wording without fillers",
        ),
        9.25,
    ),
    AtomType(
        "british_spelling",
        _one("british_spelling", "British spelling (colour, organise)", W.spelling(W.US_UK)),
        (
            "British spelling",
            "UK spelling: colour, organise, centre",
            "spell the British way",
            "use British English spellings",
        ),
        9.4,
        groups=("spelling",),
    ),
    AtomType(
        "american_spelling",
        _one(
            "american_spelling",
            "American spelling (color, organize)",
            W.spelling({v: k for k, v in W.US_UK.items()}),
        ),
        (
            "American spelling",
            "US spelling: color, organize, center",
            "spell the American way",
            "use American English spellings",
        ),
        9.5,
        groups=("spelling",),
    ),
    AtomType(
        "no_commas",
        _one("no_commas", "no commas", W.no_commas()),
        (
            "no commas",
            "don't use any commas",
            "write without a single comma",
            "avoid commas entirely",
        ),
        9.6,
        kinds=NOT_EMAIL,
    ),
    AtomType(
        "no_parentheses",
        _one("no_parentheses", "no parentheses", W.no_parentheses()),
        (
            "no parentheses",
            "no asides in brackets",
            "don't use parentheses",
            "leave out parenthetical remarks",
        ),
        9.7,
    ),
    AtomType(
        "bold_terms",
        _one("bold_terms", "bold the key term", W.bold_terms()),
        (
            "bold the key term",
            "put key words in **bold**",
            "highlight a key term in bold",
            "use **bold** for the main term",
        ),
        9.8,
    ),
    AtomType(
        "no_markdown",
        _one("no_markdown", "plain text, no markdown", W.no_markdown()),
        (
            "plain text, no markdown",
            "no markdown formatting",
            "no '#' headings, no '**', no list markers",
            "don't use markdown",
        ),
        9.9,
        excludes=(*BULLET_FAMILY, "title", "bold_title", "bold_terms"),
    ),
    AtomType(
        "plain_ascii",
        _one("plain_ascii", "plain ASCII characters only", W.plain_ascii()),
        (
            "plain ASCII characters only",
            "straight quotes and plain dashes, no special symbols",
            "ASCII only, no fancy characters",
            "only plain keyboard characters",
        ),
        9.95,
        excludes=("ends_with_emoji",),
    ),
    AtomType(
        "no_outro",
        _one("no_outro", "no closing offer of help ('Hope this helps')", E.no_outro()),
        (
            "no 'hope this helps' or 'let me know' at the end",
            "skip the closing offer of help",
            "don't end with 'feel free to reach out'",
            "no outro line",
        ),
        11.5,
        groups=("ending",),
    ),
    AtomType(
        "ends_with",
        _valued("ends_with", ENDINGS, "end with '{w}'", E.ends_with),
        (
            "end with '{w}'",
            "finish with the words '{w}'",
            "last sentence: '{w}'",
            "close the text with '{w}'",
        ),
        14.2,
        groups=("ending",),
    ),
    AtomType(
        "postscript",
        _one("postscript", "end with a P.S. line", E.last_line_starts("P.S. ", E.postscript)),
        (
            "end with a P.S. line",
            "add a P.S. at the end",
            "finish with a postscript (P.S.)",
            "a P.S. as the last line",
        ),
        14.4,
        groups=("ending", "layout"),
    ),
    AtomType(
        "in_short",
        _one(
            "in_short",
            "end with an 'In short:' line",
            E.last_line_starts("In short: ", E.in_short),
        ),
        (
            "end with an 'In short:' line",
            "close with a one-line 'In short:' recap",
            "finish with 'In short:' and the gist",
            "a last line starting 'In short:'",
        ),
        14.6,
        groups=("ending", "layout"),
    ),
    AtomType(
        "max_sentences",
        _sized("max_sentences", (2, 3, 4, 5), "at most {n} sentences", E.max_sentences),
        (
            "at most {n} sentences",
            "no more than {n} sentences",
            "{n} sentences max",
            "keep it to {n} sentences or fewer",
        ),
        16.5,
        groups=("length",),
    ),
)
