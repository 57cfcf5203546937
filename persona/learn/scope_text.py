"""What comes off around what the scope reader (:mod:`persona.learn.scope_words`) reads:
before it reads a feedback's sentences, quotations, asides about the user, names in apposition,
small talk and backstory (and where its sentences end: "Dr. Okafor" ends none); after it finds a
scope phrase, the asking around it ("when you draft emails to my boss" -> "emails to my
boss")."""

from __future__ import annotations

import re

from persona.learn.scope_vocab import WORD

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
#: Words that make a sentence a rule, not a story ("Our reports should ...").
_RULE_WORD = re.compile(
    r"\b(?:should|must|need to|needs to|have to|has to|always|never|please|pls|don't|do not)\b",
    re.IGNORECASE,
)


def is_backstory(sentence: str) -> bool:
    """A sentence about the user or people around them with no rule word in it."""
    return bool(BACKSTORY.match(sentence)) and not _RULE_WORD.search(sentence)


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


def split_sentences(text: str) -> list[str]:
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


#: Verbs of asking for and making an answer ("when I ask for ...", "when you draft ...").
ASK_VERBS = (
    r"ask|want|need|request|draft|write|make|send|prepare|analy[sz]e|paste|share|upload|forward|"
    r"show|give|bring|review|check|edit|proofread|explain|answer|discuss|talk|correct|fix|"
    r"translate|summari[sz]e|plan|reply|respond|help|suggest|recommend|come up with|pick|choose|"
    r"find|create|design|put together|go over|go through|work on|study|practi[cs]e|brainstorm"
)
ASK = re.compile(
    r"^(?:(?:i|we)\s+(?:ask|want|need)\s+(?:you|u)\s+to\s+[a-z]+\s+|"
    r"(?:i'm|im|i am|we're|we are)\s+(?:asking|talking|writing|working)\s+"
    r"(?:you\s+)?(?:about|for|on|to|with)?\s*|"
    rf"(?:i|you|u|we)\s+(?:{ASK_VERBS})\s+"
    # "when you help me plan board game nights"
    rf"(?:(?:me|us)\s+(?:(?:to\s+)?(?:{ASK_VERBS})\s+)?)?"
    r"(?:you\s+)?(?:for|to|about|with|bout|abt)?\s*|about\s+)",
    re.IGNORECASE,
)
#: The words :data:`ABOUT` is made of, with the vague and function words before it.
ABOUT_WORDS = frozenset(
    """is are it's talk talking chat chatting ask asking question questions request requests
    answer answers advice help tips anything something stuff thing things about regarding
    involving concerning related to on going sent addressed meant intended for""".split()
)

#: "the question is about X", "anything involving X": X is the scope.
ABOUT = re.compile(
    r"^.*?\b(?:is|are|it's|talk|talking|chat|chatting|ask|asking|questions?|requests?|"
    r"answers?|advice|help|tips|anything|something|stuff|things?)\s+(?:about|regarding|"
    r"involving|concerning|related to|on|going (?:to|in|into|out to)|sent to|addressed to|"
    r"meant for|intended for)"
    r"\s+",
    re.IGNORECASE,
)


def clean_phrase(phrase: str) -> str:
    """A scope phrase without the asking around it ("you draft emails to my boss" -> "emails to
    my boss"; "answers about tax law" -> "tax law")."""
    phrase = re.sub(r"^(?:say|suppose|imagine|let's say)\s+", "", phrase.strip(), flags=re.I)
    phrase = ASK.sub("", phrase.strip(" .,!?;:\"'")).strip(" .,!?;:\"'")
    phrase = re.sub(r"\s+(?:go|goes|are concerned|is concerned)$", "", phrase, flags=re.I)
    phrase = re.sub(
        r"\s+(?:we|i)\s+(?:post|publish|send out|put out|share|use)\b", "", phrase, flags=re.I
    )
    about = ABOUT.match(phrase)
    if about:  # "health questions about my kids" keeps "health"; "answers about tax" not
        kept = [w for w in re.findall(WORD, about.group(0).lower()) if w not in ABOUT_WORDS]
        phrase = " ".join([*kept, phrase[about.end() :]])
    return " ".join(phrase.split())
