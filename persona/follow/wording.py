"""Checkers and editors of wording habits, for the follow adapter's extra atom types.

Contractions, words never to use, spelling variety, commas, parentheses, bold terms, markdown
and plain ASCII: each factory returns a ``(check, edit)`` pair (see :mod:`.editors`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from persona.bench.text import parse, split_marker
from persona.follow.editors import Pair, _capitalise

_CONTRACTIONS = {
    "don't": "do not", "doesn't": "does not", "didn't": "did not", "can't": "cannot",
    "won't": "will not", "isn't": "is not", "aren't": "are not", "wasn't": "was not",
    "weren't": "were not", "haven't": "have not", "hasn't": "has not", "hadn't": "had not",
    "wouldn't": "would not", "shouldn't": "should not", "couldn't": "could not",
    "it's": "it is", "that's": "that is", "there's": "there is", "what's": "what is",
    "let's": "let us", "i'm": "I am", "i've": "I have", "i'll": "I will", "i'd": "I would",
    "you're": "you are", "you've": "you have", "you'll": "you will", "you'd": "you would",
    "we're": "we are", "we've": "we have", "we'll": "we will", "we'd": "we would",
    "they're": "they are", "they've": "they have", "they'll": "they will",
    "he's": "he is", "she's": "she is", "here's": "here is", "who's": "who is",
}  # fmt: skip
_CONTRACTION = re.compile(
    r"\b(" + "|".join(re.escape(k).replace("'", "['’]") for k in _CONTRACTIONS) + r")\b",
    re.IGNORECASE,
)


def _expand(m: re.Match[str]) -> str:
    word = m.group(0)
    full = _CONTRACTIONS[word.lower().replace("’", "'")]
    return _capitalise(full) if word[0].isupper() else full


def no_contractions() -> Pair:
    return (lambda t: not _CONTRACTION.search(t)), (lambda t: _CONTRACTION.sub(_expand, t))


def without_words(words: Sequence[str]) -> Pair:
    """Never use ``words``; the editor drops them (and a comma right after one), keeping
    sentence-initial capitals."""
    found = re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)
    wanted = {w.lower() for w in words}

    def core(token: str) -> str:
        return token.strip(",.;:!?\"'()").lower()

    def edit_line(line: str) -> str:
        marker, rest = split_marker(line)
        tokens = rest.split(" ")
        out: list[str] = []
        capital_next = False
        for k, tok in enumerate(tokens):
            if core(tok) in wanted and tok.strip(",;:") == tok.strip(",;:").strip(".!?"):
                starts = not out or bool(re.search(r"[.!?]$", out[-1]))
                capital_next = capital_next or (starts and k + 1 < len(tokens))
                continue
            if capital_next:
                tok = _capitalise(tok)
                capital_next = False
            out.append(tok)
        return marker + " ".join(t for t in out if t)

    def edit(text: str) -> str:
        text = "\n".join(edit_line(line) for line in text.splitlines())
        # a word still left (e.g. with a full stop after it): dropped with its space
        return re.sub(r"\s*\b(" + "|".join(map(re.escape, words)) + r")\b", "", text, flags=re.I)

    return (lambda t: not found.search(t)), edit


HEDGES = ("perhaps", "maybe", "possibly", "probably", "arguably")
AVOIDED = ("very", "really", "just", "actually", "basically", "overall", "additionally", "also")


def no_commas() -> Pair:
    return (lambda t: "," not in t), (lambda t: re.sub(r",(\s*)", r"\1", t))


def no_parentheses() -> Pair:
    def edit(text: str) -> str:
        previous = None
        while previous != text:
            previous, text = text, re.sub(r"[ \t]*\([^()]*\)", "", text)
        return text.replace("(", "").replace(")", "")

    return (lambda t: "(" not in t and ")" not in t), edit


_BOLD = re.compile(r"\*\*[^*\n]+\*\*")


def bold_terms() -> Pair:
    def edit(text: str) -> str:
        parts = parse(text)
        for i, line in enumerate(parts.body):
            marker, rest = split_marker(line)
            tokens = rest.split(" ")
            for k, tok in enumerate(tokens):
                m = re.match(r"^([A-Za-z][A-Za-z-]{4,})([,.;:!?]*)$", tok)
                if m:
                    tokens[k] = f"**{m.group(1)}**{m.group(2)}"
                    parts.body[i] = marker + " ".join(tokens)
                    return parts.render()
        return text

    return (lambda t: bool(_BOLD.search(t))), edit


def no_markdown() -> Pair:
    def check(text: str) -> bool:
        return "**" not in text and not any(
            line.strip().startswith("#") or split_marker(line.strip())[0]
            for line in text.splitlines()
        )

    def edit(text: str) -> str:
        lines = []
        for line in text.replace("**", "").splitlines():
            line = re.sub(r"^\s*#+\s*", "", line)
            lines.append(split_marker(line.strip())[1])
        return "\n".join(lines).strip()

    return check, edit


def plain_ascii() -> Pair:
    table = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "—": "-", "–": "-", "…": "..."})

    def edit(text: str) -> str:
        text = text.translate(table)
        kept = "".join(c for c in text if c.isascii())
        return "\n".join(" ".join(line.split()) for line in kept.splitlines()).strip()

    return (lambda t: t.isascii()), edit


US_UK = {
    "color": "colour", "favorite": "favourite", "behavior": "behaviour", "honor": "honour",
    "labor": "labour", "neighbor": "neighbour", "flavor": "flavour", "center": "centre",
    "theater": "theatre", "meter": "metre", "defense": "defence", "catalog": "catalogue",
    "traveling": "travelling", "traveled": "travelled", "canceled": "cancelled",
    "organize": "organise", "organization": "organisation", "realize": "realise",
    "recognize": "recognise", "prioritize": "prioritise", "summarize": "summarise",
    "apologize": "apologise", "optimize": "optimise", "minimize": "minimise",
    "maximize": "maximise", "emphasize": "emphasise", "customize": "customise",
    "analyze": "analyse", "utilize": "utilise", "finalize": "finalise",
}  # fmt: skip


def _forms(a: str, b: str) -> dict[str, str]:
    """Every inflected form of ``a`` with its counterpart in ``b`` (organize → organises ...)."""
    if a.endswith("e") and b.endswith("e"):
        tails: tuple[str, ...] = ("e", "es", "ed", "ing", "ation", "ations", "er", "ers")
        return {a[:-1] + t: b[:-1] + t for t in tails}
    tails = ("", "s", "ed", "ing") if a.endswith(("or", "our")) else ("", "s")
    return {a + t: b + t for t in tails}


def spelling(mapping: dict[str, str]) -> Pair:
    forms = {k: v for a, b in mapping.items() for k, v in _forms(a, b).items()}
    pattern = re.compile(
        r"\b(" + "|".join(sorted(map(re.escape, forms), key=len, reverse=True)) + r")\b",
        re.IGNORECASE,
    )

    def swap(m: re.Match[str]) -> str:
        word = m.group(0)
        new = forms[word.lower()]
        return _capitalise(new) if word[0].isupper() else new

    return (lambda t: not pattern.search(t)), (lambda t: pattern.sub(swap, t))
