"""The words the scope reader (:mod:`persona.learn.scope_words`) and the request's side
(:mod:`persona.learn.request_words`) share: what a word is, which words never name a scope,
which name it only vaguely, and which say how rather than where; and, from those words alone,
a phrase's content words (:func:`facets`) and whether it says how (:func:`is_manner`)."""

from __future__ import annotations

import re

#: A word of a scope or a request ("d&d" and "q&a" are one word).
WORD = r"[a-z0-9](?:[a-z0-9'-]|&(?=[a-z0-9]))*"

#: Units: a manner after a number or alone ("under 30 minutes", "in Celsius"), a kind of
#: request after a noun ("meeting minutes").
UNITS = frozenset(
    "seconds minutes hours days weeks grams kilograms pounds ounces cups celsius fahrenheit "
    "miles kilometers meters feet inches liters".split()
)

#: Words that make a phrase a manner ("in all lowercase", "as a numbered list"), not a scope.
MANNER = (
    frozenset(
        """lowercase uppercase caps capitals mood voice tense tenses units unit
        metric imperial format formatting style tone block blocks list lists bullet bullets point
        points paragraph paragraphs sentence sentences word words person british american
        spelling way manner detail details table tables markdown numbered order max maximum
        bulleted checklist checklists checkbox checkboxes length lengths
        minimum characters lines line prose""".split()
    )
    | UNITS
)

NUMBERS = frozenset(
    "a an one two three four five six seven eight nine ten twelve fifteen twenty thirty "
    "forty fifty sixty hundred few couple several many".split()
)

#: Languages an answer can be written in ("in German": a manner when named alone).
LANGUAGES = frozenset(
    """english spanish french german italian portuguese dutch russian chinese mandarin cantonese
    japanese korean arabic hindi hebrew greek latin polish turkish swedish norwegian danish
    finnish ukrainian vietnamese thai indonesian tagalog swahili irish welsh""".split()
)

#: Words a facet never is: function words, the requester, and verbs of asking and writing.
STOP = frozenset(
    """a an the to of in on at for from by with about as and or but nor so my your our their
    his her its me i you we us them it is are be been was were am do does did don't dont not
    no any all every each some this that these those there when whenever if while during
    always never please should must shall need needs have has ought will would can could
    ask asks asked asking want wants request write writes writing written wrote draft
    drafting make makes making made give gives help compose composing prepare send create
    creating put get using use one thing things stuff something off up out more less
    very too much into onto like than then just also only via per i'm i've i'd i'll you're
    you've you'd we're we've we'd it's that's let's don't doesn't didn't can't won't isn't
    aren't shouldn't mustn't how what why where which who whom whose pls plz thx thanks doing
    they he she after before since until around near between among through across against
    toward towards upon within without earlier later yesterday else
    im u ur r w bout abt q qs ive youre thats cuz bc tho rn idk gave given giving together
    suggest suggests suggested recommend recommends recommended paste pastes pasted pasting
    upload uploads uploaded forward forwarded whether particular specific certain various""".split()
)

#: Heads that name no kind of request in a longer phrase ("answers about tax law" -> tax, law).
VAGUE = frozenset(
    """anything everything something stuff question questions request requests topic topics
    answer answers response responses output kind kinds type types sort
    explaining explain helping answering discussing talking piece pieces content suggesting
    recommending
    anywhere everywhere somewhere ideas idea advice drafts tips""".split()
)

#: Objects that name no kind of request ("keep *your answers* short", "keep *the tone* light").
GENERIC = frozenset(
    "answer answers response responses reply replies output text tone them everything voice "
    "style writing".split()
)


def facets(phrase: str) -> list[str]:
    """The content words of a scope phrase, in order ("drafting emails to my boss" ->
    ["emails", "boss"]); possessives lose their "'s", "lists of" is dropped, and vague heads
    ("answers about tax law") count only where nothing else is named."""
    # "lists of book recommendations": the list is the form, the books the scope
    phrase = re.sub(r"\blists? of\b", " ", phrase.lower())
    phrase = re.sub(rf"\b(?:\d+|{'|'.join(NUMBERS)}) (?:years?|yrs?|months?) old\b", " ", phrase)
    words = re.findall(WORD, phrase)
    out = [re.sub(r"'s?$", "", w) for w in words]
    kept = list(dict.fromkeys(w for w in out if w and w not in STOP and not w.isdigit()))
    return [w for w in kept if w not in VAGUE] or kept


_PLAIN = re.compile(
    r"\b(?:plain|simple|everyday) (?:text|english|language|words|terms)\b|\blayman'?s terms\b",
    re.IGNORECASE,
)


def is_manner(phrase: str) -> bool:
    """A phrase that says how, not where ("in a numbered list"); a list of something is a kind
    of request ("grocery lists"), a bare list is a form ("in a list")."""
    if _PLAIN.search(phrase):  # "in plain text", "in simple terms"
        return True
    words = re.findall(r"[a-z0-9]+", phrase.lower())
    hits = set(words) & MANNER
    if hits and hits <= {"list", "lists"}:
        return not [w for w in facets(phrase) if w not in hits]
    for i, w in enumerate(words):
        if w in UNITS:  # "meeting minutes": measured nothing
            before = words[i - 1] if i else ""
            if before and before not in STOP and before not in NUMBERS and not before.isdigit():
                hits.discard(w)
    return bool(hits)
