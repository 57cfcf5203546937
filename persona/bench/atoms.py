"""Executable preference atoms: one checkable, rule-based editable trait of a text each.

A latent preference in the PRELUDE environment is a few atoms ("bullet points; at most 60
words; start with a title line"). Each :class:`Atom` can *check* a text and *edit* it with a
deterministic, minimal rule, so a scripted user edits like a person with that preference:

- ``atom.check(atom.edit(t))`` holds for every text ``t``;
- ``atom.edit(t) == t`` when ``atom.check(t)`` (a satisfied user changes nothing), hence
  editing is idempotent;
- editors change as few words as they can (cost is word-level edit distance).

Text model (:mod:`persona.bench.text`): a text is read as head (TL;DR, title, subject,
greeting), body and foot (sign-off), so atoms about the frame of a text and atoms about its
content compose.

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

from persona.bench.text import (
    EMOJI,
    GREETING,
    HEADER_WORDS,
    SENTENCE_END,
    SUBJECT_PREFIX,
    TITLE_PREFIX,
    TLDR_PREFIX,
    Parts,
    append_to_body,
    end_sentence,
    header_text,
    is_word,
    last_sentence,
    line_words,
    parse,
    split_marker,
    split_sentences,
)

_TLDR_FULL = re.compile(r"^tl;dr:\s*\S", re.IGNORECASE)
_SUBJECT_FULL = re.compile(r"^subject:\s*\S", re.IGNORECASE)
_FORMAL_CLOSING = re.compile(r"^(Best regards|Kind regards|Sincerely|Yours sincerely),$")
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


# --------------------------------------------------------------------------- list atoms


def _items(lines: Iterable[str]) -> list[str]:
    """List items: a marked line is one item; an unmarked line gives one item per sentence."""
    items: list[str] = []
    for line in lines:
        marker, rest = split_marker(line)
        if marker:
            items.append(rest)
        else:
            items.extend(" ".join(s) for s in split_sentences(line.split()))
    return items


def _check_bullets(text: str) -> bool:
    return all(line.startswith("- ") and line[2:].strip() for line in parse(text).content)


def _edit_bullets(text: str) -> str:
    parts = parse(text)
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
    for i, line in enumerate(parse(text).content, start=1):
        m = _NUMBERED.match(line)
        if not m or int(m.group(1)) != i:
            return False
    return True


def _edit_numbered(text: str) -> str:
    parts = parse(text)
    parts.body = [f"{i}. {item}" for i, item in enumerate(_items(parts.content), start=1)]
    return parts.render()


def _check_single_paragraph(text: str) -> bool:
    return len(parse(text).content) <= 1


def _edit_single_paragraph(text: str) -> str:
    parts = parse(text)
    joined = " ".join(split_marker(line)[1] for line in parts.content).strip()
    parts.body = [joined] if joined else []
    return parts.render()


# --------------------------------------------------------------------------- length atoms


def max_words(n: int) -> Atom:
    """At most ``n`` body words; the editor keeps the opening and the last sentence."""

    def check(text: str) -> bool:
        return sum(line_words(line) for line in parse(text).content) <= n

    def edit(text: str) -> str:
        parts = parse(text)
        lines = [split_marker(line) for line in parts.content]
        tokens = [(i, tok) for i, (_, rest) in enumerate(lines) for tok in rest.split()]
        last = split_sentences(lines[-1][1].split())[-1] if lines and lines[-1][1].split() else []
        k = sum(is_word(t) for t in last)
        protected = set(range(len(tokens) - len(last), len(tokens))) if 0 < k < n else set()
        budget = n - k if protected else n
        kept: list[list[str]] = [[] for _ in lines]
        cut = False
        for pos, (i, tok) in enumerate(tokens):
            if pos in protected:
                kept[i].append(tok)
            elif not cut and (not is_word(tok) or budget > 0):
                budget -= is_word(tok)
                kept[i].append(tok)
            elif not cut:  # mark the cut with "..." (not a word) unless a sentence ended there
                cut = True
                last_kept = next((ks for ks in reversed(kept[: i + 1]) if ks), None)
                if last_kept and not SENTENCE_END.search(last_kept[-1]):
                    last_kept.append("...")
        parts.body = [f"{m}{' '.join(ks)}" for (m, _), ks in zip(lines, kept, strict=True) if ks]
        return parts.render()

    return Atom(f"max_words_{n}", f"at most {n} words", check, edit)


def short_sentences(n: int) -> Atom:
    """Every body sentence has at most ``n`` words; long ones are split at a comma or 'and'."""

    def check(text: str) -> bool:
        for line in parse(text).content:
            for sentence in split_sentences(split_marker(line)[1].split()):
                if sum(is_word(t) for t in sentence) > n:
                    return False
        return True

    def split(sentence: list[str]) -> list[list[str]]:
        """Cut a long sentence: after a comma or before 'and'/'but' (else a preposition),
        as close as possible to an even share of its words."""
        chunks: list[list[str]] = []
        while (total := sum(is_word(t) for t in sentence)) > n:
            target = -(-total // -(-total // n))  # words per chunk if the chunks were even
            words, best, best_key = 0, 0, (-1, 0)
            for p, tok in enumerate(sentence[:-1]):
                words += is_word(tok)
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
            chunk[-1] = end_sentence(chunk[-1]) if is_word(chunk[-1]) else "."
            if sentence and sentence[0][:1].islower():
                sentence = [sentence[0][0].upper() + sentence[0][1:], *sentence[1:]]
            chunks.append(chunk)
        return [*chunks, sentence] if sentence else chunks

    def edit(text: str) -> str:
        parts = parse(text)
        body: list[str] = []
        for line in parts.body:
            marker, rest = split_marker(line)
            pieces = [t for s in split_sentences(rest.split()) for c in split(s) for t in c]
            body.append(f"{marker}{' '.join(pieces)}" if line else "")
        parts.body = body
        return parts.render()

    return Atom(f"short_sentences_{n}", f"short sentences (at most {n} words each)", check, edit)


# --------------------------------------------------------------------------- header atoms


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _drop_prefix(parts: Parts, bare: re.Pattern[str]) -> None:
    """Take a header's prefix off the first content line: the answer written behind it (a
    line too long to be that header, so :func:`parse` left it in the body)."""
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
        parts = parse(text)
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
            and not split_marker(first)[0]
            and len(first.split()) <= 8
            and first[-1] not in ".!?:;,"
        ):
            parts.body.remove(first)  # a short unpunctuated first line is already a title
            parts.head = [f"{prefix}{first}"]
            return parts.render()
        # replace an empty header of this kind (e.g. "TL;DR:" with nothing after it)
        parts.head = [h for h in parts.head if not bare.match(h)]
        parts.head.insert(0, f"{prefix}{header_text(parts, limit, 'Summary', phrase=phrase)}")
        return parts.render()

    return Atom(name, description, check, edit)


# --------------------------------------------------------------------------- email frame atoms


def _greetings(parts: Parts) -> list[str]:
    return [h for h in parts.head if GREETING.match(h)]


def _set_greeting(parts: Parts, words: tuple[str, ...], default: str) -> None:
    """Give ``parts`` a greeting opening with one of ``words`` (the first when replacing)."""
    if not _greetings(parts):
        parts.head.append(default)
        return
    for i, h in enumerate(parts.head):
        m = GREETING.match(h)
        if m and m.group(1) not in words:
            word = words[0]
            name = m.group(2).strip()
            parts.head[i] = f"{word} {name}," if name else default


def _check_formal(text: str) -> bool:
    parts = parse(text)
    greetings = _greetings(parts)
    return (
        bool(greetings)
        and all(g.startswith("Dear ") for g in greetings)
        and bool(parts.foot)
        and bool(_FORMAL_CLOSING.match(parts.foot[0]))
    )


def _edit_formal(text: str) -> str:
    parts = parse(text)
    _set_greeting(parts, ("Dear",), "Dear all,")
    if not parts.foot:
        parts.foot = ["Best regards,"]
    elif not _FORMAL_CLOSING.match(parts.foot[0]):
        parts.foot[0] = "Best regards,"
    return parts.render()


_CASUAL = ("Hey", "Hi", "hey", "hi")


def _check_casual(text: str) -> bool:
    greetings = _greetings(parse(text))
    return bool(greetings) and all(
        (m := GREETING.match(g)) is not None and m.group(1) in _CASUAL for g in greetings
    )


def _edit_casual(text: str) -> str:
    parts = parse(text)
    _set_greeting(parts, _CASUAL, "Hey there,")
    return parts.render()


def _edit_no_closing(text: str) -> str:
    parts = parse(text)
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
    content = parse(text).content
    return bool(content) and bool(EMOJI.match(content[-1][-1]))


def _hashtag(text: str) -> str:
    words = [re.sub(r"[^A-Za-z]", "", w) for w in " ".join(parse(text).content).split()]
    longest = max(words, key=len, default="")
    return f"#{longest.lower()}" if len(longest) >= 3 else "#update"


# --------------------------------------------------------------------------- the atoms

BULLETS = Atom("bullets", "bullet points", _check_bullets, _edit_bullets)
NUMBERED = Atom("numbered", "a numbered list", _check_numbered, _edit_numbered)
SINGLE_PARAGRAPH = Atom(
    "single_paragraph", "a single paragraph", _check_single_paragraph, _edit_single_paragraph
)
TLDR = _header_atom(
    "tldr", "start with a one-line TL;DR", _TLDR_FULL, TLDR_PREFIX, "TL;DR: ", 12, False, False
)
TITLE = _header_atom(
    "title", "start with a '# ' title line", TITLE_PREFIX, re.compile(r"^#\s"), "# ", 6, True, True
)
SUBJECT = _header_atom(
    "subject",
    "start with a 'Subject:' line",
    _SUBJECT_FULL,
    SUBJECT_PREFIX,
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
NO_CLOSING = Atom("no_closing", "no sign-off", lambda t: not parse(t).foot, _edit_no_closing)
NO_EMOJI = Atom("no_emoji", "no emojis", lambda t: not EMOJI.search(t), _edit_no_emoji)
NO_EXCLAMATION = Atom(
    "no_exclamation", "no exclamation marks", lambda t: "!" not in t, _edit_no_exclamation
)
LOWERCASE = Atom("lowercase", "all lowercase", lambda t: t == t.lower(), str.lower)
ENDS_WITH_EMOJI = Atom(
    "ends_with_emoji",
    "end with an emoji",
    _check_ends_with_emoji,
    lambda t: append_to_body(t, END_EMOJI, punctuate=False),
)
QUESTION_END = Atom(
    "question_end",
    "end with a question",
    lambda t: last_sentence(t).endswith("?"),
    lambda t: append_to_body(t, QUESTION),
)
CALL_TO_ACTION_END = Atom(
    "call_to_action",
    "end with a call to action",
    lambda t: bool(_CTA.search(last_sentence(t))),
    lambda t: append_to_body(t, CALL_TO_ACTION),
)
HASHTAG = Atom(
    "hashtag",
    "include a hashtag",
    lambda t: bool(_HASHTAG.search(t)),
    lambda t: append_to_body(t, _hashtag(t)),
)

#: Every atom, by name (parametrised atoms at the sizes the sources use).
_ALL = [BULLETS, NUMBERED, SINGLE_PARAGRAPH, TLDR, TITLE, SUBJECT, FORMAL, CASUAL_GREETING]
_ALL += [NO_CLOSING, NO_EMOJI, NO_EXCLAMATION, LOWERCASE, ENDS_WITH_EMOJI, QUESTION_END]
_ALL += [CALL_TO_ACTION_END, HASHTAG, max_words(50), max_words(60), max_words(80)]
_ALL += [short_sentences(10), short_sentences(12)]
ATOMS: dict[str, Atom] = {a.name: a for a in _ALL}
