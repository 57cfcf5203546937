"""CIPHER's text: the edit's compact word diff, the LLM's answer cleaned into a preference
phrase, a description split into clauses, what a revision rules out (length limits it breaks,
literal openings and endings it lacks, features it has but a clause bans or lacks but a clause
asks for), and the vote that aggregates without an LLM."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence

import numpy as np

from persona.errors import LearningError
from persona.learn import prompts
from persona.learn.edit_facts import count_sentences, count_words, facts_block, features
from persona.learn.guard import looks_like_injection, until_template_token

Embed = Callable[[list[str]], np.ndarray]  # texts -> L2-normalized rows


def infer_prompt(output: str, edited: str, *, max_diff_words: int = 60, facts: bool = False) -> str:
    """CIPHER's inference prompt for the edit ``output`` → ``edited``: both texts, their word
    diff and (``facts``; off by default, as in CIPHER) the counted changes of
    :func:`~persona.learn.edit_facts.edit_facts`."""
    shown = prompts.CIPHER_FACTS.format(facts=facts_block(output, edited)) if facts else ""
    return prompts.CIPHER_INFER.format(
        output=output.strip(),
        edited=edited.strip(),
        diff=word_diff(output, edited, max_words=max_diff_words),
        facts=shown,
    )


def word_diff(output: str, edited: str, *, max_words: int = 60) -> str:
    """A compact word-level diff: ``- removed words`` / ``+ added words`` lines."""
    a, b = output.split(), edited.split()
    lines: list[str] = []
    budget = max_words
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        for sign, words in (("-", a[i1:i2]), ("+", b[j1:j2])):
            if words and budget > 0:
                shown = words[:budget]
                budget -= len(shown)
                lines.append(
                    f"{sign} {' '.join(shown)}" + (" ..." if len(shown) < len(words) else "")
                )
    return "\n".join(lines) if lines else "(no change)"


_PREAMBLE = re.compile(
    r"^\s*(?:(?:the|this)\s+)?(?:user(?:'s)?\s+)?(?:generic\s+)?(?:preference|preferences|"
    r"answer|phrase|style)(?:\s+(?:is\s+)?in\s+terms\s+of\s+writing\s+style\s+and\s+"
    r"formatting)?\s*(?:is|are|:)\s*:?\s*",
    re.IGNORECASE,
)
# The question echoed back instead of answered: not a preference.
_ECHO = re.compile(r"(?:in\s+terms\s+of\s+writing\s+style|generic\s+preference)", re.I)
# A refusal or a disclaimer is not a preference.
_REFUSAL = re.compile(
    r"^\W*(?:i'?m\s+sorry|sorry\b|i\s+(?:cannot|can't|can\s+not|am\s+unable|won't|apologi[sz]e)"
    r"|as\s+an?\s+(?:ai|language\s+model)|unfortunately\b)",
    re.IGNORECASE,
)
_LEAD = re.compile(r"^\s*(?:[-*•>#]+|\d+[.)])\s*")
_JUNK = re.compile(
    r"(?:original answer|revised answer|word-level changes|<\|im_|\bassistant\b:)", re.I
)


def clean_phrase(raw: str, *, max_words: int = 25) -> str:
    """Turn an LLM answer into a short preference phrase, or raise :class:`LearningError`."""
    text = until_template_token(raw).strip()  # the answer ends at a special token
    if not text:
        raise LearningError("the LLM returned an empty preference; nothing was stored.")
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    phrase = _LEAD.sub("", first)
    phrase = _PREAMBLE.sub("", phrase).strip().strip("\"'`“”").strip()
    phrase = phrase.rstrip(".;:,").strip()
    if (
        not phrase
        or _JUNK.search(phrase)
        or _ECHO.search(phrase)
        or _REFUSAL.search(phrase)
        or not re.search(r"[A-Za-z]{2,}", phrase)
    ):
        raise LearningError(f"the LLM answered {raw[:80]!r}, not a preference; nothing was stored.")
    if looks_like_injection(phrase):
        raise LearningError(
            f"the LLM answered {raw[:80]!r}, which reads as an instruction, not a preference; "
            "nothing was stored."
        )
    words = phrase.split()
    if len(words) > max_words:
        # Rambling: keep the first clause when it is short enough, else reject.
        clause = re.split(r"[.;:]\s", phrase, maxsplit=1)[0].split()
        if len(clause) > max_words:
            raise LearningError(
                f"the LLM answered {len(words)} words ({raw[:60]!r}...); a preference is a short "
                "phrase, so nothing was stored."
            )
        words = clause
    return " ".join(words)


def clauses(text: str) -> list[str]:
    """The separate preferences in one description: split at ``; `` and ``, `` and line ends,
    but not inside brackets or double quotes (``TL;DR`` and ``('Dear …,' / 'Best,')`` stay
    whole)."""
    out: list[str] = []
    depth, quoted, start = 0, False, 0
    for i, ch in enumerate(text):
        if ch in '"“”':
            quoted = not quoted if ch == '"' else ch == "“"
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        nxt = text[i + 1 : i + 2]
        if ch == "\n" or (ch in ";," and nxt.isspace() and not depth and not quoted):
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return [c.strip(" .;,-*•\t") for c in out if c.strip(" .;,-*•\t")]


#: A limit on an answer's length: "no more than 10 words", "at most 2 sentences", "40 words
#: or fewer".
_LIMIT = re.compile(
    r"(?:\b(?:no|not)\s+(?:more|longer)\s+than|\bat\s+most|\bunder|\bfewer\s+than|\bless\s+than"
    r"|\bup\s+to|\bbelow|\bwithin|\bmax(?:imum)?(?:\s+of)?|\blimit(?:ed)?\s+to)"
    r"\s+(?P<n>\d+)\s+(?P<unit>words?|sentences?)\b"
    r"|\b(?P<n2>\d+)\s+(?P<unit2>words?|sentences?)\s+(?:or\s+(?:fewer|less)|max(?:imum)?|at\s+most)\b",
    re.IGNORECASE,
)
#: Words that make a limit about a part of the answer (its sentences, lines, title ...),
#: which the length of the whole revision cannot contradict.
_PART = re.compile(
    r"\b(?:sentences?|lines?|bullets?|points?|paragraphs?|titles?|headings?|headers?|tl;?dr|"
    r"subject|items?|greetings?|sign-?offs?|openings?|closings?|each|per|first|last)\b",
    re.IGNORECASE,
)
#: Words around a limit that say nothing without it ("keep it under 50 words").
_FILLER = re.compile(
    r"(?:\b(?:keep|keeping|it|the|answer|answers|response|reply|text|total|length|to|be|"
    r"write|make|in|a|and|with|of|short|brief)\b\s*)+$",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(r"(?:;\s|,\s|\n|\s+and\s+)")


def without_broken_limits(phrase: str, revision: str) -> str:
    """``phrase`` without the limits on the whole answer's length, in words or sentences,
    that ``revision`` (the text the user wrote) breaks: the user cannot want at most 10 words
    and write 40. A limit on a part of the answer ("sentences of at most 12 words", "a title
    of at most 8 words") is kept, as is every other word of the phrase; "" when nothing is
    left."""
    out = phrase
    for m in reversed(list(_LIMIT.finditer(phrase))):
        unit = m.group("unit") or m.group("unit2")
        limit = int(m.group("n") or m.group("n2"))
        starts = [s.end() for s in _SEPARATOR.finditer(out, 0, m.start())]
        clause_start = starts[-1] if starts else 0
        stop = _SEPARATOR.search(out, m.end())
        clause_end = stop.start() if stop else len(out)
        head = out[clause_start : m.start()]
        count = count_words if unit.lower().startswith("word") else count_sentences
        if _PART.search(head + out[m.end() : clause_end]) or count(revision) <= limit:
            continue
        filler = _FILLER.search(head)
        start = m.start() - (len(filler.group()) if filler else 0)
        before = re.sub(r"(?:\s*[;,]\s*|\s+and\s*|\s+)$", "", out[:start])
        out = before + out[m.end() :]
    return out.strip(" \t\n;,").strip()


#: A clause about the answer's first or last words: "start with a one-line TL;DR", "open with
#: 'Dear ...'", "end with a 'Best regards' line".
_ENDS = re.compile(
    r"^(?:(?:and|then|also|always|please)\s+)*(?P<verb>start|begin|open|end|close|finish)(?:s|ing)?"
    r"\s+(?:with|by)\b(?P<rest>.+)$",
    re.IGNORECASE | re.DOTALL,
)
#: "start with X and end with Y" is two clauses.
_AND_ENDS = re.compile(
    r"\s+and\s+(?=(?:start|begin|open|end|close|finish)(?:s|ing)?\s+(?:with|by)\b)",
    re.IGNORECASE,
)
_LEADING_AND = re.compile(r"^(?:and|then|also)\s+", re.IGNORECASE)
#: What such a clause names literally: a quotation ('Dear ...', "Cheers,") or a marker written
#: in capitals (TL;DR, P.S., FYI). A named kind of text ("a greeting", "a summary") is not
#: literal, and is never checked.
_QUOTE = re.compile(r"(?<![A-Za-z])'([^']+)'|\"([^\"]+)\"|“([^”]+)”|‘([^’]+)’")  # not "user's"
_MARKER = re.compile(r"(?<![\w;.])(?:[A-Z]{1,4}[;.][A-Z]{1,4}\.?|[A-Z]{2,5})(?![\w;])")
#: Where a quotation stops being literal: a placeholder ("[Name]") or an ellipsis.
_PLACEHOLDER = re.compile(r"\[|\.\.\.|…|<")


def _alnum(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def _literals(rest: str) -> list[str]:
    quoted = [next(g for g in m.groups() if g) for m in _QUOTE.finditer(rest)]
    if quoted:
        heads = [_PLACEHOLDER.split(q, maxsplit=1)[0] for q in quoted]
        return [h for h in heads if len(_alnum(h)) >= 2]
    return [m.group() for m in _MARKER.finditer(rest)]


def _contradicted(clause: str, revision: str) -> bool:
    m = _ENDS.match(clause.strip())
    if not m:
        return False
    literals = _literals(m.group("rest"))
    lines = [line for line in revision.splitlines() if _alnum(line)]
    if not literals or not lines:
        return False
    first = m.group("verb").lower() in ("start", "begin", "open")
    line = _alnum(lines[0] if first else lines[-1])
    return not all(_alnum(lit) in line for lit in literals)


def without_contradicted_ends(phrase: str, revision: str) -> str:
    """``phrase`` without the clauses asking the answer to start or end with literal words
    (a quotation, or a marker such as TL;DR) that ``revision``'s own first or last line does
    not hold: the user who wrote "Subject: ..." first does not want answers that open with a
    TL;DR. Clauses naming no literal words ("start with a greeting") are kept; the phrase is
    returned as it is when nothing is dropped, the kept clauses joined with "; " otherwise,
    and "" when nothing is left."""
    return _without(phrase, _AND_ENDS, lambda clause: _contradicted(clause, revision))


def _without(phrase: str, and_split: re.Pattern[str], drop: Callable[[str], bool]) -> str:
    """``phrase`` split into clauses (also at ``and_split``) without those ``drop`` says:
    the phrase as it is when nothing is dropped, the kept clauses joined with "; " otherwise,
    "" when nothing is left."""
    parts = [p for c in clauses(phrase) for p in and_split.split(c) if p.strip()]
    kept = [p for p in parts if not drop(p)]
    if len(kept) == len(parts):
        return phrase.strip()
    return "; ".join(_LEADING_AND.sub("", p.strip()) for p in kept)


#: The surface features a clause can name, each with the features of :func:`features` that
#: count as having it; the first that matches a name wins ("numbered list" is not any list).
_FEATURE_NAMES: tuple[tuple[re.Pattern[str], frozenset[str]], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), frozenset(have))
    for pattern, have in (
        (r"\bnumber(?:ed|s)\b(?:\s+lists?)?|\benumerat\w*", ("numbered",)),
        (r"\bbullet(?:ed|s)?(?:[- ]points?)?(?:\s+lists?)?", ("bullets",)),
        (r"\blists?\b|\blist items?\b", ("numbered", "bullets")),
        (r"\bemojis?\b|\bemoticons?\b|\bsmileys?\b", ("emoji",)),
        (r"\bexclamation", ("exclamation",)),
        (r"\bquestions?\b", ("question",)),
        (r"\bhashtags?\b", ("hashtag",)),
        (r"\bbold\b", ("bold",)),
        (r"\bcontractions?\b", ("contraction",)),
        (r"\blinks?\b|\burls?\b", ("link",)),
    )
)
_CLAUSE_LEAD = r"^(?:(?:and|then|also|always|please)\s+)*"
#: A clause that bans what it names: "no lists", "avoid emojis", "don't use contractions".
_BAN = re.compile(
    _CLAUSE_LEAD + r"(?:(?:use\s+)?no|avoid(?:ing)?|without|never\s+(?:use|add|include)|"
    r"do(?:n['’]t|\s+not)\s+(?:use|add|include|put)|remove|drop|omit|skip|stop\s+using)\s+"
    r"(?P<what>.+)$",
    re.IGNORECASE | re.DOTALL,
)
#: A clause that asks for what it names: "use bullet points", "end with an emoji".
_ASK = re.compile(
    _CLAUSE_LEAD + r"(?:use|include|add|insert|put|(?:format(?:ted)?|write|written|organi[sz]ed?)"
    r"\s+(?:as|in|with|into)|(?:start|begin|open|end|close|finish)(?:s|ing)?\s+with|in|as)\s+"
    r"(?P<what>.+)$",
    re.IGNORECASE | re.DOTALL,
)
#: Words that make a clause about how much or where, which presence alone cannot settle
#: ("no more than two emojis", "avoid emojis except at the end", "use fewer lists").
_DEGREE = re.compile(
    r"\b(?:more|fewer|less|least|most|few|many|much|too|excessive(?:ly)?|over-?use|only|"
    r"except|unless|but|instead|rather|than|minimum|maximum|max|limit(?:ed)?|one|single|"
    r"no|not|never|avoid|without|don['’]t)\b|\d",
    re.IGNORECASE,
)


#: "end with an emoji and use hashtags" is two clauses.
_AND_CLAUSE = re.compile(
    r"\s+and\s+(?=(?:(?:start|begin|open|end|close|finish)(?:s|ing)?\s+with|use|include|add|"
    r"avoid|never|no|without|do(?:n['’]t|\s+not))\b)",
    re.IGNORECASE,
)


def _named(what: str) -> list[frozenset[str]]:
    named = []
    for name, have in _FEATURE_NAMES:
        if name.search(what):
            named.append(have)
            what = name.sub(" ", what)
    return named


def _feature_contradicted(clause: str, has: frozenset[str]) -> bool:
    text = clause.strip()
    for pattern, wanted in ((_BAN, False), (_ASK, True)):
        m = pattern.match(text)
        if not m or _DEGREE.search(m.group("what")):
            continue
        named = _named(m.group("what"))
        if not named:
            return False
        present = [bool(has & alternatives) for alternatives in named]
        return not all(present) if wanted else any(present)
    return False


def without_contradicted_features(phrase: str, revision: str) -> str:
    """``phrase`` without the clauses that ban a surface feature ``revision`` has ("no lists"
    from a revision in bullet points: the user wrote them) or ask for one it lacks ("use
    emojis" from a revision with none). Features are those of :func:`features` (list items,
    emoji, exclamation and question marks, hashtags, bold, contractions, links); a clause
    about how many or where ("at most one emoji", "no emoji except at the end") and every
    clause naming no feature are kept. The phrase is returned as it is when nothing is
    dropped, the kept clauses joined with "; " otherwise, and "" when nothing is left."""
    has = features(revision)
    return _without(phrase, _AND_CLAUSE, lambda clause: _feature_contradicted(clause, has))


def _shown(clause: str, revision: str, has: frozenset[str]) -> bool:
    text = _LEADING_AND.sub("", clause.strip())
    ends = _ENDS.match(text)
    literals = _literals(ends.group("rest")) if ends else []
    if literals:
        return not _contradicted(text, revision) and bool(_alnum(revision))
    if _BAN.match(text) or _DEGREE.search(text):
        return False
    asked = _ASK.match(text)
    named = _named(asked.group("what") if asked else text)
    return bool(named) and all(has & alternatives for alternatives in named)


def shown_clauses(phrase: str, revision: str) -> list[str]:
    """The clauses of ``phrase`` that ``revision`` visibly has: an opening or ending in
    literal words its first or last line holds ("start with 'TL;DR'"), or a surface feature
    of :func:`features` it has, asked for without a degree ("bullet points", "use
    hashtags"). A ban, a limit, a tone or anything else no count can confirm is not shown."""
    has = features(revision)
    parts = [p for c in clauses(phrase) for p in _AND_CLAUSE.split(c) if p.strip()]
    parts = [p for c in parts for p in _AND_ENDS.split(c) if p.strip()]
    return [_LEADING_AND.sub("", p.strip()) for p in parts if _shown(p, revision, has)]


def same_clause(a: str, b: str) -> bool:
    """Two clauses that say the same words, whatever their quotes, case and punctuation."""
    return _alnum(a) == _alnum(b)


def without_contradicted(phrase: str, revision: str) -> str:
    """``phrase`` without everything ``revision`` contradicts: :func:`without_broken_limits`,
    then :func:`without_contradicted_ends`, then :func:`without_contradicted_features`; ""
    when nothing is left. What CIPHER stores of a model's phrase."""
    kept = without_contradicted_ends(without_broken_limits(phrase, revision), revision)
    return without_contradicted_features(kept, revision)


def vote(texts: Sequence[str], embed: Embed, same: float = 0.4) -> str:
    """CIPHER's aggregation without an LLM: the clauses that a strict majority of ``texts``
    state (two clauses are the same preference at cosine ``same`` or more), each once, nearest
    first, joined with ``; ``. When no clause has a majority, the nearest text as it is.

    ``texts`` are the retrieved preferences, nearest first, repeats included: a repeat is a
    vote."""
    split = [clauses(t) for t in texts]
    flat = [(owner, c) for owner, cs in enumerate(split) for c in cs]
    if not flat:
        return texts[0].strip() if texts else ""
    vecs = np.asarray(embed([c for _, c in flat]), dtype=np.float32)
    sims = vecs @ vecs.T
    owners = np.array([owner for owner, _ in flat])
    kept: list[int] = []
    for a in range(len(flat)):
        close = sims[a] >= same
        support = len(set(owners[close].tolist()))
        if 2 * support > len(texts) and not any(close[b] for b in kept):
            kept.append(a)
    return "; ".join(flat[a][1] for a in kept) if kept else texts[0].strip()
