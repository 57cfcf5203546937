"""What an edit changed, counted: plain-words facts about two versions of a text.

A small model reads a word diff poorly: it cannot count lines, see that every capital letter
went, or notice that a sentence now ends in ``?``. :func:`edit_facts` measures a few generic
properties of the text before and after the edit (length, sentences, lines and how they
start, the first and last line, letter case, and counts of punctuation and symbol classes)
and states the ones that changed, largest first. It knows no preference types: it describes
any edit, and CIPHER's inference prompt shows the facts beside the diff. :func:`edit_wishes`
states the same changes as the wishes they suggest ("no emoji", "at most 40 words"), which
CIPHER can store as the edit's preference without asking a model (``CipherConfig.infer``).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
_WORD = re.compile(r"\S*\w\S*")
# What a line opens with: a number and a dot or bracket, a run of list or heading marks, or
# one other symbol (an emoji, a bullet character).
_MARK = re.compile(r"^\s*(\d+[.)]|[-*•>#+]+(?=\s)|[^\w\s\"'(\[])")
_LIST_MARK = re.compile(r"\d+[.)]|[-*•>#+]+|\W")
_TAG = re.compile(r"(?<!\w)#\w+")
_MENTION = re.compile(r"(?<!\w)@\w+")
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_CONTRACTION = re.compile(r"\b\w+['’](?:s|t|re|ve|ll|d|m)\b", re.I)
_LINK = re.compile(r"https?://\S+")
#: Words whose class is the habit, not the word: a tag, a mention, a link.
_NAMED = (_TAG, _MENTION, _LINK)
#: Symbol classes counted in both versions: (the name a fact gives them, pattern).
_CLASSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("exclamation marks", re.compile(r"!")),
    ("question marks", re.compile(r"\?")),
    ("commas", re.compile(r",")),
    ("semicolons", re.compile(r";")),
    ("colons", re.compile(r":")),
    ("brackets", re.compile(r"[()\[\]]")),
    ("quotation marks", re.compile(r"[\"“”]")),
    ("dashes", re.compile(r"(?<=\w)[ \t][-–—][ \t]")),
    ("digits", re.compile(r"\d")),
    ("words starting with #", _TAG),
    ("words starting with @", _MENTION),
    ("bold spans", _BOLD),
    ("contractions", _CONTRACTION),
    ("links", _LINK),
)


def _is_emoji(ch: str) -> bool:
    return unicodedata.category(ch) == "So" or 0x1F000 <= ord(ch) <= 0x1FAFF


@dataclass(frozen=True)
class _Profile:
    words: int
    sentences: int
    lines: tuple[str, ...]
    paragraphs: int
    letters: int
    capitals: int
    emoji: int
    marks: Counter[str]
    counts: tuple[int, ...]
    last_char: str

    @property
    def words_per_sentence(self) -> float:
        return self.words / max(self.sentences, 1)


def _mark(line: str) -> str | None:
    m = _MARK.match(line)
    if not m:
        return None
    mark = m.group(1)
    if mark[0].isdigit():
        return "a number"
    if len(mark) == 1 and _is_emoji(mark):
        return "an emoji"
    return f"'{mark}'"


def count_words(text: str) -> int:
    """Words in ``text``, counted as the edit's counted changes count them."""
    return len(_WORD.findall(text))


def count_sentences(text: str) -> int:
    """Sentences in ``text`` (a line break ends one too), counted as the edit's counted
    changes count them."""
    return sum(1 for s in _SENTENCE.findall(text) if re.search(r"\w", s))


def _profile(text: str) -> _Profile:
    lines = tuple(ln.strip() for ln in text.splitlines() if ln.strip())
    letters = [c for c in text if c.isalpha()]
    stripped = text.rstrip()
    last = stripped[-1] if stripped else ""
    marks = Counter(m for m in (_mark(ln) for ln in lines) if m)
    return _Profile(
        words=count_words(text),
        sentences=count_sentences(text),
        lines=lines,
        paragraphs=len([p for p in re.split(r"\n\s*\n", text) if p.strip()]),
        letters=len(letters),
        capitals=sum(c.isupper() for c in letters),
        emoji=sum(_is_emoji(c) for c in text),
        marks=marks,
        counts=tuple(len(p.findall(text)) for _, p in _CLASSES),
        last_char="an emoji" if last and _is_emoji(last) else last,
    )


def _quote(line: str, words: int = 8) -> str:
    parts = line.split()
    return '"' + " ".join(parts[:words]) + (" ..." if len(parts) > words else "") + '"'


class _Fact(NamedTuple):
    weight: float  # how large the change is: the largest are kept
    said: str | None  # the change, described ("emoji: 0 instead of 3"); None: a wish only
    wish: str | None  # the change as the wish it suggests ("no emoji"); None: a side effect
    added: str = ""  # words added at an end of the text, for the facts they explain
    at: str = ""  # "start" or "end": the end of the text whose words were added or removed


def _quoted_habit(words: list[str], where: str) -> str | None:
    """What a wish quotes of the words added at one end of a text: the habit, not this text's
    content. At the end, the last sentence of them, whole when short ("Best, Sam", "What do
    you think?"); at the start, up to the first word that ends in punctuation ("TL;DR:", "Dear
    all,"). Else the first four words. None when they hold no letter, digit or emoji (list
    marks, which the line starts say better)."""
    if where == "end":
        words = _last_sentence(words)
    text = " ".join(words)
    if not any(c.isalnum() or _is_emoji(c) for c in text):
        return None
    if len(words) == 1 and any(p.fullmatch(text) for p in _NAMED):
        return None  # one tag, mention or link: its class's count says the habit
    if where == "end" and len(words) <= 6:
        return _quote(text)
    cut = next(
        (
            i + 1
            for i, w in enumerate(words[:6])
            if not w[-1].isalnum() and any(c.isalnum() for c in w)
        ),
        None,
    )
    if cut:
        return _quote(" ".join(words[:cut]), cut)
    if where == "start" and _LIST_MARK.fullmatch(words[0]) and not _is_emoji(words[0][0]):
        return None  # a heading or list line of this text's words: the line starts say it
    return _quote(text) if len(words) <= 6 else _quote(text, 4)


def _last_sentence(words: list[str]) -> list[str]:
    stops = [i + 1 for i, w in enumerate(words[:-1]) if w[-1] in ".!?"]
    return words[stops[-1] :] if stops else words


def _new(old: list[str], new: list[str], where: str) -> list[str]:
    """``new`` without the words it shares with ``old`` on the side facing the text's middle
    (a replaced last word that the edit kept: "to." -> "to. #tag")."""
    k = 0
    while (
        k < min(len(old), len(new))
        and old[k if where == "end" else -1 - k] == new[k if where == "end" else -1 - k]
    ):
        k += 1
    return new[k:] if where == "end" else new[: len(new) - k]


def _ends(before: str, after: str, *, cut: bool = False) -> list[_Fact]:
    """Words added or removed at the very start or end of the text. ``cut``: the text got
    much shorter, which explains words removed at an end (no wish of their own)."""
    a, b = before.split(), after.split()
    ops = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    if not a or not b or all(op[0] == "equal" for op in ops):
        return []
    out: list[_Fact] = []
    for (tag, i1, i2, j1, j2), where, at, weight in (
        (ops[0], "start", 0, 5.0),
        (ops[-1], "end", len(a), 4.5),
    ):
        if at not in (i1, i2) or tag == "equal":
            continue  # the edit does not reach this end of the text
        added, removed = " ".join(b[j1:j2]), " ".join(a[i1:i2])
        if j2 - j1 > i2 - i1 or tag == "insert":
            mark = _LIST_MARK.fullmatch(added) and not any(map(_is_emoji, added))
            if not mark:  # a list mark alone: the line starts say it better
                said = f"added at the {where}: {_quote(added)}"
                new = _new(a[i1:i2], b[j1:j2], where)
                tail = _last_sentence(b)
                if where == "end" and len(new) <= len(tail) <= 8 and any(map(str.isalpha, added)):
                    new = tail  # words that finish a sentence: quote all of it
                habit = _quoted_habit(new, where)
                wish = f"{where} with {habit}" if habit else None
                out.append(_Fact(weight, said, wish, added if habit else "", where))
        elif i2 - i1 >= (j2 - j1) + 2 or tag == "delete":
            said = f"removed from the {where}: {_quote(removed)}"
            opening = "opening" if where == "start" else "closing"
            habit = _quoted_habit(a[i1:i2], where)
            wish = f"no {opening} words like {habit}" if habit and not cut else None
            out.append(_Fact(weight - 1, said, wish, added, where))
        elif where == "start":  # an opening swapped for another ("Hi team," -> "Hey there,")
            habit = _quoted_habit(_new(a[i1:i2], b[j1:j2], where), where)
            if habit and len(habit.split()) <= 3 and habit[-2] in ",:;!?." and "..." not in habit:
                out.append(_Fact(weight - 0.5, None, f"start with {habit}", added, where))
    return out


def _lines_wish(mark: str) -> str:
    if mark == "a number":
        return "a numbered list with one point per line"
    if mark in ("'-'", "'*'", "'•'", "'+'"):
        return f"bullet points (lines starting with {mark})"
    return f"a list with each point on a line starting with {mark}"


#: The names wishes give some symbol classes (the facts describe them).
_WISH_NAMES = {"words starting with #": "hashtags", "words starting with @": "@-mentions"}


def _count_wish(name: str, before: int, after: int) -> str | None:
    name = _WISH_NAMES.get(name, name)
    if after == 0:
        return f"no {name}"
    if before == 0:
        return f"use {name}"
    return None  # more or fewer of a kind: usually a side effect of another change


def _facts(before: str, after: str) -> list[_Fact]:
    a, b = _profile(before), _profile(after)
    facts = _ends(before, after, cut=b.words < 0.8 * a.words)
    # Side effects get no wish of their own: what words added at an end bring (their colons,
    # their emoji, their length, their lines), and the line, sentence and digit counts of a
    # new list.
    added = " ".join(f.added for f in facts)
    listed = any(n - a.marks.get(m, 0) >= 2 for m, n in b.marks.items())

    def side(pattern: re.Pattern[str] | None, before: int, after: int) -> bool:
        shown = sum(map(_is_emoji, added)) if pattern is None else len(pattern.findall(added))
        return before == 0 and 0 < after <= shown

    for mark, n in b.marks.items():
        gained = n - a.marks.get(mark, 0)
        if gained >= 2:
            said = f"{n} lines now start with {mark} (before: {a.marks.get(mark, 0)})"
            facts.append(_Fact(4.5, said, _lines_wish(mark)))
    for mark, n in a.marks.items():
        if n >= 2 and b.marks.get(mark, 0) == 0:
            said = f"no line starts with {mark} any more (before: {n})"
            facts.append(_Fact(4.0, said, f"no lines starting with {mark}"))
    first = _mark(b.lines[0]) if b.lines else None
    if (
        first
        and (not a.lines or _mark(a.lines[0]) != first)
        and b.marks[first] - a.marks[first] < 2
    ):
        said = f"the first line now starts with {first}"
        facts.append(_Fact(4.5, said, f"a first line starting with {first}"))

    if a.paragraphs > 1 and b.paragraphs == 1 and len(b.lines) == 1:
        said = f"one paragraph instead of {a.paragraphs}"
        facts.append(_Fact(4.0, said, "a single paragraph"))
    elif abs(len(b.lines) - len(a.lines)) >= 2:
        said = f"{len(b.lines)} lines instead of {len(a.lines)}"
        way = "fewer" if len(b.lines) < len(a.lines) else "more"
        wish = None if listed or added else f"{way} lines (about {len(b.lines)})"
        facts.append(_Fact(2.5, said, wish))

    if a.capitals and b.letters and b.capitals == 0:
        said = "no capital letters at all (every letter lower case)"
        facts.append(_Fact(5.0, said, "all lower case with no capital letters"))
    elif b.letters and b.capitals / b.letters > 0.8 and a.capitals / max(a.letters, 1) < 0.5:
        facts.append(_Fact(5.0, "written in capital letters", "all in capital letters"))

    if a.words and abs(b.words - a.words) / a.words >= 0.2:
        shorter = b.words < a.words
        said = f"{'shorter' if shorter else 'longer'}: {b.words} words instead of {a.words}"
        wish = f"at most {b.words} words" if shorter else f"at least {b.words} words"
        if not shorter and b.words - a.words <= len(_WORD.findall(added)):
            wish = None  # the words added at an end made it longer
        facts.append(_Fact(3.5, said, wish))
    wa, wb = a.words_per_sentence, b.words_per_sentence
    if a.sentences and b.sentences and wa and abs(wb - wa) / wa >= 0.3:
        way = "shorter" if wb < wa else "longer"
        said = f"{way} sentences: {wb:.0f} words on average instead of {wa:.0f}"
        wish = None if listed else f"{way} sentences of about {wb:.0f} words"
        facts.append(_Fact(3.0, said, wish))

    if b.emoji != a.emoji:
        weight = 2.0 if a.emoji and b.emoji else 3.5  # all or none counts more
        said = f"emoji: {b.emoji} instead of {a.emoji}"
        wish = None if side(None, a.emoji, b.emoji) else _count_wish("emoji", a.emoji, b.emoji)
        facts.append(_Fact(weight, said, wish))
    for (name, pattern), na, nb in zip(_CLASSES, a.counts, b.counts, strict=True):
        if na != nb and (nb == 0 or na == 0 or abs(nb - na) >= max(2, na // 2)):
            weight = 3.5 if na == 0 or nb == 0 else 2.0
            listed_digits = listed and name == "digits"
            wish = None if side(pattern, na, nb) or listed_digits else _count_wish(name, na, nb)
            facts.append(_Fact(weight, f"{name}: {nb} instead of {na}", wish))
    if b.last_char != a.last_char and b.last_char and not b.last_char.isalnum():
        shown = b.last_char if len(b.last_char) > 1 else repr(b.last_char)
        said = f"now ends with {shown}"
        # words added at the end say more
        ended = any(f.at == "end" and f.wish and f.wish.startswith("end ") for f in facts)
        facts.append(_Fact(3.0, said, None if ended else f"ending with {shown}"))

    facts.sort(key=lambda f: -f.weight)  # stable: equal weights keep the order above
    return facts


def edit_facts(before: str, after: str, *, limit: int = 6) -> list[str]:
    """Up to ``limit`` short facts, in plain words, about what changed from ``before`` to
    ``after``; empty when nothing measured changed."""
    return [f.said for f in _facts(before, after) if f.said][:limit]


def edit_wishes(before: str, after: str, *, limit: int = 4) -> list[str]:
    """The largest changes from ``before`` to ``after`` (up to ``limit``) as the wishes they
    suggest, in the words a preference is stated in: ``no emoji``, ``start with "Hi"``,
    ``at most 40 words``. A change of degree in a count (fewer commas) is left out: it is
    usually a side effect of another edit. Empty when nothing measured changed."""
    wishes = [f.wish for f in _facts(before, after) if f.wish]
    return list(dict.fromkeys(wishes))[:limit]


def facts_block(before: str, after: str, *, limit: int = 6) -> str:
    """:func:`edit_facts` as ``- `` lines, or ``(none)`` when nothing measured changed."""
    facts = edit_facts(before, after, limit=limit)
    return "\n".join(f"- {f}" for f in facts) if facts else "(none)"


#: A contraction, not a possessive: "don't", "we're", "it's", but not "Ana's".
_SURE_CONTRACTION = re.compile(
    r"\b\w+n['’]t\b|\b\w+['’](?:re|ve|ll|m|d)\b|\b(?:it|that|there|here|what|let|who)['’]s\b",
    re.I,
)
_NUMBERED_LINE = re.compile(r"^\s*\d+[.)]\s")
_BULLET_LINE = re.compile(r"^\s*[-*•+]\s")


def features(text: str) -> frozenset[str]:
    """The surface features ``text`` has, by name: ``numbered`` and ``bullets`` (a line that
    is a list item), ``emoji``, ``exclamation``, ``question``, ``hashtag``, ``bold``,
    ``contraction`` (not a possessive) and ``link``. What a text has, its writer cannot have
    wanted gone."""
    lines = text.splitlines()
    found = {
        "numbered": any(_NUMBERED_LINE.match(ln) for ln in lines),
        "bullets": any(_BULLET_LINE.match(ln) for ln in lines),
        "emoji": any(_is_emoji(c) for c in text),
        "exclamation": "!" in text,
        "question": "?" in text,
        "hashtag": bool(_TAG.search(text)),
        "bold": bool(_BOLD.search(text)),
        "contraction": bool(_SURE_CONTRACTION.search(text)),
        "link": bool(_LINK.search(text)),
    }
    return frozenset(name for name, present in found.items() if present)
