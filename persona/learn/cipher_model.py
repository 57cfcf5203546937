"""CIPHER's two model steps (PRELUDE, Gao et al. 2024): name the preference behind an edit,
and aggregate the preferences of the k nearest contexts into one description.

:class:`Cipher` asks the LLM and parses its answer defensively: quotes, preambles and lists
are stripped; an empty, over-long or rambling answer is rejected (:class:`LearningError`),
never stored raw. What the user's own revision contradicts is dropped from the phrase, since
it cannot be the user's preference: a limit on the answer's length it breaks ("no more than
10 words" for an edit that wrote 40) and a literal opening or ending its first or last line
lacks ("start with a TL;DR" for a revision that starts "Subject: ..."). With
``infer="facts"`` the edit's counted changes, stated as wishes (:func:`wishes`), stand in for
the model's phrase. :class:`~persona.learn.cipher.CipherLearner` runs these steps in the
layer.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage

from persona.errors import LearningError, ModelError
from persona.learn import prompts
from persona.learn.cipher_text import (
    clauses,
    clean_phrase,
    infer_prompt,
    without_contradicted,
)
from persona.learn.edit_facts import edit_wishes
from persona.learn.guard import looks_like_injection
from persona.llm import complete, describe, usage

log = logging.getLogger(__name__)


Aggregate = Literal["list", "background", "sync", "vote"]
AGGREGATE_MODES: tuple[str, ...] = ("list", "background", "sync", "vote")
Infer = Literal["llm", "facts", "both"]
INFER_MODES: tuple[str, ...] = ("llm", "facts", "both")


@dataclass(frozen=True)
class CipherConfig:
    k: int = 5  # contexts retrieved per request; PRELUDE reports k in {1, 5}
    # CIPHER retrieves the k nearest past contexts whatever their similarity (PRELUDE); raise
    # this to keep edit-learned preferences away from unrelated requests.
    min_similarity: float = 0.0
    # How the k retrieved preferences become one description at request time:
    # "vote": the clauses most of the k state, by embedding (no LLM; see vote(); the default);
    # "list": deduplicated, nearest first (no LLM on the request path);
    # "sync": the LLM aggregates every new set before answering (faithful CIPHER);
    # "background": the LLM aggregates each new set in a worker thread; until it is done the
    # request gets the aggregate already made for a set that differs from it by at most
    # ``reuse_differing`` preferences (this user's, every one still stored as it was), else
    # the vote.
    aggregate: Aggregate = "vote"
    reuse_differing: int = 1
    # "vote": two clauses state the same preference at this cosine or above (MiniLM). Chosen
    # on the follow generator's wordings (45 types, 4-6 ways each), not on the edit benchmark:
    # same-type pairs reach it 90% of the time, different-type pairs 7%; balanced accuracy is
    # flat (0.91) from 0.36 to 0.42.
    same_preference: float = 0.4
    remembered: int = 4096  # (user, context) -> description used: the accept rule's memory
    max_words: int = 25  # a preference is a short phrase; longer answers are cut to a clause
    max_diff_words: int = 60  # the diff shown to the LLM is kept compact
    infer_tokens: int = 40  # generation budget for inference (a short phrase)
    # Show the inference prompt the counted changes of edit_facts() beside the diff (line
    # starts, words added at either end, letter case, length, punctuation counts). A local
    # model needs training to use them (persona train follow, data version 4 on); off:
    # PRELUDE's prompt plus the diff.
    edit_facts: bool = False
    # Context-aware decoding of the inference (Shi et al. 2023), with the local model only:
    # each token is pushed away from the same prompt with the revision equal to the answer
    # (what the model would name with no edit to go on), at this scale. 1: off.
    infer_guidance: float = 1.0
    # With the local model: write this many phrases (the greedy one, then samples at
    # temperature 1) and keep the one that best explains the edit: the largest
    # log p(revision | request + phrase) - log p(original | request + phrase), scored by the
    # model that answers (the noisy channel; see explains()). 1: the greedy phrase alone.
    infer_candidates: int = 1
    # Where an edit's phrase comes from. "llm": the model reads the edit (PRELUDE's CIPHER);
    # "facts": the edit's counted changes stated as wishes (wishes(): "no emoji; at most 40
    # words"), with no model call, and the model only when nothing counted changed; "both":
    # the model's phrase, then the wishes it does not already state.
    infer: Infer = "llm"
    # An edit also stores the clauses of the description its answer was conditioned on that
    # the user's revision visibly kept (shown_clauses(): its literal opening or ending, a
    # list or emoji it has): an edit shows only what the user changed, so "bullet points"
    # learned from an answer that already opened with the wanted TL;DR would lose the TL;DR.
    # Off by default: a mixed result (benchmarks/follow/README.md, session 34).
    keep_shown: bool = False
    aggregate_tokens: int = 60  # generation budget for aggregation
    cache_size: int = 512  # aggregations memoized on their exact inputs (greedy: same result)


def guided(llm: BaseChatModel, scale: float) -> BaseChatModel | None:
    """``llm`` guided at ``scale`` for one call's ``negative_messages=``: a copy of the local
    model (same weights) with that guidance and no reranking; None when ``scale`` is 1 or the
    model has no guidance (a served model)."""
    if scale == 1.0 or not hasattr(llm, "guidance_scale"):
        return None
    return llm.model_copy(update={"guidance_scale": float(scale), "rerank": 1})


def wishes(output: str, edited: str) -> list[str]:
    """The edit's counted changes as short wishes (:func:`edit_wishes`), without any that
    reads as an instruction to the model (words the user added are quoted in some)."""
    return [w for w in edit_wishes(output, edited) if not looks_like_injection(w)]


def with_wishes(phrase: str, wished: Sequence[str]) -> str:
    """CIPHER's phrase for an edit from the model's checked ``phrase`` ("" when it gave none
    or nothing survived the checks) and the edit's ``wished`` (empty with ``infer="llm"``):
    the phrase, then each wish it does not already state; the wishes alone without one."""
    if not phrase:
        return "; ".join(wished)
    stated = {c.lower() for c in clauses(phrase)}
    return "; ".join([phrase, *(w for w in wished if w.lower() not in stated)])


class Cipher:
    """CIPHER's two LLM steps. Tokens used are counted in ``tokens_in`` / ``tokens_out``."""

    def __init__(self, llm: BaseChatModel, config: CipherConfig | None = None) -> None:
        self.llm = llm
        self.config = config or CipherConfig()
        self.tokens_in = 0
        self.tokens_out = 0
        self._cache: OrderedDict[tuple[str, ...], str] = OrderedDict()
        self._cache_lock = threading.Lock()  # aggregate() may run in a background worker
        self._generation = 0  # bumped by clear(): an aggregation begun before it is not kept
        self._guided = guided(llm, self.config.infer_guidance)

    def _ask(self, prompt: str, max_tokens: int, negative: str | None = None) -> str:
        llm, extra = self.llm, {}
        if negative is not None and self._guided is not None:
            llm, extra = self._guided, {"negative_messages": [HumanMessage(negative)]}
        msg = complete(llm, [HumanMessage(prompt)], max_tokens=max_tokens, **extra)
        tin, tout = usage(msg)
        self.tokens_in += tin
        self.tokens_out += tout
        return msg.text

    def infer(self, output: str, edited: str, context: str | None = None) -> str:
        """The user's preference behind ``output`` → ``edited``, as a short phrase: the LLM's,
        the edit's counted changes as wishes, or both (``config.infer``).

        Given the ``context`` (the request answered) and ``infer_candidates`` > 1, a local
        model chooses among its own phrases the one that best explains the edit
        (:meth:`explains`)."""
        mode = self.config.infer
        wished = [] if mode == "llm" else wishes(output, edited)
        if mode == "facts" and wished:
            return "; ".join(wished)
        try:
            phrase = self._consistent(self._infer(output, edited, context), edited)
        except LearningError:
            if not wished:
                raise
            phrase = ""  # "both": the model answered junk; the counts still hold
        return with_wishes(phrase, wished)

    @staticmethod
    def _consistent(phrase: str, edited: str) -> str:
        """``phrase`` without what the user's own revision contradicts
        (:func:`without_contradicted`): a limit on the answer's length it breaks (a small
        model adds "no more than 10 words" to an edit that wrote 40), a literal opening or
        ending its first or last line does not have ("start with a TL;DR" from a revision
        that starts "Subject: ...") and a surface feature it has but the phrase bans, or
        lacks but the phrase asks for ("no lists" from a revision in bullet points). The
        layer would state any of them to the model as the user's."""
        kept = without_contradicted(phrase, edited)
        if not kept:
            raise LearningError(
                f"the LLM answered {phrase!r}, which the user's revision contradicts (a length "
                f"limit its {len(edited.split())} words break, an opening or ending its first "
                "or last line does not have, or a list, emoji or other mark it has but the "
                "phrase bans, or lacks but the phrase asks for); nothing was stored."
            )
        if kept != phrase:
            log.debug("CIPHER: dropped what the revision contradicts: %r -> %r", phrase, kept)
        return kept

    def _infer(self, output: str, edited: str, context: str | None) -> str:
        prompt = infer_prompt(
            output,
            edited,
            max_diff_words=self.config.max_diff_words,
            facts=self.config.edit_facts,
        )
        n = self.config.infer_candidates
        if n > 1 and context is not None and hasattr(self.llm, "candidates"):
            written = self.llm.candidates(
                [HumanMessage(prompt)], n, max_tokens=self.config.infer_tokens
            )
            for msg in written:
                tin, tout = usage(msg)
                self.tokens_in += tin
                self.tokens_out += tout
            phrases = [p for p in (self._phrase_or_none(m.text) for m in written) if p]
            if phrases:
                return self.explains(phrases, context, output, edited)
            return self._phrase(written[0].text)  # raises the error below
        unchanged = infer_prompt(output, output, facts=self.config.edit_facts)
        return self._phrase(self._ask(prompt, self.config.infer_tokens, negative=unchanged))

    def explains(self, phrases: Sequence[str], context: str, output: str, edited: str) -> str:
        """The phrase under which the user's revision is likeliest against the original
        answer, as the answer to ``context`` with the phrase stated the way the layer states
        preferences to the local model: ``log p(edited | ·) - log p(output | ·)``, summed over
        tokens. The first phrase wins ties."""
        distinct = list(dict.fromkeys(phrases))
        if len(distinct) == 1:
            return distinct[0]
        scores = []
        for phrase in distinct:
            turn = prompts.USER_TURN.format(message=context.rstrip(), preferences=phrase)
            revised, original = self.llm.loglikelihood(turn, [edited.strip(), output.strip()])  # type: ignore[attr-defined]
            scores.append(revised - original)
        return distinct[max(range(len(distinct)), key=lambda i: (scores[i], -i))]

    def _phrase_or_none(self, raw: str) -> str | None:
        try:
            return clean_phrase(raw, max_words=self.config.max_words)
        except LearningError:
            return None

    def _phrase(self, raw: str) -> str:
        try:
            return clean_phrase(raw, max_words=self.config.max_words)
        except LearningError as err:
            raise LearningError(
                f"{describe(self.llm)}: {err} Retry, use a stronger model (llm="
                "'openai:MODEL@URL'), or state the preference yourself with add_preference."
            ) from err

    def cached(self, key: tuple[str, ...]) -> str | None:
        """The aggregate already computed for exactly these distinct texts, if any."""
        with self._cache_lock:
            return self._cache.get(key)

    def aggregate(self, texts: Sequence[str]) -> str:
        """One description for the preferences of the k nearest contexts (k > 1)."""
        distinct = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
        if not distinct:
            raise LearningError("nothing to aggregate")
        if len(distinct) == 1:
            return distinct[0]
        key = tuple(distinct)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            generation = self._generation
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
        with self._cache_lock:
            if generation == self._generation:
                self._cache[key] = summary
                if len(self._cache) > self.config.cache_size:
                    self._cache.popitem(last=False)
        return summary

    def clear(self) -> None:
        """Drop every aggregate kept (their words are users' preferences); one still being
        computed is returned to its caller but not kept."""
        with self._cache_lock:
            self._cache.clear()
            self._generation += 1
