"""Checkers for the quantitative feedbacks of the feedback benchmark.

Each feedback in ``corpus/feedback.json`` (test) and ``corpus/feedback_dev.json`` (dev) names a
checker from :data:`CHECKERS` (or ``null`` for a qualitative feedback) and its arguments. A
checker reads an answer, and the baseline answer (the plain answer to the same prompt, without
the feedback) where the feedback is relative, such as "shorter". All checkers are general: none
is keyed to a particular prompt, and all accept empty text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from persona.bench.atoms import max_words
from persona.bench.text import EMOJI

CORPUS = Path(__file__).parent / "corpus"

Checker = Callable[[str, str, dict[str, Any]], bool]

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’-]*")
_SENTENCE = re.compile(r"[^.!?]*[A-Za-z0-9][^.!?]*(?:[.!?]+|$)")
_LIST_MARKER = re.compile(r"^\s*(?:[-*•+]|\d+[.)])\s+")
_SALUTATION = re.compile(r"^(?:dear|hi|hello|hey)\b[^.!?\n]{0,40},$", re.IGNORECASE)
_BULLET = re.compile(r"^[-*•+]\s+\S")
_NUMBER = re.compile(r"^\d+[.)]\s+\S")
_HEADING = re.compile(r"^(?:#{1,6}\s+\S.*|\*\*[^*]+\*\*:?|__[^_]+__:?|[^.!?]{1,80}:)$")
_TRAILING_TAGS = re.compile(r"(?:\s*#\w+)+\s*$")
_FENCE = re.compile(r"```[^\n]*\n.*?```", re.DOTALL)
_DEF = re.compile(r"^\s*(?:async\s+)?def\s+\w+\s*\((?P<args>.*)\)\s*(?P<ret>->[^:]+)?:", re.M)
_METRIC = re.compile(
    r"(?<![A-Za-z])(?:\d+(?:[.,]\d+)?\s*(?:kg|g|km|m|cm|mm|ml|l|L|°C|ºC)\b|°C|"
    r"(?:kilo)?grams?\b|kilometres?|kilometers?|metres?|meters?|millilit(?:re|er)s?|"
    r"lit(?:re|er)s?|celsius)",
    re.IGNORECASE,
)
_IMPERIAL = re.compile(
    r"(?<![A-Za-z])(?:\d+(?:[.,]\d+)?\s*(?:lbs?|oz|mi|ft|feet|foot|inch(?:es)?|yards?)\b|"
    r"°F|ºF|pounds?\b|ounces?\b|miles?\b|cups?\b|fahrenheit|quarts?\b|gallons?\b|pints?\b)",
    re.IGNORECASE,
)

IMPERATIVE_VERBS = frozenset(
    """
    add fix update remove delete refactor rename move bump drop implement introduce improve
    handle use replace merge revert document test clean simplify extract optimize optimise
    make create change allow prevent support enable disable set reset restore upgrade
    downgrade migrate convert split combine reorder sort format lint validate check ensure
    avoid skip ignore include exclude expose hide show log raise return pass call load save
    read write parse build configure install uninstall deploy release tweak adjust correct
    rewrite reword clarify cache guard wrap unwrap pin unpin expand reduce limit increase
    decrease speed initialize initialise register deprecate tidy polish harden
    """.split()
)

BRITISH_PAIRS: tuple[tuple[str, str], ...] = (
    ("colour", "color"),
    ("favourite", "favorite"),
    ("organise", "organize"),
    ("organisation", "organization"),
    ("realise", "realize"),
    ("recognise", "recognize"),
    ("centre", "center"),
    ("theatre", "theater"),
    ("travelled", "traveled"),
    ("travelling", "traveling"),
    ("behaviour", "behavior"),
    ("honour", "honor"),
    ("neighbour", "neighbor"),
    ("analyse", "analyze"),
    ("apologise", "apologize"),
    ("catalogue", "catalog"),
    ("defence", "defense"),
    ("grey", "gray"),
    ("flavour", "flavor"),
    ("humour", "humor"),
    ("labour", "labor"),
    ("cancelled", "canceled"),
    ("jewellery", "jewelry"),
    ("optimise", "optimize"),
    ("summarise", "summarize"),
    ("prioritise", "prioritize"),
    ("aluminium", "aluminum"),
    ("modelling", "modeling"),
    ("analysed", "analyzed"),
    ("organised", "organized"),
    ("summarising", "summarizing"),
)


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _sentences(text: str) -> list[str]:
    prose = _FENCE.sub(" ", text)
    return [s.strip() for s in _SENTENCE.findall(prose) if s.strip()]


def _first_word(text: str) -> str:
    for line in _lines(text):
        if line.endswith(":"):  # a lead-in such as "Commit message:"
            continue
        line = _LIST_MARKER.sub("", line).lstrip("#>*`\"' ")
        words = _words(line)
        if words:
            return words[0].lower()
    return ""


def _phrase_re(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<![A-Za-z])" + re.escape(phrase) + r"(?![A-Za-z])", re.IGNORECASE)


# --------------------------------------------------------------------------- checkers


def no_emoji(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    return not EMOJI.search(answer)


def has_emoji(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    return bool(EMOJI.search(answer))


def max_words_check(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    return bool(answer.strip()) and max_words(int(args["n"])).check(answer)


def shorter_than_baseline(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    ratio = float(args.get("ratio", 0.8))
    return len(_words(answer)) <= ratio * len(_words(baseline))


def _list_lines(text: str, marker: re.Pattern[str]) -> list[str] | None:
    """Item lines of ``text`` when it is a list (headings, lead-ins and indented lines aside)."""
    items: list[str] = []
    for raw in _FENCE.sub("", text).splitlines():
        line = raw.strip()
        if not line or raw[:1].isspace() and items:  # blank, or nested under an item
            continue
        if marker.match(line):
            items.append(line)
        elif not _HEADING.match(line):
            return None
    return items if len(items) >= 2 else None


def bullets(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    return _list_lines(answer, _BULLET) is not None


def numbered(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    items = _list_lines(answer, _NUMBER)
    return items is not None and items[0].startswith("1")


def no_bullets(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    return not any(_LIST_MARKER.match(line) for line in answer.splitlines())


def no_exclamation(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    return "!" not in answer


def ends_with_question(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    text = _TRAILING_TAGS.sub("", EMOJI.sub("", answer)).rstrip()  # hashtags, emojis aside
    return text.rstrip("\"'”’)*_").endswith("?")


def starts_with(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    prefix = str(args["prefix"]).lower()
    lines = _lines(answer)
    if len(lines) > 1 and _SALUTATION.match(lines[0]):  # "Hi Sam," may come first
        lines = lines[1:]
    return bool(lines) and lines[0].lower().startswith(prefix)


def includes_phrase(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    return bool(_phrase_re(str(args["phrase"])).search(answer))


def imperative_first_word(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    return _first_word(answer) in IMPERATIVE_VERBS


def python_type_hints(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    defs = list(_DEF.finditer(answer))
    if not defs:
        return False
    for m in defs:
        params = [p.strip() for p in m.group("args").split(",") if p.strip()]
        params = [p for p in params if p not in {"self", "cls", "*", "/"}]
        if m.group("ret") is None or any(":" not in p for p in params):
            return False
    return True


def code_comments(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    code = "\n".join(_FENCE.findall(answer)) or answer
    return any(re.match(r"^\s*(?:#|//|--)\s*\S", line) for line in code.splitlines())


def metric_units(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    return bool(_METRIC.search(answer)) and not _IMPERIAL.search(answer)


def no_words(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    return not any(_phrase_re(str(w)).search(answer) for w in args["words"])


def british_spelling(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    pairs = [tuple(p) for p in args.get("pairs", BRITISH_PAIRS)]
    words = {w.lower() for w in _words(answer)}
    return not any(american in words for _, american in pairs)


def all_lowercase(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    return answer == answer.lower()


def max_sentences(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    return 0 < len(_sentences(answer)) <= int(args["n"])


def code_block(answer: str, baseline: str, args: dict[str, Any]) -> bool:
    return bool(_FENCE.search(answer))


CHECKERS: dict[str, Checker] = {
    "no_emoji": no_emoji,
    "has_emoji": has_emoji,
    "max_words": max_words_check,
    "shorter_than_baseline": shorter_than_baseline,
    "bullets": bullets,
    "numbered": numbered,
    "no_bullets": no_bullets,
    "no_exclamation": no_exclamation,
    "ends_with_question": ends_with_question,
    "starts_with": starts_with,
    "includes_phrase": includes_phrase,
    "imperative_first_word": imperative_first_word,
    "python_type_hints": python_type_hints,
    "code_comments": code_comments,
    "metric_units": metric_units,
    "no_words": no_words,
    "british_spelling": british_spelling,
    "all_lowercase": all_lowercase,
    "max_sentences": max_sentences,
    "code_block": code_block,
}

# Required arguments of each checker that takes any (name -> (argument, type)).
CHECKER_ARGS: dict[str, dict[str, type]] = {
    "max_words": {"n": int},
    "shorter_than_baseline": {"ratio": float},
    "starts_with": {"prefix": str},
    "includes_phrase": {"phrase": str},
    "no_words": {"words": list},
    "max_sentences": {"n": int},
}


def adheres(feedback: dict[str, Any], answer: str, baseline: str) -> bool | None:
    """Whether ``answer`` follows ``feedback`` (None for a qualitative feedback)."""
    name = feedback.get("checker")
    if not name:
        return None
    return CHECKERS[name](answer or "", baseline or "", feedback.get("checker_args") or {})


#: The feedback sets: ``dev`` fits the scope combiner; ``test`` is the benchmark's; ``fresh`` was
#: written later (session 10) by another writer and measured once, to check the figures on
#: feedbacks nothing was tuned or looked at on.
SPLITS = {"test": "feedback.json", "dev": "feedback_dev.json", "fresh": "feedback_fresh.json"}


def load_feedback_set(split: str = "test") -> list[dict[str, Any]]:
    """The feedbacks of one of :data:`SPLITS`."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    data = json.loads((CORPUS / SPLITS[split]).read_text(encoding="utf-8"))
    feedbacks: list[dict[str, Any]] = data["feedbacks"]
    return feedbacks
