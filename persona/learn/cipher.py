"""CIPHER (PRELUDE, Gao et al. 2024): learn a latent preference from a user's edits.

* **Infer**: given the agent's answer and the user's edited answer (plus a compact word-level
  diff, which a small model needs), the LLM names the user's preference in a short phrase.
* **Store**: the phrase is kept with the embedding of the *context* it was learned in.
* **Retrieve**: for a new context, the preferences of the k closest past contexts are taken
  (cosine over normalized context embeddings) and, for k > 1, aggregated by the LLM into one
  description that conditions generation.
* **Accept**: when the user accepts an answer unedited, the preference that was used is stored
  again for that context.

:class:`~persona.learn.cipher_model.Cipher` holds the two LLM steps (and parses what the
model writes defensively); :class:`CipherLearner` is the method as the layer runs it: it
learns from edits, remembers what each answer was conditioned on (the accept rule), and
contributes the k nearest edit-learned preferences to a request. At request time it waits on
no LLM by default (``aggregate="vote"``): it keeps the clauses that most of the k retrieved
preferences state (:func:`vote`), which is what the paper asks its LLM to do, and a small
model cannot garble it. ``"list"`` serves the deduplicated preferences, nearest first;
``"sync"`` is the paper's aggregation by the LLM on every new set (the edit benchmark's
faithful CIPHER); ``"background"`` aggregates in a worker thread and, until the set's own
aggregate is made, serves that of a set differing by one preference, else the vote.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from langchain_core.language_models import BaseChatModel

from persona.errors import InvalidInputError
from persona.learn.base import Contribution, Request, Search, Writing
from persona.learn.cipher_model import (
    AGGREGATE_MODES,
    INFER_MODES,
    Aggregate,
    Cipher,
    CipherConfig,
    Infer,
    guided,
    wishes,
    with_wishes,
)
from persona.learn.cipher_text import (
    Embed,
    clauses,
    same_clause,
    shown_clauses,
    vote,
)
from persona.types import AppliedPreference, Preference

__all__ = [  # the model steps live in cipher_model; imported from here too
    "AGGREGATE_MODES",
    "INFER_MODES",
    "Aggregate",
    "Cipher",
    "CipherConfig",
    "CipherLearner",
    "Infer",
    "guided",
    "wishes",
    "with_wishes",
]

log = logging.getLogger(__name__)

Members = frozenset[tuple[int, str]]  # a retrieved set: its preferences' (id, text)

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
