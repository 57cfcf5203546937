"""Executable preference atoms: one checkable, rule-based editable trait of a text each.

A latent preference in the PRELUDE environment is a few atoms ("bullet points; at most 60
words; start with a title line"). Each :class:`Atom` can *check* a text and *edit* it with a
deterministic, minimal rule, so a scripted user edits like a person with that preference:

- ``atom.check(atom.edit(t))`` holds for every text ``t``;
- ``atom.edit(t) == t`` when ``atom.check(t)`` (a satisfied user changes nothing), hence
  editing is idempotent;
- editors change as few words as they can (cost is word-level edit distance).

Text model. A text is read as three parts, so atoms about the frame of a text and atoms about
its content compose:

- the **head**: the leading lines that are a ``TL;DR:`` line, a ``# title`` line, a
  ``Subject:`` line or a greeting (``Dear Sam,``, ``Hi all,``);
- the **foot**: from the first sign-off line (``Best regards,``, ``Cheers,``, ...) to the end;
- the **body**: everything in between.

Content atoms (bullets, numbering, sentence length, word limits, the ending) look at the body
only; a word limit counts body words (tokens with a letter or digit, list markers excluded),
so adding a TL;DR, a title or a greeting never breaks it. The word-limit editor keeps the
opening words and the *last sentence* and cuts the middle, so a sentence an earlier atom
appended (a question, a call to action) survives it. :func:`apply_atoms` applies a source's
atoms in their fixed order, repeating (at most three passes) until every check passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

#: Emoji and pictographs (plus the variation selector and zero-width joiner that build them).
EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2300-\u23ff\u2b00-\u2bff\ufe0f\u200d]")
_TLDR = re.compile(r"^tl;dr:", re.IGNORECASE)
_TLDR_FULL = re.compile(r"^tl;dr:\s*\S", re.IGNORECASE)
_TITLE = re.compile(r"^#\s+\S")
_SUBJECT = re.compile(r"^subject:", re.IGNORECASE)
_SUBJECT_FULL = re.compile(r"^subject:\s*\S", re.IGNORECASE)
_GREETING = re.compile(r"^(dear|hi|hello|hey)\b([^!?\n]{0,40}),$", re.IGNORECASE)
_CLOSING = re.compile(
    r"^(best regards|kind regards|warm regards|regards|sincerely|yours sincerely|yours truly|"
    r"best wishes|all the best|best|cheers|thanks|thank you|many thanks)\s*[,.!]?$",
    re.IGNORECASE,
)
_FORMAL_CLOSING = re.compile(r"^(Best regards|Kind regards|Sincerely|Yours sincerely),$")
_MARKER = re.compile(r"^(?:[-*•+]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*$")
_CTA = re.compile(
    r"\b(please|let me know|sign up|register|rsvp|reply|join us|get in touch)\b", re.IGNORECASE
)
_HASHTAG = re.compile(r"(?:^|\s)#[A-Za-z]\w*")
_CONJUNCTIONS = frozenset({"and", "but", "so", "because", "while", "although"})
_PREPOSITIONS = frozenset(
    {"to", "with", "for", "in", "on", "at", "after", "before", "during", "from", "by", "that"}
)

#: What the editors add when a sentence is missing.
QUESTION = "What do you think?"
CALL_TO_ACTION = "Please reply to confirm."
END_EMOJI = "🙂"


@dataclass(frozen=True)
class Atom:
    """One executable preference trait: a description, a checker and a minimal editor."""

    name: str
    description: str
    checker: Callable[[str], bool] = field(repr=False, compare=False)
    editor: Callable[[str], str] = field(repr=False, compare=False)

    def check(self, text: str) -> bool:
        """True when ``text`` already has this trait."""
        return self.checker(text)

    def edit(self, text: str) -> str:
        """``text`` edited to have this trait; unchanged when it already has it."""
        return text if self.checker(text) else self.editor(text)


def apply_atoms(atoms: Sequence[Atom], text: str, *, max_passes: int = 3) -> str:
    """Apply ``atoms`` in order, repeating until all pass (at most ``max_passes`` passes)."""
    for _ in range(max_passes):
        if all(atom.check(text) for atom in atoms):
            break
        for atom in atoms:
            text = atom.edit(text)
    return text


# --------------------------------------------------------------------------- text model


@dataclass
class _Parts:
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


def _is_header(line: str) -> bool:
    if _GREETING.match(line):
        return True
    prefixed = _TLDR.match(line) or _TITLE.match(line) or _SUBJECT.match(line)
    return bool(prefixed) and len(line.split()) <= HEADER_WORDS


def _parse(text: str) -> _Parts:
    lines = [line.strip() for line in text.splitlines()]
    i = 0
    head: list[str] = []
    while i < len(lines) and (not lines[i] or _is_header(lines[i])):
        if lines[i]:
            head.append(lines[i])
        i += 1
    rest = lines[i:]
    end = next((k for k, line in enumerate(rest) if _CLOSING.match(line)), len(rest))
    return _Parts(head, rest[:end], [line for line in rest[end:] if line])


def has_body(text: str) -> bool:
    """True when ``text`` holds content between its head and its foot."""
    return bool(_parse(text).content)


def with_body(text: str, body: str) -> str:
    """``text`` with ``body`` as its only body line; its head and foot kept."""
    parts = _parse(text)
    parts.body = [body]
    return parts.render()


def _split_marker(line: str) -> tuple[str, str]:
    m = _MARKER.match(line)
    return (m.group(0), line[m.end() :]) if m else ("", line)


def _is_word(token: str) -> bool:
    return any(c.isalnum() for c in token)


def _sentences(tokens: Sequence[str]) -> list[list[str]]:
    """Tokens grouped into sentences; trailing word-less tokens (an emoji) join the last one."""
    out: list[list[str]] = [[]]
    for tok in tokens:
        out[-1].append(tok)
        if _SENTENCE_END.search(tok):
            out.append([])
    out = [s for s in out if s]
    if len(out) > 1 and not any(_is_word(t) for t in out[-1]):
        out[-2].extend(out.pop())
    return out


def _words(line: str) -> int:
    return sum(_is_word(t) for t in _split_marker(line)[1].split())


_STOP = frozenset(
    "a an the of to in on at and or for with by from is are was were has have".split()
)


def _summary(parts: _Parts, limit: int, fallback: str, *, phrase: bool = False) -> str:
    """The first ``limit`` words of the body's first sentence (emoji-free), for a new header.

    With ``phrase``, stop early at the first comma, bracket or 'is'/'are'/'was', and drop
    trailing small words, so a title reads as a noun phrase ("The axolotl").
    """
    source = parts.content or parts.head + parts.foot
    words: list[str] = []
    for line in source:
        for sentence in _sentences(_split_marker(line)[1].split()):
            words = [EMOJI.sub("", t) for t in sentence if _is_word(t)]
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
        while len(words) > 1 and words[-1].lower().rstrip(".,;:!?") in _STOP:
            words.pop()
    if not words:
        return fallback
    words[-1] = words[-1].rstrip(".,;:!?")
    return " ".join(w for w in words if w) or fallback


def _end_sentence(line: str) -> str:
    """``line`` with a terminal full stop, so a sentence can follow it."""
    if _SENTENCE_END.search(line):
        return line
    if line and line[-1] in ",;:—-":
        return line[:-1] + "."
    return line + "."


def _append_to_body(text: str, sentence: str, *, punctuate: bool = True) -> str:
    """``sentence`` appended to the last body line (after a full stop if ``punctuate``)."""
    parts = _parse(text)
    idx = max((i for i, line in enumerate(parts.body) if line), default=-1)
    if idx < 0:
        parts.body = [sentence]
    else:
        marker, rest = _split_marker(parts.body[idx])
        rest = _end_sentence(rest) if rest and punctuate else rest
        parts.body[idx] = f"{marker}{rest} {sentence}".strip()
    return parts.render()


def _last_sentence(text: str) -> str:
    content = _parse(text).content
    if not content:
        return ""
    sentences = _sentences(_split_marker(content[-1])[1].split())
    return " ".join(sentences[-1]) if sentences else ""


# --------------------------------------------------------------------------- list atoms


def _items(lines: Iterable[str]) -> list[str]:
    """List items: a marked line is one item; an unmarked line gives one item per sentence."""
    items: list[str] = []
    for line in lines:
        marker, rest = _split_marker(line)
        if marker:
            items.append(rest)
        else:
            items.extend(" ".join(s) for s in _sentences(line.split()))
    return items


def _check_bullets(text: str) -> bool:
    return all(line.startswith("- ") and line[2:].strip() for line in _parse(text).content)


def _edit_bullets(text: str) -> str:
    parts = _parse(text)
    body: list[str] = []
    for line in parts.content:
        if line.startswith("- ") and line[2:].strip():
            body.append(line)
        else:
            body.extend(f"- {item}" for item in _items([line]))
    parts.body = body
    return parts.render()


_NUMBERED = re.compile(r"^(\d+)\. \S")


def _check_numbered(text: str) -> bool:
    for i, line in enumerate(_parse(text).content, start=1):
        m = _NUMBERED.match(line)
        if not m or int(m.group(1)) != i:
            return False
    return True


def _edit_numbered(text: str) -> str:
    parts = _parse(text)
    parts.body = [f"{i}. {item}" for i, item in enumerate(_items(parts.content), start=1)]
    return parts.render()


def _check_single_paragraph(text: str) -> bool:
    return len(_parse(text).content) <= 1


def _edit_single_paragraph(text: str) -> str:
    parts = _parse(text)
    joined = " ".join(_split_marker(line)[1] for line in parts.content).strip()
    parts.body = [joined] if joined else []
    return parts.render()


# --------------------------------------------------------------------------- length atoms


def max_words(n: int) -> Atom:
    """At most ``n`` body words; the editor keeps the opening and the last sentence."""

    def check(text: str) -> bool:
        return sum(_words(line) for line in _parse(text).content) <= n

    def edit(text: str) -> str:
        parts = _parse(text)
        lines = [_split_marker(line) for line in parts.content]
        tokens = [(i, tok) for i, (_, rest) in enumerate(lines) for tok in rest.split()]
        last = _sentences(lines[-1][1].split())[-1] if lines and lines[-1][1].split() else []
        k = sum(_is_word(t) for t in last)
        protected = set(range(len(tokens) - len(last), len(tokens))) if 0 < k < n else set()
        budget = n - k if protected else n
        kept: list[list[str]] = [[] for _ in lines]
        cut = False
        for pos, (i, tok) in enumerate(tokens):
            if pos in protected:
                kept[i].append(tok)
            elif not cut and (not _is_word(tok) or budget > 0):
                budget -= _is_word(tok)
                kept[i].append(tok)
            elif not cut:  # mark the cut with "..." (not a word) unless a sentence ended there
                cut = True
                last_kept = next((ks for ks in reversed(kept[: i + 1]) if ks), None)
                if last_kept and not _SENTENCE_END.search(last_kept[-1]):
                    last_kept.append("...")
        parts.body = [f"{m}{' '.join(ks)}" for (m, _), ks in zip(lines, kept, strict=True) if ks]
        return parts.render()

    return Atom(f"max_words_{n}", f"at most {n} words", check, edit)


def short_sentences(n: int) -> Atom:
    """Every body sentence has at most ``n`` words; long ones are split at a comma or 'and'."""

    def check(text: str) -> bool:
        for line in _parse(text).content:
            for sentence in _sentences(_split_marker(line)[1].split()):
                if sum(_is_word(t) for t in sentence) > n:
                    return False
        return True

    def split(sentence: list[str]) -> list[list[str]]:
        """Cut a long sentence: after a comma or before 'and'/'but' (else a preposition),
        as close as possible to an even share of its words."""
        chunks: list[list[str]] = []
        while (total := sum(_is_word(t) for t in sentence)) > n:
            target = -(-total // -(-total // n))  # words per chunk if the chunks were even
            words, best, best_key = 0, 0, (-1, 0)
            for p, tok in enumerate(sentence[:-1]):
                words += _is_word(tok)
                if words > n:
                    break
                nxt = sentence[p + 1].lower()
                if tok[-1] in ",;:" or nxt in _CONJUNCTIONS:
                    score = 2 if words >= 3 and total - words >= 3 else 0
                elif nxt in _PREPOSITIONS:
                    score = 1 if words >= 3 and total - words >= 3 else 0
                else:
                    score = 0
                key = (score, -abs(words - target))
                if key > best_key:
                    best, best_key = p + 1, key
            chunk, sentence = sentence[:best], sentence[best:]
            chunk[-1] = _end_sentence(chunk[-1]) if _is_word(chunk[-1]) else "."
            if sentence and sentence[0][:1].islower():
                sentence = [sentence[0][0].upper() + sentence[0][1:], *sentence[1:]]
            chunks.append(chunk)
        return [*chunks, sentence] if sentence else chunks

    def edit(text: str) -> str:
        parts = _parse(text)
        body: list[str] = []
        for line in parts.body:
            marker, rest = _split_marker(line)
            pieces = [t for s in _sentences(rest.split()) for c in split(s) for t in c]
            body.append(f"{marker}{' '.join(pieces)}" if line else "")
        parts.body = body
        return parts.render()

    return Atom(f"short_sentences_{n}", f"short sentences (at most {n} words each)", check, edit)


# --------------------------------------------------------------------------- header atoms


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _drop_prefix(parts: _Parts, bare: re.Pattern[str]) -> None:
    """Take a header's prefix off the first content line: the answer written behind it (a
    line too long to be that header, so :func:`_parse` left it in the body)."""
    content = parts.content
    if content and bare.match(content[0]):
        at = parts.body.index(content[0])
        parts.body[at] = bare.sub("", content[0], count=1).strip()


def _header_atom(
    name: str,
    description: str,
    full: re.Pattern[str],
    bare: re.Pattern[str],
    prefix: str,
    limit: int,
    title_like: bool,
    phrase: bool,
) -> Atom:
    """An atom that wants ``full`` (e.g. 'TL;DR: …') as the first line of the text."""

    def check(text: str) -> bool:
        first = _first_line(text)
        return bool(full.match(first)) and len(first.split()) <= HEADER_WORDS

    def edit(text: str) -> str:
        parts = _parse(text)
        _drop_prefix(parts, bare)
        existing = [h for h in parts.head if full.match(h)]
        if existing:  # a complete header further down the head: move it first
            parts.head.remove(existing[0])
            parts.head.insert(0, existing[0])
            return parts.render()
        content = parts.content
        first = content[0] if content else ""
        if (
            title_like
            and not parts.head
            and first
            and not _split_marker(first)[0]
            and len(first.split()) <= 8
            and first[-1] not in ".!?:;,"
        ):
            parts.body.remove(first)  # a short unpunctuated first line is already a title
            parts.head = [f"{prefix}{first}"]
            return parts.render()
        # replace an empty header of this kind (e.g. "TL;DR:" with nothing after it)
        parts.head = [h for h in parts.head if not bare.match(h)]
        parts.head.insert(0, f"{prefix}{_summary(parts, limit, 'Summary', phrase=phrase)}")
        return parts.render()

    return Atom(name, description, check, edit)


# --------------------------------------------------------------------------- email frame atoms


def _greetings(parts: _Parts) -> list[str]:
    return [h for h in parts.head if _GREETING.match(h)]


def _set_greeting(parts: _Parts, words: tuple[str, ...], default: str) -> None:
    """Give ``parts`` a greeting opening with one of ``words`` (the first when replacing)."""
    if not _greetings(parts):
        parts.head.append(default)
        return
    for i, h in enumerate(parts.head):
        m = _GREETING.match(h)
        if m and m.group(1) not in words:
            word = words[0]
            name = m.group(2).strip()
            parts.head[i] = f"{word} {name}," if name else default


def _check_formal(text: str) -> bool:
    parts = _parse(text)
    greetings = _greetings(parts)
    return (
        bool(greetings)
        and all(g.startswith("Dear ") for g in greetings)
        and bool(parts.foot)
        and bool(_FORMAL_CLOSING.match(parts.foot[0]))
    )


def _edit_formal(text: str) -> str:
    parts = _parse(text)
    _set_greeting(parts, ("Dear",), "Dear all,")
    if not parts.foot:
        parts.foot = ["Best regards,"]
    elif not _FORMAL_CLOSING.match(parts.foot[0]):
        parts.foot[0] = "Best regards,"
    return parts.render()


_CASUAL = ("Hey", "Hi", "hey", "hi")


def _check_casual(text: str) -> bool:
    greetings = _greetings(_parse(text))
    return bool(greetings) and all(
        (m := _GREETING.match(g)) is not None and m.group(1) in _CASUAL for g in greetings
    )


def _edit_casual(text: str) -> str:
    parts = _parse(text)
    _set_greeting(parts, _CASUAL, "Hey there,")
    return parts.render()


def _edit_no_closing(text: str) -> str:
    parts = _parse(text)
    parts.foot = []
    return parts.render()


# --------------------------------------------------------------------------- character atoms


def _edit_no_emoji(text: str) -> str:
    out: list[str] = []
    for line in text.splitlines():
        cleaned = " ".join(EMOJI.sub("", line).split())
        if cleaned or not line.strip():
            out.append(cleaned)
    return "\n".join(out).strip()


def _edit_no_exclamation(text: str) -> str:
    return re.sub(r"!+", ".", re.sub(r"\?!+", "?", text))


def _check_ends_with_emoji(text: str) -> bool:
    content = _parse(text).content
    return bool(content) and bool(EMOJI.match(content[-1][-1]))


def _hashtag(text: str) -> str:
    words = [re.sub(r"[^A-Za-z]", "", w) for w in " ".join(_parse(text).content).split()]
    longest = max(words, key=len, default="")
    return f"#{longest.lower()}" if len(longest) >= 3 else "#update"


# --------------------------------------------------------------------------- the atoms

BULLETS = Atom("bullets", "bullet points", _check_bullets, _edit_bullets)
NUMBERED = Atom("numbered", "a numbered list", _check_numbered, _edit_numbered)
SINGLE_PARAGRAPH = Atom(
    "single_paragraph", "a single paragraph", _check_single_paragraph, _edit_single_paragraph
)
TLDR = _header_atom(
    "tldr", "start with a one-line TL;DR", _TLDR_FULL, _TLDR, "TL;DR: ", 12, False, False
)
TITLE = _header_atom(
    "title", "start with a '# ' title line", _TITLE, re.compile(r"^#\s"), "# ", 6, True, True
)
SUBJECT = _header_atom(
    "subject",
    "start with a 'Subject:' line",
    _SUBJECT_FULL,
    _SUBJECT,
    "Subject: ",
    6,
    False,
    True,
)
FORMAL = Atom(
    "formal",
    "formal greeting and closing ('Dear …,' / 'Best regards,')",
    _check_formal,
    _edit_formal,
)
CASUAL_GREETING = Atom("casual_greeting", "casual greeting ('Hey …,')", _check_casual, _edit_casual)
NO_CLOSING = Atom("no_closing", "no sign-off", lambda t: not _parse(t).foot, _edit_no_closing)
NO_EMOJI = Atom("no_emoji", "no emojis", lambda t: not EMOJI.search(t), _edit_no_emoji)
NO_EXCLAMATION = Atom(
    "no_exclamation", "no exclamation marks", lambda t: "!" not in t, _edit_no_exclamation
)
LOWERCASE = Atom("lowercase", "all lowercase", lambda t: t == t.lower(), str.lower)
ENDS_WITH_EMOJI = Atom(
    "ends_with_emoji",
    "end with an emoji",
    _check_ends_with_emoji,
    lambda t: _append_to_body(t, END_EMOJI, punctuate=False),
)
QUESTION_END = Atom(
    "question_end",
    "end with a question",
    lambda t: _last_sentence(t).endswith("?"),
    lambda t: _append_to_body(t, QUESTION),
)
CALL_TO_ACTION_END = Atom(
    "call_to_action",
    "end with a call to action",
    lambda t: bool(_CTA.search(_last_sentence(t))),
    lambda t: _append_to_body(t, CALL_TO_ACTION),
)
HASHTAG = Atom(
    "hashtag",
    "include a hashtag",
    lambda t: bool(_HASHTAG.search(t)),
    lambda t: _append_to_body(t, _hashtag(t)),
)

#: Every atom, by name (parametrised atoms at the sizes the sources use).
_ALL = [BULLETS, NUMBERED, SINGLE_PARAGRAPH, TLDR, TITLE, SUBJECT, FORMAL, CASUAL_GREETING]
_ALL += [NO_CLOSING, NO_EMOJI, NO_EXCLAMATION, LOWERCASE, ENDS_WITH_EMOJI, QUESTION_END]
_ALL += [CALL_TO_ACTION_END, HASHTAG, max_words(50), max_words(60), max_words(80)]
_ALL += [short_sentences(10), short_sentences(12)]
ATOMS: dict[str, Atom] = {a.name: a for a in _ALL}
