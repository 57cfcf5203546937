"""Where a feedback says it applies, read from its own words, without an LLM.

People state the scope of a feedback in a handful of English shapes:

- a leading clause: "When I ask for Python code, ...", "For recipes, ...";
- a trailing clause: "... when drafting emails to my boss", "... in my cover letters";
- the subject of a rule: "My commit messages should be ...", "Replies to reviews: 50 words max";
- the object of a verb that acts on the whole answer: "Keep tweets for my bakery under 40
  words", "Comment the SQL queries you write for me", "Start every reply to support tickets
  with ...", also after "Could you ..." or "Please always ...";
- a stated wish: "I'd like my lab notes kept brief", "I prefer that captions for my photos stay
  short".

A rule with a subject or an object names its scope there, and what follows is its manner ("Put
YAML snippets in code fences"). Vague heads count only where nothing else is named
("answers about tax law" -> "tax", "law").

:func:`scope_phrases` returns those phrases ("drafting emails to my boss"); :func:`facets`
splits one into the content words a request must touch to be in scope ("emails", "boss"),
which :class:`~persona.learn.scope.ScopeModel` matches word by word against the request's
own (:mod:`persona.learn.request_words`).
Quoted text is the instruction's content, never its scope, and is dropped first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from persona.learn.scope_text import (
    ABOUT_ME,
    ASK,
    COMPLAINT,
    clean_feedback,
    clean_phrase,
    is_backstory,
    split_sentences,
    strip_context,
)
from persona.learn.scope_vocab import (
    GENERIC,
    LANGUAGES,
    MANNER,
    STOP,
    UNITS,
    VAGUE,
    WORD,
    facets,
    is_manner,
)

__all__ = [
    "GENERIC",
    "MANNER",
    "STOP",
    "UNITS",
    "VAGUE",
    "WORD",
    "facets",
    "scope_facets",
    "scope_phrases",
]


_MARK = r"(?:when(?:ever)?|if|while|during|for|in|on)"
#: Markers that open a leading clause only ("Regarding my car questions, ...").
_LEAD_MARK = (
    r"(?:when it comes to|in terms of|as far as|any ?time|every ?time|"
    r"(?:anything|everything|stuff|questions?|things?)\s+"
    r"(?:i\s+(?:send|give|show|paste|share|forward|bring)\s+(?:you\s+)?)?"
    r"(?:about|on|regarding|involving|"
    r"related to|to do with)|"
    rf"{_MARK}|regarding|concerning|about|as for|with|re:)"
)

_LEADING = re.compile(
    rf"^{_LEAD_MARK}\s+(?P<scope>[^,;:]{{3,80}})[,;:]\s*(?P<rest>.+)$",
    re.IGNORECASE,
)
#: Words that open the instruction after a leading clause with no comma ("For meeting summary
#: *please* put ...", "when you write to my tenants *keep* it firm"), unless they follow a
#: subject ("when you *write* to ...").
_OPENERS = frozenset(
    """please pls plz just always never don't dont give tell show use keep make add put list
    skip avoid stop start include point sound be stay assume remind focus stick explain mention
    answer respond reply write no ask check flag warn cite suggest offer recommend lead note
    round correct walk""".split()
)
_SUBJECTS = frozenset("i you we he she they it i'm you're we're to can will would should".split())
_WISH_VERBS = frozenset("need want prefer like would really".split())
#: "... you can skip the disclaimers": what the assistant may or must do is the instruction.
_MAY = frozenset("can could may should must don't dont do need".split())
#: Words that can only start an instruction, wherever they stand in a leading clause.
_TOLD = re.compile(r"\s+(?=(?:don't|dont|never|always|please|pls|plz)\s)", re.IGNORECASE)
#: Verbs that open an instruction inside a leading clause ended by a comma ("For chess analysis
#: use algebraic notation, not descriptive"), unless a subject precedes them ("when you give").
_TOLD_VERB = re.compile(
    r"(?<!\bi)(?<!\byou)(?<!\bwe)(?<!\bu)(?<!\bthey)(?<!\bwho)(?<!\bthat)(?<!\bwhich)\s+"
    r"(?=(?:just|give|keep|use|skip|avoid|stop|be|stay|assume|cite|tell|include|should|must)\s)",
    re.IGNORECASE,
)
#: What a leading phrase with no comma may be without naming a scope ("In general keep ...").
_NOT_LEAD = frozenset(
    """general short brief future particular summary now example instance sure fact case
    addition total""".split()
)


def _lead(sentence: str) -> tuple[str, str] | None:
    """A leading clause and the instruction after it: "For recipes, give ..." or, with no
    comma, "for moving checklists just give me ..." (at most 8 words before the instruction)."""
    m = _LEADING.match(sentence)
    if m:  # "Questions about moon phases - just give me ..., no astrology": up to the dash
        scope, *rest = re.split(r"\s+(?:->|[-–—]+|=)\s+", m.group("scope"), maxsplit=1)
        # "in code reviews dont nitpick formatting, ...": the instruction starts at "dont"
        scope, *told = re.split(_TOLD, scope, maxsplit=1)
        rest = [*told, *rest]
        # "for podcast episode titles give me 2-3 options, not 10": the instruction starts
        # at its verb, as with no comma
        scope, *told = re.split(_TOLD_VERB, scope, maxsplit=1)
        rest = [*told, *rest]
        # "for woodworking plans i need inches, not mm": the wish is the instruction
        scope, *wish = re.split(
            r"\s+(?=(?:i|i'd)\s+(?:need|want|prefer|like|would)\b)",
            scope,
            maxsplit=1,
            flags=re.IGNORECASE,
        )
        return scope, " ".join([*wish, *rest, m.group("rest")])
    m = re.match(rf"{_LEAD_MARK}\s+", sentence, re.IGNORECASE)
    if not m:
        return None
    words = sentence[m.end() :].split()
    for i in range(1, min(len(words), 9)):
        # "for woodworking plans i need inches": the wish is the instruction
        nxt = words[i + 1].lower() if i + 1 < len(words) else ""
        wants = words[i].lower() in ("i", "i'd") and nxt in _WISH_VERBS
        wants = wants or (words[i].lower() in ("you", "u") and nxt in _MAY)
        if wants or (words[i].lower() in _OPENERS and words[i - 1].lower() not in _SUBJECTS):
            scope = " ".join(words[:i])
            if set(re.findall(r"[a-z]+", scope.lower())) - STOP <= _NOT_LEAD:
                return None
            return scope, " ".join(words[i:])
    return None


#: How a request to the assistant opens before its verb ("Could you always ...").
_POLITE = re.compile(
    r"^(?:(?:please|kindly|let's|let us|(?:could|can|would|will) (?:you|u)|"
    r"make sure (?:to|you)|"
    r"remember to|try to|i'd like you to|i want you to|i need you to|"
    r"(?:would|is) it (?:be )?possible to|it'd be (?:great|nice) if you could)\s+)*"
    r"(?:(?:always|never|also)\s+)?",
    re.IGNORECASE,
)
#: "add / include X to / in Y" (also "stop adding X to Y"): Y is what the rule is about.
_INTO = re.compile(
    r"^(?:(?:stop|quit|don't|do not)\s+)?(?:add|include|append|attach|insert|mention|adding|"
    r"including|appending|attaching|inserting|mentioning)\s+.+?\s+"
    r"(?:to|in|into|on|at the (?:end|start|top|bottom) of)\s+(?P<scope>[^.;:!?,]{3,80})",
    re.IGNORECASE,
)
#: "give / show X with every Y": Y is what the rule is about.
_WITH_EVERY = re.compile(
    r"^(?:give|show|provide|list|add|include|put|offer)\s+.+?\s+(?:with|in|for)\s+"
    r"(?:every|each|all|any)\s+(?P<scope>[^.;:!?,]{3,80})",
    re.IGNORECASE,
)
#: The subject of a rule: "<scope> should / must / need to ..." or "<scope>: ...".
_SUBJECT = re.compile(
    r"^(?P<scope>[^,;:]{3,80}?)\s+(?:(?:should|must|ought)(?:n't| not)?|shall|cannot|can't|"
    r"needs?|requires?|deserves?|gets?|stays?|comes?|came|have to|has to|are to|is to|"
    r"keeps?(?=\s+\w+ing\b)|"
    r"(?:can|may|could)(?:n't| not)? be|"
    r"always|never|(?:is|are|r|was|were|has been|have been|seems?|feels?)(?:n't| not)?\s+"
    r"(?:(?:way|much|far|a bit|kinda|kind of|always|"
    r"getting|often|usually)\s+)*(?:too|so|overly)\b)\b",
    re.IGNORECASE,
)
#: "Can chemistry homework explanations be slower?": the subject of an inverted question.
_ASKED_SUBJECT = re.compile(
    r"^(?:can|could|would|should|will|must)\s+(?!(?:you|i|we|it|this|that|there)\b)"
    r"(?P<scope>[^,;:]{3,80}?)\s+(?:be|have|get|stay|include|mention|use|start|begin|end|open|"
    r"close|avoid|skip|follow|list|show|come|sound|read|look|feel|go)\b",
    re.IGNORECASE,
)
_LABEL = re.compile(
    r"^(?P<scope>[^,;:>=→—]{3,60}?)(?::\s+|\s*(?:->|→)\s+|\s*=\s+|\s+[-–—]+\s+|—\s*)\S",
    re.IGNORECASE,
)
#: The answer just given, which a complaint is about ("the last one was way too long").
_PREVIOUS = re.compile(
    r"^(?:(?:your|the|that|this)\s+|(?=(?:last|previous|latest)\b))"
    r"(?:(?:last|previous|latest|first|second|other|whole|new)\s+)?"
    r"(?:one|reply|answer|response|message|draft|version|output|attempt|summary|list|text)s?$",
    re.IGNORECASE,
)
#: Labels that announce a message, not a scope ("Quick request: in summaries of ...").
_ANNOUNCE = re.compile(
    r"^(?:(?:one|a|quick|small|little|another|last|just a)\s+)*(?:thing|request|note|tip|ask|"
    r"favou?r|reminder|heads[- ]up|fyi|ps|p\.s|update|change|point|correction|suggestion|q|"
    r"question)s?(?:\s+(?:before|for)\s+(?:we|you|i|us|me)\b.*)?$",
    re.IGNORECASE,
)
#: Verbs whose object is the kind of answer the rule is about (not a thing to put in it).
_ON_ANSWER = (
    r"keep|make|comment|explain|start|begin|end|finish|close|open|sign(?: off)?|format|write|"
    r"title|number|proofread|shorten|lengthen|structure|phrase|word|translate|summari[sz]e|"
    r"put|wrap|present|show|render|answer|reply to|respond to|condense|simplify|tighten|trim|"
    r"rewrite|polish|revise|edit|draft|compose|do|turn|convert|plan"
)
_OBJECT = re.compile(
    rf"^(?:{_ON_ANSWER})\s+(?P<scope>.{{3,80}})$",
    re.IGNORECASE,
)
#: Where an object phrase stops: a measure, a manner, a comparison or a new clause.
_OBJECT_END = re.compile(
    # "anything going in the PTA newsletter": the newsletter is where it goes (read by ABOUT)
    r"(?<!\bgoing)(?<!\bsent)\s+(?:under|over|below|above|within|at most|at least|with|without|"
    r"by|as|like|than|using|"
    r"so|and then|because|instead|rather|in|into|inside|to me|for me|from now on|going forward|"
    r"should|shouldn't|must|mustn't|shall|ought|need to|needs to|have to|has to|always|never|"
    # "... for dogs you sometimes give human doses": a new clause ("the SQL queries you
    # write" is still one phrase)
    r"you (?:sometimes|always|often|usually|never|keep|tend|seem)|"
    r"more|less|a bit|slightly|too|extra|[a-z]+-(?:free|only|friendly|proof|based)|"
    r"[a-z]+er than|(?:lower|higher|lighter|heavier|smaller|bigger|larger|fewer|cheaper|"
    r"faster|slower|clearer|tighter|easier|harder|softer|stronger)\s+(?:in|on)|"
    r"at (?:[a-z0-9+-]+ ){0,4}level|at (?:a|an)\s|"
    r"(?:short|long|brief|concise|simple|formal|casual|polite|plain|warm|friendly|professional|"
    r"upbeat|neutral|serious|playful|positive|gentle|funny|strict|punchy|respectful|cheerful|"
    r"factual|objective|blunt|compatible|consistent|readable)[a-z]*|"
    # words that are also nouns ("law firm", "direct reports") only before "but" / "and"
    r"(?:firm|light|clear|direct|calm|kind|honest|tight|lean|crisp)\s+(?:but|and|yet)|"
    r"to (?:a|an|one|two|three|four|five|six|seven|eight|nine|ten|\d+|under|at most|"
    r"a single|a few)\b)\b(?!-).*$",
    re.IGNORECASE,
)

#: Words that start a phrase but name no scope ("I prefer ...", "it", "that").
_NOT_SCOPE = re.compile(
    r"^(?:i|it|this|that|these|those|there|you|he|she|they|we|otherwise|please|be|use|do)\b", re.I
)
#: A trailing phrase about the person, not the request ("... for me", "... to us").
_PRONOUN = re.compile(r"^(?:me|us|him|her|them|it|this|that)\b(?!')", re.IGNORECASE)
#: "I'd like my lab notes kept brief", "I want the replies to my landlord formal": the noun
#: phrase after a stated wish, up to where its manner starts.
_WISH = re.compile(
    r"^(?:i|i'd|i would)\s+(?:really\s+)?(?:like|want|prefer|love|need)\s+"
    r"(?P<scope>(?:my|our|the|all|any|every)\s+.{3,200})$",
    re.IGNORECASE,
)
#: "I want commit messages to follow ...", "I'd prefer travel itineraries that ...": a bare
#: noun phrase, then "to" and a verb, a relative clause or a participle.
_WISH_BARE = re.compile(
    r"^(?:i|i'd|i would)\s+(?:really\s+)?(?:like|want|need|prefer)\s+"
    r"(?!(?:to|you|it|that|this|a|an|my|our|the|all|any|every|them|him|her|me|us)\b)"
    r"(?P<scope>[a-z][a-z0-9&' -]{2,60}?)\s+(?:to\s+[a-z]+|that|which|[a-z]+ed|kept|written|"
    r"done|made|given|sent|shown)\b",
    re.IGNORECASE,
)
_WISH_END = re.compile(
    r"\s+(?:[a-z]+ed|kept|written|done|made|given|sent|shown|to|be|spelt|read|told|that|which|"
    r"who|with)\b.*$",
    re.IGNORECASE,
)
#: "I prefer that <clause>", "It would help if <clause>": the clause's subject is the scope.
_WISH_CLAUSE = re.compile(
    r"^(?:i|i'd|i would|it would|it'd)\s+(?:really\s+)?(?:like|want|prefer|love|help|be "
    r"(?:great|nice|best|better))\s*(?:it\s+)?(?:that|if|when)\s+(?P<clause>.+)$",
    re.IGNORECASE,
)


#: A condition on the request's state, not a kind of request ("if something's ambiguous",
#: "when I'm wrong"); "when it's about X" is read by ``scope_text.ABOUT`` first.
_STATE = re.compile(
    r"^(?:(?:something|anything|it|that|this|there|i|you)(?:'s|'m|'re|\s+(?:is|am|are|seems?|"
    r"looks?|gets?))\s+(?!about|for|regarding|related|on\b|to\b)(?:not\s+)?(?:\w+ly\s+)?\w+"
    r"|(?:it|that|this)(?:'s| is) not\b.*|(?:you|i|we) (?:don't|do not|didn't|can't) \w+"
    r"|you (?:know|think|believe|can|could|remember|have to|need to|must)\b.*"
    r"|needed|necessary|possible|relevant|applicable|any|so|not|unsure|in doubt|unclear)$",
    re.IGNORECASE,
)


#: Nouns that follow "in" / "on" / "for" in idioms, not in a scope ("in hand", "in advance").
_IDIOMS = _NOT_LEAD | frozenset(
    "hand mind advance detail time place order front full public private person now".split()
)


def _trailing(sentence: str) -> list[str]:
    """The earliest trailing marker phrase that is not a manner, cut where an object ends."""
    for match in re.finditer(rf"\b{_MARK}\s+", sentence, re.IGNORECASE):
        if match.start() == 0:
            continue
        clause = re.split(r"[,;]|\s(?:so|and|but|because)\s", sentence[: match.start()])[-1]
        if ABOUT_ME.match(clause.strip()):  # "I'm in Ohio", "i read on a phone": context
            continue
        phrase = re.split(r"[.;:!?,]", sentence[match.end() :], maxsplit=1)[0]
        if re.search(r"\b(?:when(?:ever)?|if)\s", phrase, re.IGNORECASE):
            continue  # "Write in Spanish whenever you help with ...": the condition is the scope
        # "... when it comes to anything about my weight loss"
        # "whenever you help with messages to Rosa": the asking comes off before the object ends
        phrase = re.split(_TOLD_VERB, ASK.sub("", phrase.strip()), maxsplit=1)[0]
        phrase = re.sub(r"^it comes to\s+", "", _OBJECT_END.sub("", phrase), flags=re.I)
        if (
            len(phrase) >= 3
            and not phrase.lower().startswith("to ")  # "... when to call the doctor"
            # "... when you add a summary": what the assistant does, not what is asked
            # ("when you write emails to my boss" reads "emails to my boss")
            and not re.match(r"you\b", clean_phrase(phrase), re.IGNORECASE)
            and not is_manner(phrase)
            and not _NOT_SCOPE.fullmatch(phrase.strip())
            and not _PRONOUN.match(phrase.strip())
            and not _STATE.match(phrase.strip())
            and not _PREVIOUS.match(phrase.strip())  # "... in your last reply"
            and not set(facets(phrase)) <= _IDIOMS  # "... with a drill in hand"
            and not set(facets(phrase)) <= LANGUAGES  # "... in German": how, not where
        ):
            return [phrase]
    return []


#: A sentence that opens with one of these is an instruction, so what precedes a later "gets" or
#: "needs" is not its subject ("Keep answers short so the reader gets the point").
_IMPERATIVE = re.compile(
    rf"^(?:{_ON_ANSWER}|avoid|stop|quit|drop|cut|ditch|say|skip|add|include|mention|give|tell|"
    r"cite|spell|use|do|"
    r"don't|be|try|list|group|lead|stay|match|assume|bullet|define|round|pin|put|remind|"
    r"remember|warn|flag|check|double-check|let|note)\b",
    re.IGNORECASE,
)


def _subject(sentence: str, labels: bool = True) -> str | None:
    """The subject of a rule ("Cover letters should ...") or a label ("Sermons: ...")."""
    match = (
        _SUBJECT.match(sentence)
        or _ASKED_SUBJECT.match(sentence)
        or (_LABEL.match(sentence) if labels else None)
    )
    scope = match.group("scope").strip() if match else ""
    if (
        match
        and not _NOT_SCOPE.match(scope)
        and not _ANNOUNCE.match(scope)
        and not _PREVIOUS.match(scope)  # "the last one was way too long": the answer given
    ):
        if not (_IMPERATIVE.match(sentence) and match.re is _SUBJECT):
            return match.group("scope")
    return None


def _wish(sentence: str) -> str | None:
    """What a stated wish is about: "I'd like my lab notes kept brief" -> "my lab notes";
    "I prefer that captions for my photos stay short" -> "captions for my photos"."""
    clause = _WISH_CLAUSE.match(sentence)
    if clause:
        return _subject(clause.group("clause"))
    bare = _WISH_BARE.match(sentence)
    if bare and not is_manner(bare.group("scope")):
        return bare.group("scope")
    wish = _WISH.match(re.split(r"[,;]", sentence, maxsplit=1)[0])
    if wish:
        phrase = _OBJECT_END.sub("", _WISH_END.sub("", wish.group("scope")))
        if not is_manner(phrase):
            return phrase
    return None


#: What follows "keep / end / ..." but is no object: a preposition ("End *with* a question")
#: or a manner noun phrase ("Keep *a firm but polite tone* when ...").
_NOT_OBJECT = re.compile(
    # a pronoun or an adverb is no object ("keep it blameless", "answer first")
    r"^(?:(?:with|by|in|on|at|to|up|off|it|them|this|that|first|last|then|now|again|briefly|"
    r"not|n't|so|your best|the same|more|less|better|well|something|anything|everything|"
    r"directly|straight|quickly|carefully|properly)\b|(?:(?:a|an|the|your)\s+)?"
    r"(?:(?!(?:in|to|for|of|with|about|on|at|when|if)\b)[a-z-]+,?\s+){0,5}?"
    r"(?:tone|voice|register|attitude|english|language|wording|vocabulary|phrasing)\b)",
    re.IGNORECASE,
)


_MANNER_OF = re.compile(
    r"^(?:the|your)\s+(?:tone|voice|style|register|wording|length|format|formatting)\s+of\s+"
    r"(?P<scope>.{3,80})$",
    re.IGNORECASE,
)


_CONDITION = re.compile(r"\b(?:when(?:ever)?|if)\s+", re.IGNORECASE)
#: "the <part of an answer> ... in <my things | things>": where the part goes is the scope.
_PART_IN = re.compile(
    r"^the\s+(?:(?!(?:for|of|to|from|about|with|on|by)\b)\S+\s+){1,3}?(?:in|within)\s+"
    r"(?P<scope>(?:(?:my|our|all|any|every)\s+)?"
    r"(?!(?:a|an|the|this|that|it|its|bold|italics?|caps|order|full|front|place|general|short|"
    r"brief|detail|advance|case|person|line)\b)[a-z][^.;:!?,]{2,80})$",
    re.IGNORECASE,
)


def _sentence_phrases(sentence: str) -> list[str]:
    found: list[str] = []
    sentence = strip_context(sentence)
    lead = _lead(sentence)
    if lead and _STATE.match(lead[0]):  # "If you're not sure, say so once"
        sentence = lead[1]
        lead = None
    if lead:
        found.append(lead[0])
        sentence = lead[1]
    sentence = _POLITE.sub("", sentence.rstrip(".!?"))
    # after a leading scope the rest is the instruction: a label in it names no other scope
    # ("For knitting patterns, write the rows out in full - I lose my place")
    label = None if lead else _LABEL.match(sentence)
    if label and _ANNOUNCE.match(label.group("scope").strip()):
        return [*found, *_sentence_phrases(sentence[label.end() - 1 :])]
    # "No filler intros like 'Great question!' — ever": a negated label is all instruction
    negated = bool(label and re.match(r"(?:no|never|less|fewer|more)\s", label.group(1), re.I))
    label = None if negated else label
    if label and (
        _IMPERATIVE.match(label.group("scope"))
        or _POLITE.sub("", label.group("scope")) != label.group("scope")
    ):
        # "Let's keep answers on climate science evidence-based: cite studies": the label is
        # itself an instruction; read it as one
        return [*found, *_sentence_phrases(label.group("scope"))]
    subject = _subject(sentence, labels=not lead and not negated) or (
        None if lead else _wish(sentence)
    )
    if subject:  # the rule's subject is its scope; the rest says what to do
        return [*found, subject]
    obj = None if lead else (_OBJECT.match(sentence) or _OBJECT.match(sentence.split(",")[0]))
    if obj and _CONDITION.search(obj.group("scope")):
        # "Translate medical jargon whenever it's about my mom's chemotherapy": the condition
        # names the scope, the object what to do there
        when = _trailing(sentence)
        if when:
            return [*found, *when]
    part = _PART_IN.match(obj.group("scope")) if obj else None
    if part:  # "Number the steps in troubleshooting guides": the guides
        phrase = _OBJECT_END.sub("", part.group("scope"))
        if not is_manner(phrase) and facets(phrase):
            return [*found, phrase]
    of = _MANNER_OF.match(obj.group("scope")) if obj else None
    if of:  # "Keep the tone of my emails to clients warm": the emails to clients
        phrase = _OBJECT_END.sub("", of.group("scope"))
        if not is_manner(phrase):
            return [*found, phrase]
    if obj and not _NOT_OBJECT.match(obj.group("scope")):
        phrase = _OBJECT_END.sub("", obj.group("scope"))
        phrase = re.sub(
            r"\s+(?:metric|imperial|lowercase|uppercase|bulleted|numbered)$", "", phrase
        )
        words = facets(phrase)
        # "put the direct answer first": a part of every answer, not a kind of request
        every = bool(re.match(r"(?:the|your)\s", phrase, re.IGNORECASE)) and words[-1:] in (
            [[g] for g in GENERIC]
        )
        if not is_manner(phrase) and not set(words) <= GENERIC and not every:
            # "Put YAML snippets in code fences": what follows the object is its manner
            return [*found, phrase]
    named = None if lead else (_NAMED.match(sentence) or _named_then_manner(sentence))
    scope = named.group("scope") if named else ""
    if named and not _IMPERATIVE.match(scope) and not is_manner(scope):
        return [*found, scope]  # "Apology texts to my sister, shorter"
    if not lead:  # after "For questions about my car, ..." the rest is the instruction
        found.extend(_trailing(sentence))
    into = _INTO.match(sentence) or _WITH_EVERY.match(sentence)
    if into and not lead and not is_manner(into.group("scope")):
        found.append(_OBJECT_END.sub("", into.group("scope")))
    return found


#: A kind of request named before a comma, then the instruction ("Linkedin posts, keep them
#: humble", "Apology texts to my sister, shorter"): a few words, no verb of the user's.
_NAMED_HEAD = (
    r"^(?P<scope>(?!(?:i|i'm|you|we|it|this|that|these|there|please|pls|also|and|but|so|ok|"
    r"okay|yes|no|thanks|thank|sorry|be|use|do|don't|dont|just|never|always|only|make|keep|"
    r"if|when|for|in|on|from|at|by|with|to|as|after|before|until|now|going|starting|"
    # a style named first is the instruction itself ("Short answers, no fluff")
    r"short|shorter|long|plain|simple|brief|clear|good|same|fewer|more|less|concise|formal|"
    r"casual|direct|honest|polite|friendly|proper|real|full|complete)\b)"
    r"[\w'&-]+(?:\s+(?!(?:is|are|was|were|i|you|we)\b)[\w'&-]+){1,6}),\s+"
)
_NAMED = re.compile(
    _NAMED_HEAD + r"(?=please\s+[a-z]|(?:[a-z]+er|more|less|no|nothing|never|always|only|just|"
    r"keep|make|use|skip|add|avoid|stop|include|don't|dont)\b)",
    re.IGNORECASE,
)
#: The same head, then the next clause, for :func:`_named_then_manner`.
_NAMED_ANY = re.compile(_NAMED_HEAD + r"(?P<after>[^,.;:!?]+)", re.IGNORECASE)


def _named_then_manner(sentence: str) -> re.Match[str] | None:
    """A kind of request named before a comma, then a manner ("git commit messages, imperative
    mood") or a restriction ("deck building, standard-legal cards only")."""
    named = _NAMED_ANY.match(sentence)
    if not named:
        return None
    after = named.group("after").strip()
    if _IMPERATIVE.match(after):  # an instruction: :data:`_NAMED` reads those it may start
        return None
    if is_manner(after) or re.search(r"\bonly$", after, re.I):
        return named
    return None


#: Words that open a short sentence that names no topic ("Too long.", "Great work.").
_NOT_TOPIC = frozenset(
    """too way great nice good love thanks thank sorry hello hi hey morning evening not no
    yes sure ok okay again seriously honestly always never same much many little less more
    plain short shorter long longer simple brief clear concise formal casual just perfect
    awesome cool wow lol bullet every each all any ugh hmm meh oops excuse pardon""".split()
)


def _stated_topic(sentence: str) -> bool:
    """A short noun phrase alone before the instruction: "My wedding toast. Under two
    minutes spoken, please." A manner ("Bullet points.") or a style ("Shorter answers.") is
    the instruction itself."""
    words = re.findall(r"[\w'&-]+", sentence.lower())
    return (
        bool(re.fullmatch(r"[\w'&\s-]+\.", sentence))
        and 1 <= len(words) <= 4
        and words[0] not in _NOT_TOPIC
        and not words[0].endswith("ly")
        and not is_manner(sentence)
        and not _IMPERATIVE.match(sentence)
        and not _NOT_SCOPE.match(sentence)
        and bool(set(facets(sentence)) - VAGUE)
    )


#: A topic asked as a question before an instruction ("Pathfinder encounter ideas?"): a few
#: words, no question word, auxiliary or pronoun.
_TOPIC = re.compile(
    r"^(?!(?:what|how|why|where|when|who|which|can|could|would|will|should|is|are|do|does|did|"
    r"was|were|have|has|really|seriously|why|ok|okay|right|huh|again)\b)"
    r"(?:(?!(?:i|you|it|me|we|this|that|they|there|anything|something)\b)[\w'&-]+\s+){0,5}"
    r"(?!(?:i|you|it|me|we|this|that|they|there|anything|something)\b)[\w'&-]+\?$",
    re.IGNORECASE,
)


def scope_phrases(feedback: str) -> list[str]:
    """The phrases in which ``feedback`` names where it applies ("Don't use emojis when
    drafting emails to my boss" -> ["drafting emails to my boss"]); empty when it names no
    scope ("Be more concise."). A phrase inside a longer one found in the same feedback is
    dropped ("my brother" beside "toasts for my brother")."""
    found: list[str] = []
    sentences = split_sentences(clean_feedback(feedback))
    complaints: list[str] = []
    for i, sentence in enumerate(sentences):
        if i + 1 < len(sentences) and (_TOPIC.match(sentence) or _stated_topic(sentence)):
            found.append(sentence.rstrip("?."))  # "Hiking packing lists? keep it short"
        elif COMPLAINT.match(sentence):
            complaints.extend(_sentence_phrases(sentence))
        elif found and is_backstory(sentence):
            continue  # "... I've been doing this for ten years.", "Our bassist keeps asking."
        else:
            found.extend(_sentence_phrases(sentence))
    found = found or complaints
    # a phrase of vague words only names nothing ("I'm not an expert in anything")
    cleaned = [c for c in (clean_phrase(s) for s in found) if set(facets(c)) - VAGUE]
    cleaned = list(dict.fromkeys(cleaned))
    return [c for c in cleaned if not any(c != o and c.lower() in o.lower() for o in cleaned)]


def scope_facets(feedback: str, phrases: Sequence[str] = ()) -> list[str]:
    """The scope words of ``feedback``: :func:`facets` of its own :func:`scope_phrases`;
    where it names no scope, of ``phrases`` (the dataset's, which an LLM may have written);
    else of the whole feedback (its instruction's words then count too)."""
    found = scope_phrases(feedback) or list(phrases) or [feedback]
    return list(dict.fromkeys(w for p in found for w in facets(p)))
