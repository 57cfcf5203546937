"""CIPHER (PRELUDE, Gao et al. 2024): learn a latent preference from a user's edits.

* **Infer**: given the agent's answer and the user's edited answer (plus a compact word-level
  diff, which a small model needs), the LLM names the user's preference in a short phrase.
* **Store**: the phrase is kept with the embedding of the *context* it was learned in.
* **Retrieve**: for a new context, the preferences of the k closest past contexts are taken
  (cosine over normalized context embeddings) and, for k > 1, aggregated by the LLM into one
  description that conditions generation.
* **Accept**: when the user accepts an answer unedited, the preference that was used is stored
  again for that context.

LLM output is parsed defensively: quotes, preambles and lists are stripped; an empty, over-long
or rambling answer is rejected (:class:`LearningError`), never stored raw.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage

from persona.agents.models import complete, describe, usage
from persona.errors import LearningError, ModelError
from persona.learn import prompts
from persona.learn.guard import looks_like_injection, until_template_token

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CipherConfig:
    k: int = 5  # contexts retrieved per request; PRELUDE reports k in {1, 5}
    max_words: int = 25  # a preference is a short phrase; longer answers are cut to a clause
    max_diff_words: int = 60  # the diff shown to the LLM is kept compact
    infer_tokens: int = 40  # generation budget for inference (a short phrase)
    aggregate_tokens: int = 60  # generation budget for aggregation
    cache_size: int = 512  # aggregations memoized on their exact inputs (greedy: same result)


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


class Cipher:
    """CIPHER's two LLM steps. Tokens used are counted in ``tokens_in`` / ``tokens_out``."""

    def __init__(self, llm: BaseChatModel, config: CipherConfig | None = None) -> None:
        self.llm = llm
        self.config = config or CipherConfig()
        self.tokens_in = 0
        self.tokens_out = 0
        self._cache: OrderedDict[tuple[str, ...], str] = OrderedDict()

    def _ask(self, prompt: str, max_tokens: int) -> str:
        msg = complete(self.llm, [HumanMessage(prompt)], max_tokens=max_tokens)
        tin, tout = usage(msg)
        self.tokens_in += tin
        self.tokens_out += tout
        return msg.text

    def infer(self, output: str, edited: str) -> str:
        """The user's preference behind ``output`` → ``edited``, as a short phrase."""
        prompt = prompts.CIPHER_INFER.format(
            output=output.strip(),
            edited=edited.strip(),
            diff=word_diff(output, edited, max_words=self.config.max_diff_words),
        )
        raw = self._ask(prompt, self.config.infer_tokens)
        try:
            return clean_phrase(raw, max_words=self.config.max_words)
        except LearningError as err:
            raise LearningError(
                f"{describe(self.llm)}: {err} Retry, use a stronger model (llm="
                "'openai:MODEL@URL'), or state the preference yourself with add_preference."
            ) from err

    def aggregate(self, texts: Sequence[str]) -> str:
        """One description for the preferences of the k nearest contexts (k > 1)."""
        distinct = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
        if not distinct:
            raise LearningError("nothing to aggregate")
        if len(distinct) == 1:
            return distinct[0]
        key = tuple(distinct)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        listing = "\n".join(f"- {t}" for t in distinct)
        try:
            raw = self._ask(
                prompts.CIPHER_AGGREGATE.format(preferences=listing), self.config.aggregate_tokens
            )
        except ModelError as err:
            # The request must not fail because the model is down: serve the nearest
            # preference this time (not cached, so the next request tries again).
            log.warning("CIPHER aggregation failed, using the nearest preference: %s", err)
            return next((t for t in distinct if not looks_like_injection(t)), distinct[0])
        try:
            summary = clean_phrase(raw, max_words=self.config.max_words)
        except LearningError:
            summary = ""
        if not summary or looks_like_injection(summary):
            # A junk or injected aggregate must not condition generation: fall back to the
            # nearest preference that does not read as an injection (the layer passes only
            # unflagged ones, so this is the nearest one unless the detector has since grown).
            summary = next((t for t in distinct if not looks_like_injection(t)), distinct[0])
        self._cache[key] = summary
        if len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)
        return summary
