"""The text model the preference atoms read: a text as head, body and foot.

- the **head**: the leading lines that are a ``TL;DR:`` line, a ``# title`` line, a
  ``Subject:`` line or a greeting (``Dear Sam,``, ``Hi all,``);
- the **foot**: from the first sign-off line (``Best regards,``, ``Cheers,``, ...) to the end;
- the **body**: everything in between.

Atoms about the frame of a text edit its head and foot; atoms about its content (bullets,
sentence length, word limits, the ending) read and edit its body
(:mod:`persona.bench.atoms`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: Emoji and pictographs (plus the variation selector and zero-width joiner that build them).
EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2300-\u23ff\u2b00-\u2bff\ufe0f\u200d]")
TLDR_PREFIX = re.compile(r"^tl;dr:", re.IGNORECASE)
TITLE_PREFIX = re.compile(r"^#\s+\S")
SUBJECT_PREFIX = re.compile(r"^subject:", re.IGNORECASE)
GREETING = re.compile(r"^(dear|hi|hello|hey)\b([^!?\n]{0,40}),$", re.IGNORECASE)
CLOSING = re.compile(
    r"^(best regards|kind regards|warm regards|regards|sincerely|yours sincerely|yours truly|"
    r"best wishes|all the best|best|cheers|thanks|thank you|many thanks)\s*[,.!]?$",
    re.IGNORECASE,
)
MARKER = re.compile(r"^(?:[-*•+]|\d+[.)])\s+")
SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*$")


@dataclass
class Parts:
    head: list[str]  # non-blank header lines, stripped
    body: list[str]  # stripped lines, blank lines kept (paragraph breaks)
    foot: list[str]  # non-blank sign-off lines, stripped

    @property
    def content(self) -> list[str]:
        return [line for line in self.body if line]

    def render(self) -> str:
        body: list[str] = []
        for line in self.body:  # collapse blank runs; trim blank edges
            if line or (body and body[-1]):
                body.append(line)
        while body and not body[-1]:
            body.pop()
        pieces = ["\n\n".join(self.head), "\n".join(body), "\n".join(self.foot)]
        return "\n\n".join(p for p in pieces if p)


#: Words a header line (TL;DR, title, subject) may hold. A longer line that opens with a
#: header's prefix is the answer itself behind that prefix: it is content, and the header it
#: pretends to be is missing. Otherwise an answer written as one long "TL;DR: ..." line passes
#: "start with a one-line TL;DR" and, with no body left to check, "bullet points" and "short
#: sentences" too, at no cost (session 25).
HEADER_WORDS = 25


def is_header(line: str) -> bool:
    if GREETING.match(line):
        return True
    prefixed = TLDR_PREFIX.match(line) or TITLE_PREFIX.match(line) or SUBJECT_PREFIX.match(line)
    return bool(prefixed) and len(line.split()) <= HEADER_WORDS


def parse(text: str) -> Parts:
    lines = [line.strip() for line in text.splitlines()]
    i = 0
    head: list[str] = []
    while i < len(lines) and (not lines[i] or is_header(lines[i])):
        if lines[i]:
            head.append(lines[i])
        i += 1
    rest = lines[i:]
    end = next((k for k, line in enumerate(rest) if CLOSING.match(line)), len(rest))
    return Parts(head, rest[:end], [line for line in rest[end:] if line])


def has_body(text: str) -> bool:
    """True when ``text`` holds content between its head and its foot."""
    return bool(parse(text).content)


def with_body(text: str, body: str) -> str:
    """``text`` with ``body`` as its only body line; its head and foot kept."""
    parts = parse(text)
    parts.body = [body]
    return parts.render()


def split_marker(line: str) -> tuple[str, str]:
    m = MARKER.match(line)
    return (m.group(0), line[m.end() :]) if m else ("", line)


def is_word(token: str) -> bool:
    return any(c.isalnum() for c in token)


def split_sentences(tokens: Sequence[str]) -> list[list[str]]:
    """Tokens grouped into sentences; trailing word-less tokens (an emoji) join the last one."""
    out: list[list[str]] = [[]]
    for tok in tokens:
        out[-1].append(tok)
        if SENTENCE_END.search(tok):
            out.append([])
    out = [s for s in out if s]
    if len(out) > 1 and not any(is_word(t) for t in out[-1]):
        out[-2].extend(out.pop())
    return out


def line_words(line: str) -> int:
    return sum(is_word(t) for t in split_marker(line)[1].split())


_SMALL = frozenset(
    "a an the of to in on at and or for with by from is are was were has have".split()
)


def header_text(parts: Parts, limit: int, fallback: str, *, phrase: bool = False) -> str:
    """The first ``limit`` words of the body's first sentence (emoji-free), for a new header.

    With ``phrase``, stop early at the first comma, bracket or 'is'/'are'/'was', and drop
    trailing small words, so a title reads as a noun phrase ("The axolotl").
    """
    source = parts.content or parts.head + parts.foot
    words: list[str] = []
    for line in source:
        for sentence in split_sentences(split_marker(line)[1].split()):
            words = [EMOJI.sub("", t) for t in sentence if is_word(t)]
            if words:
                break
        if words:
            break
    words = [w for w in words if w][:limit]
    if phrase:
        for i, w in enumerate(words):
            if i and (w.lower() in {"is", "are", "was", "were"} or w.startswith("(")):
                words = words[:i]
                break
            if i and w[-1] in ",;:)":
                words = words[: i + 1]
                break
        while len(words) > 1 and words[-1].lower().rstrip(".,;:!?") in _SMALL:
            words.pop()
    if not words:
        return fallback
    words[-1] = words[-1].rstrip(".,;:!?")
    return " ".join(w for w in words if w) or fallback


def end_sentence(line: str) -> str:
    """``line`` with a terminal full stop, so a sentence can follow it."""
    if SENTENCE_END.search(line):
        return line
    if line and line[-1] in ",;:—-":
        return line[:-1] + "."
    return line + "."


def append_to_body(text: str, sentence: str, *, punctuate: bool = True) -> str:
    """``sentence`` appended to the last body line (after a full stop if ``punctuate``)."""
    parts = parse(text)
    idx = max((i for i, line in enumerate(parts.body) if line), default=-1)
    if idx < 0:
        parts.body = [sentence]
    else:
        marker, rest = split_marker(parts.body[idx])
        rest = end_sentence(rest) if rest and punctuate else rest
        parts.body[idx] = f"{marker}{rest} {sentence}".strip()
    return parts.render()


def last_sentence(text: str) -> str:
    content = parse(text).content
    if not content:
        return ""
    sentences = split_sentences(split_marker(content[-1])[1].split())
    return " ".join(sentences[-1]) if sentences else ""
