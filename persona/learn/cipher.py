"""CIPHER (PRELUDE, Gao et al. 2024): learn a latent preference from a user's edits.

* **Infer**: given the agent's answer and the user's edited answer (plus a compact word-level
  diff, which a small model needs), the LLM names the user's preference in a short phrase.
* **Store**: the phrase is kept with the embedding of the *context* it was learned in.
* **Retrieve**: for a new context, the preferences of the k closest past contexts are taken
  (cosine over normalized context embeddings) and, for k > 1, aggregated by the LLM into one
  description that conditions generation.
* **Accept**: when the user accepts an answer unedited, the preference that was used is stored
  again for that context.

:class:`Cipher` holds the two LLM steps; :class:`CipherLearner` is the method as the layer
runs it: it learns from edits, remembers what each answer was conditioned on (the accept
rule), and contributes the k nearest edit-learned preferences to a request. At request time
it waits on no LLM by default (``aggregate="vote"``): it keeps the clauses that most of the k
retrieved preferences state (:func:`vote`), which is what the paper asks its LLM to do, and a
small model cannot garble it. ``"list"`` serves the deduplicated preferences, nearest first;
``"sync"`` is the paper's aggregation by the LLM on every new set (the edit benchmark's
faithful CIPHER); ``"background"`` aggregates in a worker thread and, until the set's own
aggregate is made, serves that of a set differing by one preference, else the vote.

LLM output is parsed defensively: quotes, preambles and lists are stripped; an empty, over-long
or rambling answer is rejected (:class:`LearningError`), never stored raw. What the user's own
revision contradicts is dropped from the phrase, since it cannot be the user's preference: a
limit on the answer's length it breaks ("no more than 10 words" for an edit that wrote 40) and
a literal opening or ending its first or last line lacks ("start with a TL;DR" for a revision
that starts "Subject: ...").
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage

from persona.errors import InvalidInputError, LearningError, ModelError
from persona.learn import prompts
from persona.learn.base import Contribution, Request, Search, Writing
from persona.learn.cipher_text import (
    Embed,
    clauses,
    clean_phrase,
    infer_prompt,
    same_clause,
    shown_clauses,
    vote,
    without_contradicted,
)
from persona.learn.edit_facts import edit_wishes
from persona.learn.guard import looks_like_injection
from persona.llm import complete, describe, usage
from persona.types import AppliedPreference, Preference

log = logging.getLogger(__name__)


Aggregate = Literal["list", "background", "sync", "vote"]
AGGREGATE_MODES: tuple[str, ...] = ("list", "background", "sync", "vote")
Infer = Literal["llm", "facts", "both"]
INFER_MODES: tuple[str, ...] = ("llm", "facts", "both")
Members = frozenset[tuple[int, str]]  # a retrieved set: its preferences' (id, text)


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
    keep_shown: bool = False  # off by default: a mixed result (README, session 34)
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


Used = tuple[str, tuple[int, ...]]  # the description an answer was conditioned on, its rows


class CipherLearner:
    """CIPHER in the layer: learn from edits, contribute the k nearest, accept unedited."""

    def __init__(
        self,
        llm: Callable[[], BaseChatModel],
        search: Search,
        config: CipherConfig | None = None,
        embed: Embed | None = None,
    ) -> None:
        self._llm = llm  # loaded on first use: most requests never need it
        self._search = search
        self._embed = embed  # "vote" compares the retrieved clauses with it
        # clause -> its vector: a stored preference's clauses are embedded once, not per request
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._forgotten = 0  # bumped by forget(): vectors embedded before it are not kept
        self.config = config or CipherConfig()
        self._cipher: Cipher | None = None
        self._lock = threading.Lock()
        self._used: OrderedDict[tuple[str, str], Used] = OrderedDict()
        self._worker: ThreadPoolExecutor | None = None
        self._pending: dict[tuple[str, ...], Future[str]] = {}
        # "background": per user, the sets queued for aggregation (their (id, text) members)
        # -> the texts their aggregate is cached under, most recent last
        self._sets: dict[str, OrderedDict[Members, tuple[str, ...]]] = {}
        # "background": what each request was served ("aggregate", "neighbour", "vote")
        self.served: Counter[str] = Counter()

    @property
    def cipher(self) -> Cipher:
        """The two LLM steps (the model is loaded on first use)."""
        with self._lock:
            if self._cipher is None:
                self._cipher = Cipher(self._llm(), self.config)
            return self._cipher

    # -- learning ------------------------------------------------------------------------
    def learn(
        self,
        writing: Writing,
        user_id: str,
        context: str,
        embedding: np.ndarray,
        output: str,
        edited: str,
    ) -> list[Preference]:
        """Store the preference behind ``output`` → ``edited`` for ``context``.

        An unedited answer stores again the description it was conditioned on (nothing when
        none was). Otherwise a short phrase is inferred first, outside any transaction (by the
        LLM, or from the edit's counted changes: ``config.infer``); if the LLM fails or answers
        junk, a :class:`PersonaError` is raised and nothing is written.
        """
        if " ".join(output.split()) == " ".join(edited.split()):
            used = self._used_for(user_id, context, embedding)
            if used is None:
                return []
            text, source_ids = used
            with writing(user_id) as write:
                edit = write.store.add_edit(user_id, context, output, edited)
                prov = (f"edit:{edit.id}", *(f"preference:{i}" for i in source_ids))
                return [
                    write.add_preference(
                        text, "edit", context=context, embedding=embedding, provenance=prov
                    )
                ]
        # "facts" needs no model unless nothing counted changed: it is not loaded for it
        counted = wishes(output, edited) if self.config.infer == "facts" else []
        phrase = "; ".join(counted) if counted else self.cipher.infer(output, edited, context)
        phrase, carried_from = self._with_kept(phrase, user_id, context, embedding, edited)
        if self.config.aggregate == "vote" and self._embed is not None:
            # embedded now, beside the LLM's inference, not on a later request's path
            self._clause_vectors(clauses(phrase) or [phrase])
        with writing(user_id) as write:
            edit = write.store.add_edit(user_id, context, output, edited)
            prov = (f"edit:{edit.id}", *(f"preference:{i}" for i in carried_from))
            return [
                write.add_preference(
                    phrase, "edit", context=context, embedding=embedding, provenance=prov
                )
            ]

    def _with_kept(
        self, phrase: str, user_id: str, context: str, embedding: np.ndarray, edited: str
    ) -> tuple[str, tuple[int, ...]]:
        """``phrase``, then the clauses of the description the answer was conditioned on that
        the revision visibly kept and the phrase does not state (``config.keep_shown``), with
        the ids of the preferences that description came from (none when nothing is kept).
        Only a description this process remembers serving is read: computing it again could
        call the model."""
        if not self.config.keep_shown:
            return phrase, ()
        used = self._used_for(user_id, context, embedding, recompute=False)
        if used is None:
            return phrase, ()
        stated = clauses(phrase)
        kept = [
            c for c in shown_clauses(used[0], edited) if not any(same_clause(c, s) for s in stated)
        ]
        if not kept:
            return phrase, ()
        return "; ".join([phrase, *dict.fromkeys(kept)]), used[1]

    # -- conditioning --------------------------------------------------------------------
    def contribute(self, request: Request) -> Contribution:
        cfg = self.config
        scope = f"CIPHER: nearest edited contexts (k={cfg.k})"
        applied = request.pick({"edit"}, cfg.k, cfg.min_similarity, scope)
        if not applied:
            return Contribution()
        t0 = time.perf_counter()
        if cfg.aggregate == "background":
            summary = self._background(request, applied)
        else:
            summary = self.describe([p.text for p in applied])
        timings = {"llm_ms": (time.perf_counter() - t0) * 1e3} if cfg.aggregate == "sync" else {}
        self._remember(request.user_id, request.context, summary, tuple(p.id for p in applied))
        return Contribution(preferences=applied, summary=summary, timings=timings)

    def describe(self, texts: Sequence[str]) -> str:
        """One description for the k retrieved preferences, per the ``aggregate`` mode."""
        distinct = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
        if len(distinct) <= 1 or self.config.k == 1:
            return distinct[0] if distinct else ""
        mode = self.config.aggregate
        if mode == "sync":
            return self.cipher.aggregate(distinct)
        if mode == "list":
            return "; ".join(distinct)
        if mode == "background":
            key = tuple(distinct)
            cached = self.cipher.cached(key) if self._cipher is not None else None
            if cached is not None:
                self._count("aggregate")
                return cached
            self._aggregate_later(key)
            self._count("vote")
            if self._embed is None:  # nothing to vote with: the list until the aggregate is in
                return "; ".join(distinct)
        elif self._embed is None:
            raise InvalidInputError(
                'cipher_aggregate="vote" needs an embedder: build CipherLearner with embed='
                "(the layer passes its own)."
            )
        kept = [t.strip() for t in texts if t.strip()]  # a repeat is a vote
        return vote(kept, self._clause_vectors, self.config.same_preference)

    def _background(self, request: Request, applied: Sequence[AppliedPreference]) -> str:
        """``"background"``: as :meth:`describe` (this set's aggregate if made, else queued
        and the vote), but a set not aggregated yet gets a neighbouring set's aggregate when
        one is made."""
        texts = [p.text for p in applied]
        distinct = tuple(dict.fromkeys(t.strip() for t in texts if t.strip()))
        if len(distinct) > 1 and self.config.k > 1 and self.cipher.cached(distinct) is None:
            near = self._neighbour(request, applied, distinct)
            if near is not None:
                self._aggregate_later(distinct)
                self._count("neighbour")
                return near
        return self.describe(texts)

    def _neighbour(
        self, request: Request, applied: Sequence[AppliedPreference], distinct: tuple[str, ...]
    ) -> str | None:
        """Remember this set for the user; the aggregate made for one of their sets that differs
        by at most ``reuse_differing`` preferences, most overlap then most recent first."""
        members: Members = frozenset((p.id, p.text.strip()) for p in applied)
        with self._lock:
            sets = self._sets.setdefault(request.user_id, OrderedDict())
            sets[members] = distinct
            sets.move_to_end(members)
            while len(sets) > self.config.cache_size // 8:
                sets.popitem(last=False)
            # every member of a neighbour must still be stored, with the same text: a deleted
            # or edited preference's words are never served
            alive = {(h.preference.id, h.preference.text.strip()) for h in request.nearest}
            near = [
                (len(members & other), key)
                for other, key in reversed(sets.items())
                if other != members
                and other <= alive
                and len(members - other) <= self.config.reuse_differing
                and len(other - members) <= self.config.reuse_differing
            ]
        for _, key in sorted(near, key=lambda n: -n[0]):  # stable: most overlap, then recent
            text = self.cipher.cached(key)
            if text is not None:
                return text
        return None

    def _count(self, kind: str) -> None:
        with self._lock:
            self.served[kind] += 1

    def _clause_vectors(self, texts: list[str]) -> np.ndarray:
        """The embedder's vectors for ``texts``, each clause embedded once (an LRU of
        ``cache_size`` × 16 clauses): a user's stored preferences come back request after
        request, in new combinations."""
        assert self._embed is not None  # its callers check
        with self._lock:
            known = {t: self._vectors[t] for t in texts if t in self._vectors}
            for t in known:
                self._vectors.move_to_end(t)
            generation = self._forgotten
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            fresh = np.asarray(self._embed(missing), dtype=np.float32)
            known.update(zip(missing, fresh, strict=True))
            with self._lock:
                if generation == self._forgotten:  # else a forget() ran meanwhile: keep none
                    self._vectors.update(zip(missing, fresh, strict=True))
                    while len(self._vectors) > 16 * self.config.cache_size:
                        self._vectors.popitem(last=False)
        return np.stack([known[t] for t in texts])

    def _aggregate_later(self, key: tuple[str, ...]) -> None:
        cipher = self.cipher  # takes the lock itself: not under it
        with self._lock:
            if key in self._pending:
                return
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, thread_name_prefix="persona-cipher")
            future = self._worker.submit(cipher.aggregate, key)
            self._pending[key] = future
        future.add_done_callback(lambda _: self._done(key))

    def _done(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._pending.pop(key, None)

    def drain(self) -> None:
        """Wait for the background aggregations queued so far (benchmarks, tests)."""
        with self._lock:
            pending = list(self._pending.values())
        for future in pending:
            future.exception()  # waits; a failure was already logged by aggregate()

    # -- the accept rule's memory -------------------------------------------------------
    @staticmethod
    def _key(user_id: str, context: str) -> tuple[str, str]:
        return user_id, hashlib.sha256(context.encode()).hexdigest()

    def _remember(self, user_id: str, context: str, text: str, ids: tuple[int, ...]) -> None:
        key = self._key(user_id, context)
        with self._lock:
            self._used[key] = (text, ids)
            self._used.move_to_end(key)
            while len(self._used) > self.config.remembered:
                self._used.popitem(last=False)

    def _used_for(
        self, user_id: str, context: str, embedding: np.ndarray, recompute: bool = True
    ) -> Used | None:
        """The description this context's answer was conditioned on and the ids it came from;
        when this process does not remember it, computed again (``recompute``) or None."""
        with self._lock:
            remembered = self._used.get(self._key(user_id, context))
        if remembered is None and not recompute:
            return None
        nearest = self._search(user_id, embedding)
        if remembered is not None:
            # Trust the memory only while every row it names still exists for this user
            # (another process may have deleted and re-created the user meanwhile).
            alive = {h.preference.id for h in nearest}
            if set(remembered[1]) <= alive:
                return remembered
        if not recompute:
            return None
        # Not remembered (another process answered, or a restart): recompute, deterministic.
        part = self.contribute(Request(user_id, context, embedding, nearest))
        return (part.summary, tuple(p.id for p in part.preferences)) if part.summary else None

    def forget(self, user_id: str) -> None:
        """Drop what this process keeps of the user's words: the remembered conditioning,
        and (keyed by text, not user) every clause vector and aggregate, which the next
        requests rebuild. A deleted user's preferences leave no copy in memory."""
        with self._lock:
            for key in [k for k in self._used if k[0] == user_id]:
                del self._used[key]
            self._sets.pop(user_id, None)
            self._vectors.clear()
            self._forgotten += 1
            cipher = self._cipher
        if cipher is not None:
            cipher.clear()

    def close(self) -> None:
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(wait=False, cancel_futures=True)
