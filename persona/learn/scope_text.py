"""What comes off a feedback before the scope reader (:mod:`persona.learn.scope_words`) reads
its sentences: quotations, asides about the user, names in apposition, small talk; and where
its sentences end ("Dr. Okafor" ends none)."""

from __future__ import annotations

import re

#: Quoted text; a single quote opens only where no letter precedes it ("my kids' party, don't"
#: is not a quotation).
QUOTED = re.compile(r"(?:(?<!\w)'[^']{1,80}'(?!\w)|\"[^\"]{1,80}\"|“[^”]{1,80}”|‘[^’]{1,80}’)")

#: Words that open a sentence before what it says ("Honestly, the recaps are too long").
FILLER = re.compile(
    r"^(?:(?:honestly|hey|hi|ok|okay|btw|so|also|and|but|oh|look|listen|seriously|actually|ugh|"
    r"hmm|meh|wow|oops|lol|well|yo|going forward|from now on|moving forward|in future|"
    r"in the future|from here on)"
    r"\b[,!]?\s+)+",
    re.IGNORECASE,
)

#: A clause about the user, not the request ("I'm in zone 6b", "i read these on a phone").
ABOUT_ME = re.compile(
    r"^(?:i'm|im|i am|we're|we are|i live|i read|i work|i've got|i have got|i got|i'll be|"
    r"i have (?:a|an|one|two|three|no)|i use|"
    r"i only have|my (?:\w+ )?(?:is|are))\b",
    re.IGNORECASE,
)
#: The same clause closing a sentence after a comma ("Explain chemistry with analogies, I'm a
#: visual learner").
CLOSING_ABOUT_ME = re.compile(r",\s+" + ABOUT_ME.pattern.removeprefix("^") + ".*$", re.I)

#: A sentence about an earlier answer ("Your last summary was too long", "Last time you ...").
COMPLAINT = re.compile(
    r"^(?:(?:your|the|that)\s+(?:last|previous|latest|earlier)\b|last time\b|"
    r"(?:yesterday|earlier|before)\s+you\b)",
    re.IGNORECASE,
)

#: A sentence about the user or people around them, not a rule: after the rule it is backstory
#: ("I've been doing this for ten years.", "Our bassist keeps asking.", "The chair, Mr.
#: Hargreaves, reads them on an iPad.").
BACKSTORY = re.compile(
    r"^(?:i|i've|i'm|im|i'd|i'll|we|we've|we're|our|my|he|she|they|he's|she's|they're|his|her|"
    r"their|the \w+(?:,[^,]{2,40},)?\s+\w+s)\b",
    re.IGNORECASE,
)
#: An aside in parentheses about a person ("Bedtime stories for Mila (she's five)", "my parents
#: (both in their late seventies)"): what it says is context, not scope.
ASIDE = re.compile(
    r"\((?:she|he|they|it|we|i|my|our|both|all|each|aged?|who|which)\b[^()]{0,80}\)",
    re.IGNORECASE,
)
#: What the user says about themselves before the rule: "As a ninth-grade teacher, ...",
#: "I bake with a kitchen scale, so ...", "My daughter is recovering from ..., so ...".
CONTEXT_FIRST = re.compile(
    r"^(?:as (?:a|an) [^,]{3,60},\s+|(?:i|we|my|our)\b[^,]{3,100},\s+so\s+)", re.IGNORECASE
)
#: A name in apposition before the rule's verb: "Emails to my PhD advisor, Dr. Okafor, should".
APPOSITION = re.compile(
    r"^(?P<head>[^,]{3,60}),\s+[^,]{2,40},\s+(?=(?:should|must|need|needs|have to|has to|"
    r"always|never|shall|ought)\b)",
    re.IGNORECASE,
)


#: Abbreviations whose period ends no sentence ("my advisor, Dr. Okafor, ...").
ABBREVIATIONS = frozenset("dr mr mrs ms prof st jr sr vs etc e.g i.e approx no".split())


def sentences(text: str) -> list[str]:
    parts = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    out: list[str] = []
    for part in parts:
        last = out[-1].split()[-1].lower().rstrip(".") if out else ""
        if out and out[-1].endswith(".") and last in ABBREVIATIONS:
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return out


def clean_feedback(feedback: str) -> str:
    """``feedback`` without quotations (the instruction's content) and asides in parentheses
    about a person, on one line."""
    return " ".join(ASIDE.sub(" ", QUOTED.sub(" ", feedback)).split())


def strip_context(sentence: str) -> str:
    """One sentence without what the user says about themselves or the small talk around the
    rule ("As a teacher, ...", "I'm a nurse — when ...", "..., I'm a visual learner")."""
    sentence = FILLER.sub("", sentence)
    sentence = APPOSITION.sub(r"\g<head> ", CONTEXT_FIRST.sub("", sentence))
    context = re.split(r"\s+[-–—]+\s+|—", sentence, maxsplit=1)
    if len(context) == 2 and ABOUT_ME.match(context[0]):
        sentence = context[1]  # what the user says about themselves first is context
    return CLOSING_ABOUT_ME.sub("", sentence)
