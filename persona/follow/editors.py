"""Checkers and editors of the follow adapter's extra atom types (see :mod:`.more_atoms`).

Each factory returns a ``(check, edit)`` pair for :class:`~persona.bench.atoms.Atom`, built on
the edit benchmark's text model (head, body, foot) so they compose with its atoms. Editors
change as little as they can; where an edit is impossible (three bullet points from one
sentence) the text is returned as it is, and the data generator drops that example.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from persona.bench.atoms import TLDR, _drop_prefix, _first_line, _greetings, _items, _set_greeting
from persona.bench.text import (
    EMOJI,
    TLDR_PREFIX,
    Parts,
    append_to_body,
    end_sentence,
    header_text,
    is_header,
    last_sentence,
    parse,
    split_marker,
    split_sentences,
)

Pair = tuple[Callable[[str], bool], Callable[[str], str]]

_INTRO = re.compile(
    r"^(sure|certainly|of course|absolutely|great question|here is|here's|here are|below is)\b",
    re.IGNORECASE,
)
_OUTRO = re.compile(
    r"\b(hope this helps|let me know|feel free|happy to help|(don't|do not) hesitate|"
    r"if you have any|reach out)\b",
    re.IGNORECASE,
)


def _content_lines(text: str) -> list[str]:
    return parse(text).content


def _flat_sentences(parts: Parts) -> list[str]:
    return [
        " ".join(s)
        for line in parts.content
        for s in split_sentences(split_marker(line)[1].split())
    ]


def _capitalise(s: str) -> str:
    return s[:1].upper() + s[1:]


def _filler(sentence: str) -> bool:
    """A preamble or an offer of more help: what a shortening editor drops first."""
    return bool(_INTRO.match(sentence) or _OUTRO.search(sentence))


def _gist(parts: Parts, limit: int) -> str:
    """The first real sentence of the body (not a preamble), cut to ``limit`` words at a
    comma where one comes late enough; for a new title or recap line."""
    sentences = [s for s in _flat_sentences(parts) if not _filler(s) and len(s.split()) >= 4]
    if not sentences:
        return header_text(parts, limit, "that is the gist")
    words = EMOJI.sub("", sentences[0]).split()
    if len(words) > limit:
        cut = max((i for i, w in enumerate(words[:limit]) if w.endswith(",")), default=-1)
        words = words[: cut + 1] if cut >= 3 else words[:limit]
    return " ".join(words).rstrip(".,;:!?*")


def tldr_line() -> Pair:
    """The benchmark's TL;DR, as a training target: the header is the first real sentence
    when it is short, else its words up to a comma, and it ends with a full stop.

    The benchmark's editor (the scripted user's edit) writes the first 12 words of the first
    sentence and breaks the line there, mid-sentence: a break no model can predict, and the
    local model learned to write its whole answer on the TL;DR line instead (session 25). A
    line that ends where a sentence or clause ends gives it a place to stop."""

    def edit(text: str) -> str:
        if TLDR.check(text):
            return text
        parts = parse(text)
        if any(TLDR.check(h) for h in parts.head):  # a header further down: move it first
            return TLDR.edit(text)
        _drop_prefix(parts, TLDR_PREFIX)  # a whole answer behind the prefix
        parts.head = [h for h in parts.head if not TLDR_PREFIX.match(h)]
        parts.head.insert(0, f"TL;DR: {_capitalise(_gist(parts, 14))}.")
        return parts.render()

    return TLDR.check, edit


# --------------------------------------------------------------------------- layouts


def marked(prefix: str) -> Pair:
    def check(text: str) -> bool:
        lines = _content_lines(text)
        return bool(lines) and all(
            line.startswith(prefix) and line[len(prefix) :].strip() for line in lines
        )

    def edit(text: str) -> str:
        parts = parse(text)
        body: list[str] = []
        for line in parts.content:
            if line.startswith(prefix) and line[len(prefix) :].strip():
                body.append(line)
            else:
                body.extend(f"{prefix}{item}" for item in _items([line]) if item)
        parts.body = body
        return parts.render()

    return check, edit


def exact_bullets(n: int) -> Pair:
    def check(text: str) -> bool:
        lines = _content_lines(text)
        return len(lines) == n and all(line.startswith("- ") and line[2:].strip() for line in lines)

    def edit(text: str) -> str:
        parts = parse(text)
        every = [i for i in _items(parts.content) if i]
        items = [i for i in every if not _filler(i)] or every
        while len(items) < n:  # too few: split the longest item that has a comma
            splittable = [k for k, item in enumerate(items) if ", " in item]
            if not splittable:
                break
            longest = max(splittable, key=lambda k: len(items[k]))
            head, _, tail = items[longest].partition(", ")
            items[longest : longest + 1] = [end_sentence(head), _capitalise(tail)]
        if len(items) > n:  # too many: keep the first ones and the last
            items = [*items[: n - 1], items[-1]]
        parts.body = [f"- {item}" for item in items]
        return parts.render()

    return check, edit


def prose_only() -> Pair:
    def check(text: str) -> bool:
        return not any(split_marker(line)[0] for line in _content_lines(text))

    def edit(text: str) -> str:
        parts = parse(text)
        body: list[str] = []
        run: list[str] = []
        for line in parts.body:
            marker, rest = split_marker(line)
            if marker:
                run.append(end_sentence(_capitalise(rest.strip())))
                continue
            if run:
                body.append(" ".join(run))
                run = []
            body.append(line)
        if run:
            body.append(" ".join(run))
        parts.body = body
        return parts.render()

    return check, edit


def paragraphs(count: int) -> Pair:
    def check(text: str) -> bool:
        lines = _content_lines(text)
        return len(lines) == count and not any(split_marker(line)[0] for line in lines)

    def edit(text: str) -> str:
        parts = parse(text)
        sentences = _flat_sentences(parts)
        if len(sentences) < count:
            return text
        cut = -(-len(sentences) // count)
        parts.body = [" ".join(sentences[:cut]), "", " ".join(sentences[cut:])]
        return parts.render()

    return check, edit


def sentence_lines() -> Pair:
    def check(text: str) -> bool:
        return all(
            not split_marker(line)[0] and len(split_sentences(line.split())) == 1
            for line in _content_lines(text)
        )

    def edit(text: str) -> str:
        parts = parse(text)
        parts.body = _flat_sentences(parts)
        return parts.render()

    return check, edit


def short_paragraphs(n: int) -> Pair:
    def check(text: str) -> bool:
        return all(len(split_sentences(line.split())) <= n for line in _content_lines(text))

    def edit(text: str) -> str:
        parts = parse(text)
        body: list[str] = []
        for line in parts.body:
            marker, rest = split_marker(line)
            sentences = [" ".join(s) for s in split_sentences(rest.split())]
            if len(sentences) <= n:
                body.append(line)
                continue
            for k in range(0, len(sentences), n):
                body += [("" if k else marker) + " ".join(sentences[k : k + n]), ""]
        parts.body = body
        return parts.render()

    return check, edit


def spaced() -> Pair:
    def check(text: str) -> bool:
        body = parse(text).body
        return not any(a and b for a, b in zip(body, body[1:], strict=False))

    def edit(text: str) -> str:
        parts = parse(text)
        parts.body = [x for line in parts.content for x in (line, "")]
        return parts.render()

    return check, edit


# --------------------------------------------------------------------------- openings


def opens_with(w: str) -> Pair:
    def check(text: str) -> bool:
        first = _first_line(text)
        return first.startswith(w + " ") and bool(first[len(w) :].strip())

    def edit(text: str) -> str:
        lines = text.strip().splitlines()
        first = lines[0].strip() if lines else ""
        if first and not split_marker(first)[0] and not is_header(first):
            lines[0] = f"{w} {first}"
            return "\n".join(lines)
        gist = _gist(parse(text), 10)
        return f"{w} {gist}.\n\n{text.strip()}".strip()

    return check, edit


def _first_body_sentence(text: str) -> str:
    content = _content_lines(text)
    if not content:
        return ""
    sentences = split_sentences(split_marker(content[0])[1].split())
    return " ".join(sentences[0]) if sentences else ""


def no_intro() -> Pair:
    def check(text: str) -> bool:
        return not _INTRO.match(_first_body_sentence(text))

    def edit(text: str) -> str:
        parts = parse(text)
        for _ in range(2):
            idx = next((i for i, line in enumerate(parts.body) if line), None)
            if idx is None:
                break
            marker, rest = split_marker(parts.body[idx])
            sentences = [" ".join(s) for s in split_sentences(rest.split())]
            if not sentences or not _INTRO.match(sentences[0]):
                break
            _, colon, after = sentences[0].partition(": ")
            rest_of_first = [after] if colon and after else []
            remaining = " ".join([*rest_of_first, *sentences[1:]])
            parts.body[idx] = f"{marker}{_capitalise(remaining)}" if remaining else ""
        return parts.render()

    return check, edit


THANKS = "Thank you for reaching out."


def thanks_first() -> Pair:
    def check(text: str) -> bool:
        return _first_body_sentence(text).startswith("Thank")

    def edit(text: str) -> str:
        parts = parse(text)
        idx = next((i for i, line in enumerate(parts.body) if line), None)
        if idx is None:
            parts.body = [THANKS]
        elif split_marker(parts.body[idx])[0]:
            parts.body.insert(idx, THANKS)
        else:
            parts.body[idx] = f"{THANKS} {parts.body[idx]}"
        return parts.render()

    return check, edit


_BOLD_LINE = re.compile(r"^\*\*[^*\n]+\*\*$")


def bold_title() -> Pair:
    def check(text: str) -> bool:
        return bool(_BOLD_LINE.match(_first_line(text)))

    def edit(text: str) -> str:
        lines = text.strip().splitlines()
        first = lines[0].strip() if lines else ""
        if first.startswith("# ") and first[2:].strip():
            lines[0] = f"**{first[2:].strip()}**"
            return "\n".join(lines)
        lead = Parts([], [_gist(parse(text), 12)], [])
        title = header_text(lead, 6, "Summary", phrase=True).replace("*", "")
        return f"**{title}**\n\n{text.strip()}".strip()

    return check, edit


def emoji_start() -> Pair:
    def check(text: str) -> bool:
        return bool(EMOJI.match(text.lstrip()))

    def edit(text: str) -> str:
        return f"✨ {text.lstrip()}"

    return check, edit


# --------------------------------------------------------------------------- email frame


def greeting_hello() -> Pair:
    def check(text: str) -> bool:
        greetings = _greetings(parse(text))
        return bool(greetings) and all(g.startswith("Hello") for g in greetings)

    def edit(text: str) -> str:
        parts = parse(text)
        _set_greeting(parts, ("Hello",), "Hello,")
        return parts.render()

    return check, edit


def closing_word(w: str) -> Pair:
    def check(text: str) -> bool:
        foot = parse(text).foot
        return bool(foot) and foot[0] == w

    def edit(text: str) -> str:
        parts = parse(text)
        parts.foot = [w, *parts.foot[1:]]
        return parts.render()

    return check, edit


def signed(w: str) -> Pair:
    def check(text: str) -> bool:
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        return bool(lines) and lines[-1] == w and bool(parse(text).foot)

    def edit(text: str) -> str:
        parts = parse(text)
        parts.foot = [parts.foot[0], w] if parts.foot else ["Best,", w]
        return parts.render()

    return check, edit


# --------------------------------------------------------------------------- endings


def ends_with(w: str) -> Pair:
    return (lambda t: last_sentence(t) == w), (lambda t: append_to_body(t, w))


def no_outro() -> Pair:
    def edit(text: str) -> str:
        parts = parse(text)
        for _ in range(3):
            idx = max((i for i, line in enumerate(parts.body) if line), default=-1)
            if idx < 0:
                break
            marker, rest = split_marker(parts.body[idx])
            sentences = [" ".join(s) for s in split_sentences(rest.split())]
            if not sentences or not _OUTRO.search(sentences[-1]):
                break
            remaining = " ".join(sentences[:-1])
            parts.body[idx] = f"{marker}{remaining}" if remaining else ""
        return parts.render()

    return (lambda t: not _OUTRO.search(last_sentence(t))), edit


def last_line_starts(prefix: str, make: Callable[[Parts], str]) -> tuple[Callable, Callable]:
    def check(text: str) -> bool:
        content = _content_lines(text)
        return bool(content) and content[-1].startswith(prefix) and len(content[-1]) > len(prefix)

    def edit(text: str) -> str:
        parts = parse(text)
        line = f"{prefix}{make(parts)}"  # before reading the body: make may take from it
        parts.body = [*parts.body, "", line]
        return parts.render()

    return check, edit


def postscript(parts: Parts) -> str:
    """The body's last sentence moved to a P.S. (or a short thanks when there is only one)."""
    sentences = _flat_sentences(parts)
    if len(sentences) < 2:
        return "Thanks for reading."
    idx = max(i for i, line in enumerate(parts.body) if line)
    marker, rest = split_marker(parts.body[idx])
    own = [" ".join(s) for s in split_sentences(rest.split())]
    parts.body[idx] = f"{marker}{' '.join(own[:-1])}" if len(own) > 1 else ""
    return own[-1] if own else sentences[-1]


def in_short(parts: Parts) -> str:
    return _gist(parts, 14) + "."


def max_sentences(n: int) -> Pair:
    """At most ``n`` body sentences; the editor keeps the first ``n - 1`` and the last."""

    def count(text: str) -> int:
        return sum(len(split_sentences(split_marker(ln)[1].split())) for ln in _content_lines(text))

    def edit(text: str) -> str:
        parts = parse(text)
        units = [
            (i, " ".join(s))
            for i, line in enumerate(parts.body)
            for s in split_sentences(split_marker(line)[1].split())
        ]
        real = [k for k, (_, sentence) in enumerate(units) if not _filler(sentence)]
        real = real or list(range(len(units)))
        keep = set(real[: n - 1]) | set(real[-1:])
        kept: dict[int, list[str]] = {}
        for k, (i, sentence) in enumerate(units):
            if k in keep:
                kept.setdefault(i, []).append(sentence)
        body: list[str] = []
        for i, line in enumerate(parts.body):
            if not line:
                body.append("")
            elif i in kept:
                body.append(split_marker(line)[0] + " ".join(kept[i]))
        parts.body = body
        return parts.render()

    return (lambda t: count(t) <= n), edit
