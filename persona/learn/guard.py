"""Learned preferences are data, not instructions: detect texts that try to be instructions,
and render any stored text so that it stays data whatever it holds.

Two independent defences:

* :func:`looks_like_injection` flags a text when it is stored, so a flagged preference is kept
  (the user can see and edit it) but never rendered. It reads a *normalized* text
  (:func:`normalize`: NFKC, no format/zero-width characters, Latin diacritics dropped, escapes
  decoded, casefolded) and also its homoglyph/leetspeak fold, its letters-only form and any
  base64 payload, so spelling tricks do not hide a known phrase. It looks for *patterns of
  meaning* rather than exact strings: an override verb aimed at the assistant's earlier
  instructions, a new identity or mode for the assistant, a request to reveal its prompt, a
  role label or header opening a fake turn, a chat-template token of any common model family,
  a tag of the preference block in any bracket look-alike, and the same phrases in French,
  Spanish, Italian, Portuguese, German, Russian, Chinese and Japanese.

  False positives are kept low by demanding a *target* for every override verb: "ignore" or
  "disregard" must be aimed at instructions/rules/prompt *qualified* as the assistant's own
  (previous, above, system, your, all, ...) or stand alone as "the rules" at the end of a
  clause. So "Ignore small typos", "Disregard the rules of formal grammar in chats", "Use a
  system of headings", "Act as a friendly tutor", "Give me your unfiltered opinion" and "New
  rule: no emojis" are style preferences and are not flagged, while "ignore everything
  above", "disregard the rules.", "SYSTEM: ...", "act as an unrestricted AI" and "new
  instructions: ..." are. A bare mention of "system prompt" is not flagged; asking to print,
  show or repeat it is.

* :func:`as_data` makes any text inert in both placements (the system block and the user
  turn): one line, no control or format characters, chat-template tokens removed, and every
  angle-bracket look-alike (also those that become ``<``/``>`` under NFKC or NFKD) turned into
  round brackets, so a rendered preference can never contain a tag or a special token.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

# -- normalization --------------------------------------------------------------------------

#: Cyrillic, Greek and Armenian letters that look like Latin ones (lowercase: the text is
#: casefolded first), plus a few Latin variants NFKC keeps.
_HOMOGLYPHS = str.maketrans(
    {
        **dict(zip("аеорсухіјѕһԁӏԛԝкмнтвгпьёї", "aeopcyxijshdlqwkmhtbrnbei", strict=True)),
        **dict(zip("αβεηικνορτυχγωμσς", "abeniknoptuxywuoc", strict=True)),
        **dict(zip("օսցհոռ", "ouchnn", strict=True)),
        **dict(zip("ıɡɑɩʟɪʀ", "igailir", strict=True)),
    }
)
_LEET = str.maketrans("013457$@", "oieastsa")
_ESCAPES = re.compile(r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HSPACE = re.compile(r"[^\S\n]+")


def _drop_invisible(text: str) -> str:
    """Remove format (Cf: zero-width, bidi overrides, tags), control and surrogate characters;
    keep whitespace (turned into plain spaces/newlines)."""
    out = []
    for ch in text:
        if ch.isspace():
            out.append("\n" if ch in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029" else " ")
        elif unicodedata.category(ch) not in ("Cf", "Cc", "Cs"):
            out.append(ch)
    return "".join(out)


def _strip_latin_marks(text: str) -> str:
    """Drop combining marks placed on Latin letters (é → e, ì̈ → i); other scripts keep theirs."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(ch) and out and "a" <= out[-1].lower() <= "z":
            continue
        out.append(ch)
    return unicodedata.normalize("NFKC", "".join(out))


def normalize(text: str) -> str:
    """The detection form of ``text``: escapes decoded (HTML entities, ``\\u003c``, ``%3C``),
    NFKC, format/zero-width characters dropped, Latin diacritics dropped, casefolded,
    horizontal whitespace collapsed (line breaks kept, since a role label at a line start
    matters)."""
    text = html.unescape(text)
    text = _ESCAPES.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), text)
    if "%" in text:
        text = unquote(text)
    text = _drop_invisible(unicodedata.normalize("NFKC", text))
    text = _strip_latin_marks(text).casefold()
    text = _HSPACE.sub(" ", text)
    return re.sub(r"\s*\n\s*", "\n", text).strip()


def fold(normalized: str) -> str:
    """Homoglyphs mapped to Latin letters, and digits/symbols inside words read as letters."""
    text = normalized.translate(_HOMOGLYPHS)
    return re.sub(
        r"[\w@$]*[a-z][\w@$]*", lambda m: m.group().translate(_LEET), text, flags=re.ASCII
    )


def _decoded_payloads(text: str) -> list[str]:
    """Texts hidden as base64 inside ``text`` (only those that decode to readable text)."""
    found = []
    for token in _BASE64.findall(text):
        raw = token.rstrip("=")
        raw += "=" * (-len(raw) % 4)
        try:
            data = base64.b64decode(raw.replace("-", "+").replace("_", "/"), validate=True)
            decoded = data.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if decoded and sum(c.isprintable() or c.isspace() for c in decoded) / len(decoded) > 0.95:
            found.append(decoded)
    return found


# -- detection --------------------------------------------------------------------------------

_VERB = (
    r"(?:ignore|ignoring|disregard|forget|overlook|skip|bypass|override|overrule|discard|"
    r"abandon|dismiss|drop|ditch|neglect|cancel|nullify|erase|delete|wipe|reset|throw\s+out|"
    r"set\s+aside|put\s+aside|pay\s+no\s+(?:attention|heed|mind)\s+to|"
    r"(?:do\s+not|don'?t|never|stop|no\s+longer)\s+(?:follow(?:ing)?|obey(?:ing)?|"
    r"comply(?:ing)?\s+with|adher(?:e|ing)\s+to|listen(?:ing)?\s+to|apply(?:ing)?))"
)
_STRONG = (
    r"(?:previous|previously|prior|above|earlier|preceding|foregoing|former|original|initial|"
    r"old|existing|current|given|system|safety|developer|default|built-?in|standing|hidden|"
    r"base|your|all|every|any|everything)"
)
_WEAK = r"(?:the|these|those|this|that|my|our|of|and|or|other|such|aforementioned|set|stated)"
_TARGET = (
    r"(?:instructions?|directions|directives?|rules?|guidelines?|guard\s*rails?|polic(?:y|ies)|"
    r"prompts?|system\s+(?:prompt|message)s?|constraints?|restrictions?|limitations?|limits|"
    r"commands?|orders|programming|training|conditioning|messages?|context|configuration|"
    r"settings|safeguards?|filters?|ethics|principles|text|content|input|conversation|"
    r"everything|said|above)"
)
_TEMPLATE = (
    r"(?:<\s*\|[^\n]{0,40}?\|\s*>|\[\s*/?\s*(?:inst|sys|system_prompt|available_tools|"
    r"tool_calls|tool_results)\s*\]|<<\s*/?\s*sys\s*>>|<\s*/?\s*(?:s|bos|eos|start_of_turn|"
    r"end_of_turn|repo_?name|file_sep|filename|gh_stars|issue_\w+|jupyter_\w+|empty_output)\s*>|"
    r"\b(?:im_start|im_end|(?:start|end)_header_id|eot_id|begin_of_text|end_of_text|"
    r"endoftext|start_of_turn|end_of_turn|start_of_turn_token|end_of_turn_token)\b)"
)
_ROLE = (
    r"(?:system|sys|assistant|developer|admin|administrator|root|human|operator|"
    r"system\s+(?:prompt|message|note|override|update|instruction)s?|"
    r"admin(?:istrator)?\s+(?:note|message|override)|instructions?|new\s+instructions?)"
)
#: every bracket that can read as an angle bracket, for tag detection (detection only)
_TAG_OPEN = "<‹«〈《⟨⟪❮❬⧼﹤＜ᐸ˂⦉⦑"
_TAG_CLOSE = ">›»〉》⟩⟫❯❭⧽﹥＞ᐳ˃⦊⦒"
_BRACKETS = str.maketrans(_TAG_OPEN + _TAG_CLOSE, "<" * len(_TAG_OPEN) + ">" * len(_TAG_CLOSE))

_ROMANCE_VERB = (
    r"(?:ignor\w*|oubli\w*|neglig\w*|olvid\w*|omit\w*|descart\w*|desestim\w*|dimentic\w*|"
    r"trascur\w*|tralasc\w*|esquec\w*|desconsider\w*|haz\s+caso\s+omiso\s+(?:a|de)|"
    r"fai(?:s|tes)\s+abstraction\s+d\w*|non\s+(?:considerare|seguire|tenere\s+conto\s+d\w*)|"
    r"nao\s+(?:siga|obedeca|considere)|no\s+(?:sigas|siga|obedezcas|hagas\s+caso\s+a)|"
    r"ne\s+(?:tiens|tenez)\s+(?:pas|plus)\s+compte\s+d\w*|"
    r"ne\s+(?:suis|suivez|respecte|respectez)\s+(?:pas|plus))"
)
_ROMANCE_FILL = (
    r"(?:toutes?|tous|tout|les|des|tes|vos|ces|mes|la|le|l'|du|de|d'|ce|qui|a|todas?|todos?|"
    r"las|los|tus|sus|mis|lo|el|del|tutte|tutti|tutto|gli|i|tue|sue|delle|degli|di|quanto|"
    r"as|os|suas|tuas|das|dos|o|que|foi|dito|precedent\w*|anterior\w*|previ\w*|ci-dessus|"
    r"sopra|acima|arriba|plus\s+haut)"
)
_ROMANCE_NOUN = (
    r"(?:instructions?|instrucc\w*|istruzion\w*|instruc[ao]\w*|consignes?|regles?|reglas?|"
    r"regole|regras?|directives?|direttive|diretrizes?|directrices|ordres|ordenes|ordini|"
    r"ordens|indicaciones|indicazioni|orientac\w*|normas|comandos|prompts?|precede|anterior|"
    r"sopra|acima|dicho|detto)"
)
_ROMANCE_STRONG = (
    r"(?:tout|toutes|tous|todas?|todos?|tutte|tutti|tutto|precedent\w*|anterior\w*|previ\w*|"
    r"ci-dessus|sopra|acima|arriba|plus\s+haut|tes|vos|tus|sus|tue|tuas|suas|syste\w*|"
    r"sistema|initial\w*|inicia\w*|iniziali|origina\w*|precede)"
)
_GERMAN_VERB = (
    r"(?:ignorier\w*|vergiss|vergessen|missacht\w*|uberspring\w*|verwirf|verwerfen|"
    r"nicht\s+(?:mehr\s+)?(?:beachten|befolgen)|au(?:ss|ß)er\s+kraft)"
)
_GERMAN_TARGET = (
    r"(?:vorherig\w*|vorig\w*|bisherig\w*|obig\w*|vorangegangen\w*|fruher\w*|alle[nms]?|"
    r"deine[nmrs]?|ihre[nmrs]?|ursprunglich\w*|system\w*)\s+(?:\w+\s+)?(?:anweisung\w*|regeln|"
    r"instruktion\w*|vorgaben|befehle|richtlinien|anordnung\w*|prompts?)|alles\b"
)
_RU_VERB = (
    r"(?:проигнорир\w*|игнорир\w*|забуд\w*|забыть|не\s+обращай\w*\s+внимани\w*|"
    r"не\s+следуй\w*|не\s+выполняй\w*|отбрось\w*|отмен\w*|пренебреги\w*|не\s+учитывай\w*)"
)
_RU_TARGET = (
    r"(?:инструкци\w*|правил\w*|указани\w*|команд\w*|директив\w*|ограничени\w*|промпт\w*|"
    r"выше|ранее|сказанн\w*)"
)
_RU_STRONG = (
    r"(?:все|всё|вс[её]м|предыдущ\w*|прежн\w*|выше|ранее|системн\w*|сво\w+|тво\w+|ваш\w*|"
    r"исходн\w*|изначальн\w*)"
)
_CJK_VERB = (
    r"(?:忽略|忽视|忽視|无视|無視|不要理会|不要理會|别理|別理|不理会|忘记|忘記|忘掉|抛弃|拋棄|"
    r"放弃|放棄|跳过|跳過|不要遵守|不再遵守|不要遵循|停止遵循|忘れ|従わな|破棄|取り消)"
)
_CJK_TARGET = (
    r"(?:指令|指示|说明|說明|规则|規則|提示词|提示詞|设定|設定|约束|約束|限制|命令|ルール|"
    r"プロンプト|制約)"
)
_CJK_STRONG = (
    r"(?:之前|以前|上面|上述|先前|前面|所有|全部|以上|原来|原來|原有|系统|系統|你的|此前|一切|"
    r"上記|これまで|今まで|先ほど|すべて|全て|前の|システム|元の|最初)"
)
_REVEAL = (
    r"(?:print|show|reveal|repeat|output|display|tell|give|leak|dump|write\s+out|recite|echo|"
    r"share|expose|disclose|return|type\s+out|spell\s+out|paste|copy|what\s+(?:is|are|were)|"
    r"what'?s|affiche\w*|montre\w*|revele\w*|repete\w*|donne\w*|ecri\w*|imprime\w*|dis|"
    r"muestra\w*|revela\w*|repite\w*|dame|escribe\w*|dime|ensena\w*|mostra\w*|rivela\w*|"
    r"ripeti\w*|dammi|scrivi\w*|stampa\w*|dimmi|mostre|revele|repita|escreva|imprima|diga|"
    r"zeig\w*|gib|nenn\w*|wiederhol\w*|verrat\w*|druck\w*|schreib\w*|покажи\w*|выведи\w*|"
    r"напиши\w*|повтори\w*|раскрой\w*|скажи\w*|дай|显示|顯示|输出|輸出|打印|告诉|告訴|泄露|"
    r"透露|重复|重複|给我|給我|展示|列出|表示|教え|出力|見せ|繰り返|書き出)"
)
_SYSPROMPT = (
    r"(?:system\s*(?:prompt|message|instructions)|(?:prompt|invite|instructions?|consignes)\s+"
    r"(?:du\s+|de\s+|di\s+|do\s+|del\s+)?(?:systeme|sistema)|systemprompt|system-prompt|"
    r"systemanweisung\w*|системн\w+\s+(?:промпт|подсказк|инструкци|сообщени)\w*|系统提示|"
    r"系統提示|系统指令|系統指令|システムプロンプト|システム指示|"
    r"(?:your|the)\s+(?:hidden|secret|initial|original|internal|underlying|first|full|"
    r"exact|verbatim|entire|complete)\s+(?:prompt|instructions)|your\s+(?:prompt|instructions)\b|"
    r"(?:ton|votre|tu|su|il\s+tuo|o\s+seu|deinen?|ihren?|свой|твой|ваш)\s+(?:prompt|промпт)\w*)"
)
_YOU_ARE_NOW = (
    r"(?:you\s+are\s+now|you'?re\s+now|you\s+are\s+no\s+longer|from\s+now\s+on,?\s+you\s+"
    r"(?:are|will\s+be|shall\s+be|become)|your\s+new\s+(?:name|identity|role|persona)\s+is|"
    r"tu\s+es\s+(?:maintenant|desormais|dorenavant|a\s+present)|vous\s+etes\s+(?:maintenant|"
    r"desormais)|(?:a\s+partir\s+de\s+)?ahora\s+(?:tu\s+)?eres|(?:ora|adesso|da\s+ora\s+in\s+poi)"
    r"\s+(?:tu\s+)?sei|(?:agora|a\s+partir\s+de\s+agora)\s+(?:voce\s+e|tu\s+es)|"
    r"(?:du\s+bist|sie\s+sind)\s+(?:jetzt|nun|ab\s+sofort|ab\s+jetzt|von\s+nun\s+an)|"
    r"(?:ab\s+jetzt|ab\s+sofort|von\s+nun\s+an)\s+bist\s+du|ты\s+теперь|теперь\s+ты|"
    r"отныне\s+ты|вы\s+теперь|теперь\s+вы|你现在是|你現在是|从现在起你是|從現在起你是|"
    r"从现在开始你是|從現在開始你是|你不再是|あなたは今から|今からあなたは|これからあなたは)"
)
_TAKEOVER_WHO = (
    r"(?:unrestricted|unfiltered|uncensored|unaligned|unbound|unlimited|unchained|jailbroken|"
    r"evil|malicious|rogue|amoral|immoral|lawless|dan|developer\s+mode|god\s+mode|root|sudo|"
    r"(?:ai|model|assistant|chatbot|bot|llm)\s+(?:without|with\s+no|free\s+(?:of|from)|that\s+"
    r"(?:has\s+no|ignores|doesn'?t|does\s+not|never))|different\s+(?:ai|model|assistant))"
)


@dataclass(frozen=True)
class _Rule:
    name: str
    pattern: re.Pattern[str]
    needs: re.Pattern[str] | None = None  # must also occur within the match (± 20 chars)

    def hit(self, text: str) -> bool:
        for m in self.pattern.finditer(text):
            around = text[max(0, m.start() - 20) : m.end() + 20]
            if self.needs is None or self.needs.search(around):
                return True
        return False


def _rule(name: str, pattern: str, needs: str | None = None) -> _Rule:
    flags = re.IGNORECASE | re.MULTILINE
    return _Rule(name, re.compile(pattern, flags), re.compile(needs, flags) if needs else None)


_RULES = (
    # English: an override verb aimed at the assistant's own instructions
    _rule(
        "override",
        rf"\b{_VERB}\s+(?:{_WEAK}\s+){{0,2}}{_STRONG}\s+(?:(?:{_WEAK}|{_STRONG}|\w+ly)\s+){{0,3}}"
        rf"{_TARGET}\b",
    ),
    _rule(
        "override",
        rf"\b{_VERB}\s+(?:the\s+|these\s+|those\s+|my\s+)?(?:instructions|rules|guidelines|"
        r"directives|system\s+prompt|guard\s*rails|restrictions|safety\s+\w+)\b"
        r"(?!\s+(?:about|of|for|on|when|in|regarding|around|concerning|that|which|where)\b)",
    ),
    _rule(
        "override",
        rf"\b{_VERB}\s+(?:all\s+(?:of\s+)?|everything\s+|anything\s+|whatever\s+|what\s+)"
        r"(?:[\w']+\s+){0,4}?(?:above|before|earlier|previously|so\s+far|until\s+now|"
        r"up\s+to\s+(?:now|here|this\s+point)|prior\s+to\s+this|preceding)\b",
    ),
    _rule("override", rf"\b{_VERB}\s+(?:all\s+)?(?:of\s+)?the\s+(?:above|preceding|foregoing)\b"),
    _rule(
        "override",
        rf"\b{_STRONG}\s+(?:\w+\s+)?(?:instructions|rules|prompt|directives|guidelines)\s+(?:are|"
        r"is|have\s+been|has\s+been|were)\s+(?:now\s+|hereby\s+|all\s+)?(?:void|null|"
        r"cancel+ed|obsolete|revoked|invalid|outdated|deprecated|overridden|superseded|"
        r"suspended|lifted|disabled|removed|expired|no\s+longer\s+(?:valid|in\s+effect|active))"
        rf"|\b{_STRONG}\s+(?:instructions|rules|prompt|directives|guidelines)\s+"
        r"(?:no\s+longer|do\s+not|don'?t)\s+apply",
    ),
    # new instructions, new identity, new mode
    _rule(
        "new-instructions",
        r"\b(?:new|updated|revised|real|true|actual|secret|hidden|override|overriding|priority|"
        r"admin|system|developer|emergency)\s+(?:instructions?|directives?|orders|commands|"
        r"system\s+prompt|prompt|task|objective|mission|role|persona|identity)\s*[:\-–—]"
        r"|\b(?:here\s+are|these\s+are|follow|obey|execute)\s+(?:your|the|my)\s+new\s+"
        r"(?:instructions|directives|orders|rules|commands)"
        r"|\byour\s+(?:new|real|true|actual)\s+(?:instructions|task|goal|purpose|objective|"
        r"mission|directive|orders)\s+(?:is|are)\b"
        r"|\b(?:follow|obey|execute)\s+(?:only\s+)?(?:these|this|the\s+following|my)\s+(?:new\s+)?"
        r"(?:instructions?|commands?|orders|directives?)(?:\s+instead|\s+only|\s*:)"
        r"|\b(?:nouvelles?|nuevas|nuove|novas|neue|новые)\s+(?:instructions|consignes|directives|"
        r"instrucciones|reglas|directrices|ordenes|istruzioni|regole|direttive|instrucoes|regras|"
        r"diretrizes|ordens|anweisungen|instruktionen|befehle|regeln|инструкции|указания|правила|"
        r"команды)\s*:|新的?(?:指令|指示|规则|規則)\s*:|新しい(?:指示|命令|ルール)\s*:",
    ),
    _rule("takeover", _YOU_ARE_NOW),
    _rule(
        "takeover",
        r"\b(?:pretend|imagine|role-?play|act|behave|respond|answer|reply|speak|function|"
        r"operate|simulate|become|be)\s+(?:to\s+be\s+|that\s+you\s+are\s+|you\s+are\s+|"
        r"you'?re\s+|like\s+|as\s+(?:if\s+you\s+(?:are|were)\s+)?)?(?:an?\s+|the\s+|my\s+)?"
        rf"(?:[\w-]+\s+){{0,2}}?{_TAKEOVER_WHO}\b",
    ),
    _rule(
        "takeover",
        r"\b(?:enter|enable|activate|switch\s+(?:to|into)|turn\s+on|unlock|engage|go\s+into|"
        r"boot\s+into|you\s+are\s+in|now\s+in)\s+(?:the\s+)?(?:\w+\s+)?(?:developer|dev|god|"
        r"admin|jailbreak|jailbroken|dan|unrestricted|unfiltered|uncensored|sudo|root|override|"
        r"evil|chaos|superuser)\s+mode\b|\b(?:developer|god|dan|jailbreak|sudo|admin)\s+mode\s+"
        r"(?:enabled|activated|on|engaged|unlocked)\b|\bjailbr(?:ea|o)k|\bdo\s+anything\s+now\b",
    ),
    _rule(
        "authority",
        r"\b(?:i\s+am|i'?m|this\s+is|message\s+from|note\s+from|speaking\s+as)\s+(?:your|the)\s+"
        r"(?:developer|creator|administrator|admin|owner|operator|programmer|maker|system)s?\b"
        r"|\b(?:system|admin|developer|security|priority|emergency|root)\s+(?:override|alert|"
        r"notice|command)\b",
    ),
    # asking for the prompt
    _rule(
        "exfiltrate",
        rf"\b{_REVEAL}\b[^.\n]{{0,40}}?{_SYSPROMPT}|{_SYSPROMPT}[^.\n]{{0,20}}?{_REVEAL}",
    ),
    _rule(
        "exfiltrate",
        r"\b(?:repeat|print|output|echo|recite|copy|reproduce)\s+(?:back\s+)?(?:all\s+(?:of\s+)?"
        r"(?:the\s+)?(?:text|words|lines|messages?)?\s*|everything\s+|the\s+(?:text|words|content|"
        r"lines|messages?)\s+)(?:\w+\s+){0,3}?(?:above|before\s+this|so\s+far|verbatim|"
        r"starting\s+with)",
    ),
    # fake turns: role labels, headers, brackets, template tokens, tags of the block
    _rule("role-label", rf"(?:^|[.!?;]\s+)[>*_\-=|\s]*[\[(]?\s*{_ROLE}\s*[\])]?\s*[*_]*\s*:"),
    _rule("role-label", rf"^\s*#{{1,6}}\s*(?:{_ROLE}|user|response|input)\s*[:*]*\s*$"),
    _rule("role-label", rf"^\s*(?:#{{1,6}}|\*\*)\s*(?:{_ROLE}|user|response)\b"),
    _rule(
        "role-label",
        r"[\[({]\s*/?\s*(?:system|sys|inst|assistant|admin|developer|system[\s_-]*(?:prompt|"
        r"message|note|override))\s*[\])}]",
    ),
    _rule("template-token", _TEMPLATE),
    _rule(
        "block-tag",
        r"<\s*/?\s*(?:user[\s_.-]*pref\w*|pref\w*|system|sys|assistant|user|human|developer|"
        r"instructions?|context|admin|inst|im_start|im_end|data)\b[^<>\n]{0,40}>",
    ),
    # other languages: override verbs aimed at instructions
    _rule(
        "override-i18n",
        rf"\b{_ROMANCE_VERB}[\s,]+(?:{_ROMANCE_FILL}[\s']+){{0,4}}{_ROMANCE_NOUN}\b",
        _ROMANCE_STRONG,
    ),
    _rule(
        "override-i18n",
        rf"\b{_GERMAN_VERB}\b[^.\n]{{0,40}}?\b(?:{_GERMAN_TARGET})|\b(?:{_GERMAN_TARGET})"
        rf"[^.\n]{{0,40}}?\b{_GERMAN_VERB}\b",
        r"vorherig|vorig|bisherig|obig|vorangegangen|fruher|alle|deine|ihre|ursprunglich|system"
        r"|oben|davor",
    ),
    _rule(
        "override-i18n",
        rf"{_RU_VERB}[^.\n]{{0,50}}?{_RU_TARGET}|{_RU_TARGET}[^.\n]{{0,30}}?{_RU_VERB}",
        _RU_STRONG,
    ),
    _rule(
        "override-i18n",
        rf"{_CJK_VERB}.{{0,14}}?{_CJK_TARGET}|{_CJK_TARGET}.{{0,14}}?{_CJK_VERB}",
        _CJK_STRONG,
    ),
    # encoded payloads with an order to decode and obey
    _rule(
        "encoded",
        r"\b(?:decode|decipher|decrypt|unscramble|reverse)\b[^.\n]{0,60}\b(?:and|then)\s+"
        r"(?:follow|execute|obey|run|perform|carry\s+out|do\s+(?:what|as)\s+it\s+says)\b"
        r"|\b(?:base64|rot-?13|hex(?:adecimal)?|morse|binary|caesar)\b[^.\n]{0,60}\b(?:follow|"
        r"execute|obey|comply|instructions?)\b",
    ),
)

#: checked on letters only (spacing, punctuation and reversal tricks removed)
_COMPACT = re.compile(
    r"(?:ignore|disregard|forget|bypass|override)(?:all|any|the|your|of|every|my)*(?:previous|"
    r"prior|above|preceding|earlier|system|safety|original)(?:instructions?|rules|prompts?|"
    r"directives?|guidelines?|messages?|context)|(?:ignore|disregard|forget)(?:all|everything|"
    r"anything)(?:that|which|i|you|was|were|is|has|have|been|said|written|stated|told|given|of|"
    r"the)*(?:above|before|previously|sofar|earlier)|jailbreak|doanythingnow|developermode"
    r"(?:enabled|activated|on)|systempromptis|revealyoursystemprompt|printyoursystemprompt"
)


def find_injection(text: str) -> str | None:
    """The name of the first rule ``text`` matches (``override``, ``template-token``, ...), or
    None when it reads as an ordinary preference."""
    views = [normalize(text)]
    views.append(fold(views[0]).translate(_BRACKETS))
    views[0] = views[0].translate(_BRACKETS)
    for payload in _decoded_payloads(unicodedata.normalize("NFKC", _drop_invisible(text))):
        views.append(fold(normalize(payload)).translate(_BRACKETS))
    for view in views:
        for rule in _RULES:
            if rule.hit(view):
                return rule.name
    letters = re.sub(r"[^a-z]", "", views[1])
    if _COMPACT.search(letters) or _COMPACT.search(letters[::-1]):
        return "spelled-out"
    return None


def looks_like_injection(text: str) -> bool:
    """True when ``text`` reads like an attempt to override, replace or reveal the system
    prompt, or to open a fake turn (see the module docstring for what is and is not flagged)."""
    return find_injection(text) is not None


# -- rendering --------------------------------------------------------------------------------

_ANGLE_NAME = re.compile(
    r"LESS-THAN|GREATER-THAN|\b(?:LEFT|RIGHT)(?:-POINTING)?\b.*\b(?:ANGLE|ARROWHEAD|CHEVRON)\b"
    r"|\bANGLE\b.*\b(?:LEFT|RIGHT)\b|\bPRECEDES\b|\bSUCCEEDS\b"
)
_LOOKALIKE_LEFT = "ᐸᑉᐊ"
_LOOKALIKE_RIGHT = "ᐳᐅ"
#: Unicode blocks whose characters are look-alikes of ASCII (fullwidth, small forms,
#: mathematical letters): they are read as their ASCII form before tokens are removed.
_ASCII_LOOKALIKE_BLOCKS = ((0xFE50, 0xFE6F), (0xFF00, 0xFFEF), (0x1D400, 0x1D7FF))


@lru_cache(maxsize=8192)
def _render_char(ch: str) -> str:
    """One character as rendered by :func:`as_data` before tokens are removed: angle
    look-alikes become ``<``/``>``, ASCII look-alikes their ASCII form, the rest unchanged."""
    if ch.isspace():
        return " "
    category = unicodedata.category(ch)
    if category in ("Cf", "Cc", "Cs"):
        return ""
    if ch in _LOOKALIKE_LEFT:
        return "<"
    if ch in _LOOKALIKE_RIGHT:
        return ">"
    forms = unicodedata.normalize("NFKC", ch) + unicodedata.normalize("NFKD", ch)
    if "<" in forms:
        return "<"
    if ">" in forms:
        return ">"
    name = unicodedata.name(ch, "")
    if _ANGLE_NAME.search(name) and "EQUAL" not in name and "EQUIVALENT" not in name:
        return "<" if ("LEFT" in name or "LESS" in name or "PRECEDES" in name) else ">"
    code = ord(ch)
    if any(lo <= code <= hi for lo, hi in _ASCII_LOOKALIKE_BLOCKS):
        nfkc = unicodedata.normalize("NFKC", ch)
        if len(nfkc) == 1 and nfkc.isascii():
            return nfkc
    if ch in "｜￨∣ǀ│❘":
        return "|"
    return ch


_TOKEN = re.compile(
    r"<\s*\|[^<>]{0,60}?\|\s*>|<\s*\|[^<>|\s]{1,40}>|<[^<>|\s]{1,40}\|\s*>"
    r"|\[\s*/?\s*(?:INST|SYS|SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS|"
    r"TOOL_CONTENT)\s*\]|<<\s*/?\s*SYS\s*>>"
    r"|<\s*/?\s*(?:s|bos|eos|pad|unk|start_of_turn|end_of_turn|start_of_image|end_of_image|"
    r"repo_?name|file_sep|filename|gh_stars|issue_\w+|jupyter_\w+|empty_output|think|"
    r"tool_call|tool_response)\s*>",
    re.IGNORECASE,
)
_ARROWS = (
    ("<->", "↔"),
    ("<=>", "⇔"),
    ("->", "→"),
    ("=>", "⇒"),
    ("<-", "←"),
    ("<=", "≤"),
    (">=", "≥"),
)


def as_data(text: str) -> str:
    """Render a stored preference safely, in the system block or the user turn.

    The result is one line with no control or format characters; chat-template tokens of the
    common families (``<|im_end|>``, ``[INST]``, ``<<SYS>>``, ``<start_of_turn>``, ``</s>``,
    also written with look-alike brackets) are removed; every remaining angle-bracket
    look-alike becomes a round bracket (arrows and ``<=``/``>=`` keep their meaning as ``→``,
    ``≤``, ...). So no rendered preference can contain a tag or a special token.
    """
    rendered = "".join(_render_char(ch) for ch in html.unescape(text))
    rendered = re.sub(
        r"\\u003[ce]|\\x3[ce]|%3[ce]", lambda m: _decode_escape(m.group()), rendered, flags=re.I
    )
    previous = None
    while previous != rendered:  # a removal may join the halves of another token
        previous = rendered
        rendered = _TOKEN.sub(" ", rendered)
    for arrow, glyph in _ARROWS:
        rendered = rendered.replace(arrow, glyph)
    rendered = rendered.replace("<", "(").replace(">", ")")
    return " ".join(rendered.split())


def _decode_escape(escape: str) -> str:
    return "<" if escape.lower().endswith("c") else ">"


def until_template_token(text: str) -> str:
    """``text`` up to its first chat-template special token (all of it when it has none).

    A model's answer ends at an end-of-turn token; whatever follows one is not part of it.
    """
    canon = "".join(_render_char(ch)[:1] or " " if not ch.isspace() else ch for ch in text)
    match = _TOKEN.search(canon)
    return text if match is None else text[: match.start()]
