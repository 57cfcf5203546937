"""C3PO (RLVF, Stephan et al. 2024): apply verbal feedback where it belongs and nowhere else.

"Don't use emojis when drafting emails to my boss" must change emails to the boss, and leave
alone a text to a friend (near scope) or a Python question (out of scope).

* **Learn** (:meth:`C3PO.learn`): the layer's LLM writes the feedback's synthetic dataset
  (scope phrase, categories, in-scope and near-scope prompts; out-of-scope prompts from the
  shipped pool; see :mod:`persona.learn.c3po_data`). The user's own examples widen
  (``in_scope``) or narrow (``out_of_scope``) it. A scope model is fitted on it
  (:mod:`persona.learn.scope`), and the dataset, the scope model and one preference (the
  feedback, with its scope) are stored together in one transaction.
* **Apply** (:meth:`C3PO.contribute`): for each of the user's feedback preferences, the scope
  model decides from the request's embedding whether it applies; no LLM at request time. The
  applied ones carry the probability and the decision in their ``why``; the withheld ones are
  reported too, so the app can show why a feedback did *not* apply.
* **Adapter level**: the same dataset trains a LoRA with C3PO's objective
  (:mod:`persona.adapters.c3po`).

Scope models are cached per feedback id and scope revision (both never reused), read fresh
from SQL on every request, so an edit made by another process is seen on the next call.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.language_models import BaseChatModel

from persona.errors import ConflictError, InvalidInputError, NotFoundError, PersonaError
from persona.learn.base import Contribution, Request, Writing
from persona.learn.c3po_data import (
    Cost,
    DatasetBuilder,
    DatasetConfig,
    describe_scope,
    load_pool,
)
from persona.learn.request_words import WordVectors, request_words
from persona.learn.scope import THRESHOLD, ScopeModel
from persona.learn.scope_questions import (
    MAX_HISTORY_CHARS,
    POOL_CANDIDATES,
    normalize,
    pick_uncertain,
    pool_vectors,
)
from persona.learn.scope_words import GENERIC, facets, scope_facets, scope_phrases
from persona.store.base import Store
from persona.store.embed import Embedder, embedder_id
from persona.types import AppliedPreference, Feedback, Preference, ScopeQuestion, Why

_FEEDBACK_REF = re.compile(r"^feedback:(\d+)$")


@dataclass(frozen=True)
class C3POConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    threshold: float = THRESHOLD
    cache_size: int = 1024  # scope models kept in memory (across users)
    # a feedback preference with no feedback event applies at this cosine (the rule of the
    # release before C3PO)
    orphan_similarity: float = 0.25


#: Where a candidate question that is not the user's own request comes from.
GENERAL_SOURCES = frozenset({"written for this feedback", "general requests"})


#: How many times :meth:`C3PO.edit_scope` redoes a change that another writer's change to
#: the same scope overtook (each try refits; a conflict needs two writers within a fit).
EDIT_TRIES = 5


def scope_words_of(dataset: dict[str, Any]) -> list[str]:
    """The scope words a dataset's model matches requests against: those of the scope the
    user named (``edit_scope(scope=...)``), else the feedback's own, read today."""
    named = [w for w in facets(dataset.get("scope_named") or "") if w not in GENERIC]
    return named or scope_facets(dataset["feedback"], dataset.get("scope", []))


def refreshed(dataset: dict[str, Any]) -> dict[str, Any] | None:
    """The dataset with today's reading of the feedback's scope phrases in place of the
    reading it was built with, or None when nothing changes. A scope the user named is never
    replaced, and neither are datasets that did not record their reading (``scope_read``,
    stored since this release): those cannot tell a reading from a user's name."""
    read = dataset.get("scope_read")
    if read is None or dataset.get("scope_named"):
        return None
    today = scope_phrases(dataset["feedback"])
    if today == list(read):
        return None
    written = [s for s in dataset.get("scope", []) if s not in read]  # the LLM's phrase
    return {**dataset, "scope": list(dict.fromkeys([*today, *written])), "scope_read": today}


def stale(model: ScopeModel, dataset: dict[str, Any]) -> bool:
    """True when ``model`` was fitted on other scope phrases or words than ``dataset`` has."""
    anchors = [dataset["feedback"], *dataset.get("scope", [])]
    return model.anchors != anchors or model.facets != scope_words_of(dataset)


def scope_model_for(dataset: dict[str, Any], embedder: Embedder) -> ScopeModel:
    """Fit the scope model of a feedback's dataset."""
    wanted = {normalize(t) for t in dataset.get("user_in_scope", [])}
    return ScopeModel.fit(
        embedder,
        embedder_id(embedder),
        anchors=[dataset["feedback"], *dataset.get("scope", [])],
        positives=[*dataset["in_scope"]["train"], *dataset.get("user_in_scope", [])],
        negatives=[*dataset["near_scope"]["train"], *dataset.get("user_out_of_scope", [])],
        # a general request the user said it applies to is no longer a negative
        pool=[t for t in dataset["out_of_scope"]["train"] if normalize(t) not in wanted],
        facets=scope_words_of(dataset),
    )


def _feedback_id(pref: Preference) -> int | None:
    for ref in pref.provenance:
        m = _FEEDBACK_REF.match(ref)
        if m:
            return int(m.group(1))
    return None


class C3PO:
    """Learns scoped feedback and applies it only in scope."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        llm: Callable[[], BaseChatModel] | None,
        config: C3POConfig | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.cache_dir = cache_dir  # where the pool's embeddings are kept (None: memory only)
        self.embedder = embedder
        self.llm = llm
        self.config = config or C3POConfig()
        self.last_cost: Cost | None = None  # of the latest learn() (the benchmark reads it)
        # Makes the dataset builder; the benchmark swaps in one that caches generated datasets.
        self.builder: Callable[[BaseChatModel | None, DatasetConfig], DatasetBuilder] = (
            DatasetBuilder
        )
        self._cache: OrderedDict[tuple[int, int], ScopeModel] = OrderedDict()
        self._lock = threading.Lock()
        self._words = WordVectors(embedder)  # the requests' words, for the scope words
        # the shipped pool, embedded once for questions; its own lock, so that embedding it
        # never holds up requests waiting on the scope-model cache
        self._pool: tuple[list[str], np.ndarray] | None = None
        self._pool_lock = threading.Lock()

    # -- learning ---------------------------------------------------------------------------
    def build(
        self, feedback: str, in_scope: Sequence[str], out_of_scope: Sequence[str]
    ) -> tuple[dict[str, Any], ScopeModel, Cost]:
        """The dataset and scope model of one feedback (LLM calls; nothing is written)."""
        cfg = self.config.dataset
        llm = self.llm() if (self.llm is not None and cfg.generate) else None
        dataset, cost = self.builder(llm, cfg).build(feedback, in_scope, out_of_scope)
        return dataset, scope_model_for(dataset, self.embedder), cost

    def learn(
        self,
        writing: Writing,
        user_id: str,
        feedback: str,
        in_scope: Sequence[str],
        out_of_scope: Sequence[str],
    ) -> Preference:
        """Build the dataset (outside any transaction), then store everything in one."""
        t0 = time.perf_counter()
        dataset, model, cost = self.build(feedback, in_scope, out_of_scope)
        vec = self.embedder.embed([feedback])[0]
        cost.seconds = round(time.perf_counter() - t0, 3)
        dataset["cost"]["seconds"] = cost.seconds
        self.last_cost = cost
        with writing(user_id) as write:
            event = write.store.add_feedback(
                user_id,
                feedback,
                in_scope,
                out_of_scope,
                dataset=dataset,
                scope_model=model.to_json(),
            )
            return write.add_preference(
                feedback,
                "feedback",
                context=feedback,
                embedding=vec,
                scope=describe_scope(dataset),
                provenance=(f"feedback:{event.id}",),
            )

    def edit_scope(
        self,
        writing: Writing,
        user_id: str,
        pref: Preference,
        *,
        scope: str | None,
        add_in_scope: Sequence[str],
        add_out_of_scope: Sequence[str],
    ) -> Preference:
        """Widen or narrow a feedback's scope: rename it, or add examples on either side.

        No LLM call: the scope model is refitted on the changed dataset, outside the write
        transaction; the write lands only if no other change to this scope landed since the
        feedback was read, else the edit is redone on the newer row (:data:`EDIT_TRIES`).
        """
        fid = _feedback_id(pref)
        if fid is None:
            raise InvalidInputError(
                f"preference {pref.id} was not learned from feedback, so it has no scope to "
                "edit; give it a context with update_preference instead."
            )
        for _ in range(EDIT_TRIES):
            # the revision is read before the row: a change landing in between fails the write
            rev = self.store.scope_revisions(user_id).get(fid)
            fb = self.store.get_feedback(user_id, fid)
            if rev is None:  # deleted in between (get_feedback raised otherwise)
                raise NotFoundError(f"{user_id!r} has no feedback {fid}.")
            dataset = fb.dataset or self._fallback(fb.text, fb.in_scope, fb.out_of_scope)
            dataset = refreshed(dataset) or dataset
            ins = list(dict.fromkeys([*fb.in_scope, *add_in_scope]))
            outs = list(dict.fromkeys([*fb.out_of_scope, *add_out_of_scope]))
            # An example moved to the other side leaves the side it was on.
            ins = [t for t in ins if t not in set(add_out_of_scope)]
            outs = [t for t in outs if t not in set(add_in_scope)]
            dataset = {**dataset, "user_in_scope": ins, "user_out_of_scope": outs}
            if scope is not None:
                dataset["scope"] = [scope]
                dataset["scope_named"] = scope
            model = scope_model_for(dataset, self.embedder)
            try:
                with writing(user_id) as write:
                    write.store.update_feedback(
                        user_id,
                        fid,
                        in_scope=ins,
                        out_of_scope=outs,
                        dataset=dataset,
                        scope_model=model.to_json(),
                        revision=rev,
                    )
                    return write.store.update_preference(
                        user_id, pref.id, scope=describe_scope(dataset)
                    )
            except ConflictError:
                continue  # another change landed first: redo this one on top of it
        raise ConflictError(
            f"the scope of preference {pref.id} kept changing while this edit was being "
            f"made ({EDIT_TRIES} tries); nothing of this edit was saved, try it again."
        )

    def _fallback(
        self, feedback: str, in_scope: Sequence[str], out_of_scope: Sequence[str]
    ) -> dict[str, Any]:
        """The dataset of feedback stored before C3PO (or imported without one): no LLM."""
        cfg = DatasetConfig(**{**self.config.dataset.__dict__, "generate": False})
        return DatasetBuilder(None, cfg).build(feedback, in_scope, out_of_scope)[0]

    # -- asking -----------------------------------------------------------------------------
    def questions(
        self,
        user_id: str,
        pref: Preference,
        candidates: Sequence[str] | None,
        k: int,
        *,
        recent: Sequence[str] = (),
    ) -> list[ScopeQuestion]:
        """Up to ``k`` requests where this feedback's scope model is least sure, for the user
        to judge (:mod:`persona.learn.scope_questions`). ``candidates``: those requests only;
        None: the user's own (edited requests, labeled prompts, other feedbacks' examples),
        prompts written for this feedback but not learned from, and the general requests
        nearest it; ``recent`` requests (the user's latest) are weighed with either. Requests
        already given as this feedback's examples are never asked."""
        fid = _feedback_id(pref)
        revisions = self.store.scope_revisions(user_id)
        if fid is None or fid not in revisions:
            raise InvalidInputError(
                f"preference {pref.id} was not learned from feedback, so it has no scope to "
                "ask about; pick a preference learned with learn_from_feedback."
            )
        model = self._model(user_id, pref, fid, revisions[fid])
        if model is None:  # deleted meanwhile
            return []
        texts, sources = self.candidates(user_id, fid, candidates, model.anchor_vecs, recent)
        if not texts:
            return []
        vecs = self.embedder.embed(texts)
        probs = [
            model.probability(v, self._words.embed(request_words(t)) if model.facets else None)
            for t, v in zip(texts, vecs, strict=True)
        ]
        own = [src not in GENERAL_SOURCES for src in sources]
        chosen = pick_uncertain(probs, vecs, k, threshold=model.threshold, own=own)
        return [
            ScopeQuestion(texts[i], round(probs[i], 4), probs[i] >= model.threshold, sources[i])
            for i in chosen
        ]

    def candidates(
        self,
        user_id: str,
        fid: int,
        given: Sequence[str] | None,
        anchors: np.ndarray,
        recent: Sequence[str] = (),
    ) -> tuple[list[str], list[str]]:
        """The requests :meth:`questions` chooses from, each with where it came from; the
        general ones are those nearest ``anchors`` (the feedback's own words, embedded)."""
        fb = self.store.get_feedback(user_id, fid)
        seen = {normalize(t) for t in (*fb.in_scope, *fb.out_of_scope)}
        texts: list[str] = []
        sources: list[str] = []

        def offer(items: Sequence[str], source: str, limit: int | None) -> None:
            for text in items:
                key = normalize(text)
                if key and key not in seen and (limit is None or len(text) <= limit):
                    seen.add(key)
                    texts.append(text)
                    sources.append(source)

        offer(recent, "your recent requests", MAX_HISTORY_CHARS)
        if given is not None:
            offer(given, "given", None)
        else:
            cap = MAX_HISTORY_CHARS
            offer([e.context for e in self.store.list_edits(user_id)], "your edits", cap)
            offer([lb.prompt for lb in self.store.list_labels(user_id)], "your labeled pairs", cap)
            others = [f for f in self.store.list_feedback(user_id) if f.id != fid]
            offer([t for f in others for t in (*f.in_scope, *f.out_of_scope)], "your feedback", cap)
            data = fb.dataset or {}
            written = [
                t for g in ("in_scope", "near_scope") for t in data.get(g, {}).get("test", [])
            ]
            offer(written, "written for this feedback", cap)
            offer(self._nearest_pool(anchors), "general requests", cap)
        return texts, sources

    def _nearest_pool(self, anchors: np.ndarray) -> list[str]:
        """The shipped pool's requests nearest the feedback's own words (its embeddings are
        computed once, and kept in ``cache_dir`` for the next process)."""
        with self._pool_lock:
            if self._pool is None:
                pool = list(load_pool())
                self._pool = (pool, pool_vectors(self.embedder, pool, self.cache_dir))
            pool, vecs = self._pool
        if not len(anchors):
            return []
        near = (vecs @ anchors.T).max(axis=1)
        return [pool[i] for i in np.argsort(-near)[:POOL_CANDIDATES]]

    # -- applying ---------------------------------------------------------------------------
    def _model(self, user_id: str, pref: Preference, fid: int, rev: int) -> ScopeModel | None:
        """The feedback's scope model at revision ``rev``: cached, else the stored one, else
        (stored by an older release, fitted on an older reading of the feedback's scope, or
        imported without one) refitted and stored for the other processes."""
        key = (fid, rev)
        with self._lock:
            model = self._cache.get(key)
            if model is not None:
                self._cache.move_to_end(key)
                return model
        try:
            # the model (with its revision) first: a row read after it is never older
            stored_rev, data = self.store.scope_model(user_id, fid)
            fb = self.store.get_feedback(user_id, fid)
        except NotFoundError:  # deleted since the revisions were read
            return None
        dataset = (refreshed(fb.dataset) or fb.dataset) if fb.dataset else None
        ours = data is not None and data.get("embedder") == embedder_id(self.embedder)
        model = None
        if ours:
            with contextlib.suppress(ValueError):  # stored by an older release: refit
                model = ScopeModel.from_json(data)  # type: ignore[arg-type]
        if model is not None and dataset is not None and stale(model, dataset):
            model = None
        if model is None:
            basis = dataset or self._fallback(fb.text, fb.in_scope, fb.out_of_scope)
            model = scope_model_for(basis, self.embedder)
            # a model stored under another embedder is that embedder's: refit in memory only
            if dataset is not None and (ours or data is None):
                self._save(user_id, pref, fb, stored_rev, dataset, model)
        model.threshold = self.config.threshold
        with self._lock:
            self._cache[(fid, stored_rev)] = model
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        return model

    def _save(
        self,
        user_id: str,
        pref: Preference,
        fb: Feedback,
        rev: int,
        dataset: dict[str, Any],
        model: ScopeModel,
    ) -> None:
        """Store a model refitted on the request path, so that no other process refits it.
        Skipped when another change to the scope landed since revision ``rev`` (it is newer),
        or when the store cannot take the write now: the request is served either way."""
        scope = describe_scope(dataset)
        with contextlib.suppress(PersonaError):
            with self.store.transaction():
                self.store.update_feedback(
                    user_id,
                    fb.id,
                    in_scope=fb.in_scope,
                    out_of_scope=fb.out_of_scope,
                    dataset=dataset,
                    scope_model=model.to_json(),
                    revision=rev,
                )
                if pref.scope != scope:
                    self.store.update_preference(user_id, pref.id, scope=scope)

    def _orphan(self, pref: Preference, near: dict[int, float]) -> AppliedPreference | None:
        """A feedback preference whose feedback event is gone (imported without it): no
        dataset to learn a scope from, so the similarity rule decides, on the nearest rows
        the request already found (no model is fitted on the request path)."""
        sim = near.get(pref.id)
        if sim is None:
            return None
        verdict = "applies" if sim >= self.config.orphan_similarity else "does not apply"
        why = (
            f"C3PO scope: no feedback dataset, similarity rule {verdict} "
            f"({sim:.2f}, applies at >= {self.config.orphan_similarity:.2f})"
        )
        return AppliedPreference(pref.id, pref.text, sim, Why(sim, why, pref.provenance))

    def contribute(self, request: Request) -> Contribution:
        t0 = time.perf_counter()
        prefs = [
            p
            for p in self.store.list_preferences(
                request.user_id, enabled_only=True, source="feedback"
            )
            if not p.flagged
        ]
        revisions = self.store.scope_revisions(request.user_id) if prefs else {}
        applied: list[AppliedPreference] = []
        withheld: list[AppliedPreference] = []
        near = {hit.preference.id: hit.similarity for hit in request.nearest}
        word_vecs: np.ndarray | None = None  # the request's words, embedded once if needed
        for pref in prefs:
            fid = _feedback_id(pref)
            if fid is None or fid not in revisions:  # its feedback event is gone
                orphan = self._orphan(pref, near)
                if orphan is not None:
                    fits = orphan.score >= self.config.orphan_similarity
                    (applied if fits else withheld).append(orphan)
                continue
            model = self._model(request.user_id, pref, fid, revisions[fid])
            if model is None:
                continue
            if word_vecs is None and model.facets:
                word_vecs = self._words.embed(request_words(request.context))
            decision = model.decide(request.embedding, word_vecs)
            item = AppliedPreference(
                pref.id,
                pref.text,
                decision.probability,
                Why(None, f"C3PO scope: {decision.reason}", pref.provenance),
            )
            (applied if decision.applies else withheld).append(item)
        applied.sort(key=lambda p: -p.score)
        return Contribution(
            preferences=tuple(applied),
            withheld=tuple(withheld),
            timings={"scope_ms": (time.perf_counter() - t0) * 1e3},
        )

    def forget(self, user_id: str) -> None:
        """Cached scope models are keyed by feedback id and revision, which are never reused,
        so a deleted user's entries can never be served again; they age out of the LRU."""
