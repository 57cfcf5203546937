"""FSPO: few-shot preference optimization (Singh et al. 2025), on persona's learner shape.

A user labels pairs ("for this question, this answer ≻ that one"). FSPO conditions a model on
a few of the *same user's* pairs and asks it for the preferred answer to a new question:

* **Learning** (:meth:`FSPO.learn`) stores the pair with its question's embedding. With
  ``describe=True`` (off by default, as in the reference) the LLM also writes a short *user
  description* from the labels, refreshed whenever a label is added or deleted; it is a
  preference (source ``label``) the user reads, edits or switches off — once the user edits
  it, their words are kept and never overwritten.
* **Conditioning** (:meth:`FSPO.contribute`): the ``shots`` pairs whose questions are nearest
  to the request go into ``Conditioning.examples`` and into the prompt in the reference's
  layout (``# Example i`` / ``## Question`` / ``## Preferred Response`` / ``## Dispreferred
  Response``, then ``# Task``); no LLM at request time.
* **Reward** (``layer.score``): a personalized score per candidate answer. Two scorers share
  one interface (:class:`~persona.learn.fspo_scorer.Scorer`): :class:`LLMJudge` compares each
  answer's log-likelihood under the few-shot context with its log-likelihood without it; the
  learned scorer (:mod:`persona.learn.fspo_scorer`) fits the user's pairs over answer
  embeddings with a prior meta-learned across users, FSPO's "users as tasks" on a light model.

The offline half (meta-training a shared adapter on synthetic users) lives in
:mod:`persona.adapters.fspo`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from persona.errors import InvalidInputError, ModelError, PersonaError
from persona.learn import prompts
from persona.learn.base import Contribution, Request, Writing
from persona.learn.guard import as_data, looks_like_injection
from persona.store.base import Store
from persona.store.embed import Embedder
from persona.types import AppliedPreference, Label, Preference, Why

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from persona.learn.fspo_scorer import Prior, Scorer, Shot

log = logging.getLogger(__name__)

ScorerName = Literal["learned", "llm"]
SCORERS: tuple[str, ...] = ("learned", "llm")


@dataclass(frozen=True)
class FSPOConfig:
    shots: int = 4  # pairs placed in context (the reference: 4 for ELIX, 8 for Review/Roleplay)
    # Infer a user description from the labels with the LLM (off, as in the reference).
    describe: bool = False
    describe_shots: int = 8  # the most recent pairs the description is written from
    # Each text of a pair is cut to this many characters in the prompt (the local model's
    # context is 8,192 tokens; four long pairs would not fit).
    max_chars: int = 1200
    scorer: ScorerName = "learned"  # what layer.score() uses
    score_shots: int = 64  # the nearest pairs the learned scorer fits per call


# -- FSPO's layout -------------------------------------------------------------------------------


def _block(text: str, limit: int) -> str:
    """A stored text inside the few-shot layout: line breaks kept (format is what users label),
    each line rendered as data, and a leading ``#`` escaped so that an answer's own heading
    cannot open a fake ``# Task``."""
    text = text if len(text) <= limit else text[:limit].rstrip() + " …"
    lines = [as_data(line) for line in text.splitlines()]
    out = "\n".join("\\" + ln if ln.startswith("#") else ln for ln in lines)
    return re.sub(r"\n{3,}", "\n\n", out).strip()


def format_shots(shots: Sequence[Shot], *, limit: int = 1200) -> str:
    """The pairs in FSPO's ``# Example i`` layout."""
    return "\n\n".join(
        prompts.FSPO_SHOT.format(
            i=i,
            question=_block(s.prompt, limit),
            chosen=_block(s.chosen, limit),
            rejected=_block(s.rejected, limit),
        )
        for i, s in enumerate(shots, 1)
    )


def few_shot_prompt(
    shots: Sequence[Shot], question: str, *, description: str | None = None, limit: int = 1200
) -> str:
    """The whole FSPO prompt: examples, the optional user description, the task."""
    parts = [format_shots(shots, limit=limit)] if shots else []
    if description:
        parts.append(prompts.FSPO_DESCRIPTION.format(description=as_data(description)))
    parts.append(prompts.FSPO_TASK.format(question=question.strip()))
    return "\n\n".join(parts)


# -- the learner ---------------------------------------------------------------------------------

DESCRIPTION_SCOPE = "every request (described from your labeled pairs)"


class FSPO:
    """Stores labeled pairs, places the nearest few in context, keeps the optional description."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        llm: Callable[[], BaseChatModel],
        config: FSPOConfig | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self._llm = llm
        self.config = config or FSPOConfig()
        # Label ids are never reused (AUTOINCREMENT), so a vector cached by id is never stale;
        # only rows stored before labels kept their embedding are embedded here.
        self._vectors: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self._scorer: Scorer | None = None

    # -- learning --------------------------------------------------------------------------
    def learn(
        self, writing: Writing, user_id: str, prompt: str, chosen: str, rejected: str
    ) -> Label:
        vec = self.embedder.embed([prompt])[0]
        label = self.store.add_label(user_id, prompt, chosen, rejected, embedding=vec)
        if self.config.describe:
            self.refresh_description(writing, user_id)
        return label

    def delete(self, writing: Writing, user_id: str, label_id: int) -> None:
        self.store.delete_label(user_id, label_id)
        with self._lock:
            self._vectors.pop(label_id, None)
        if self.config.describe:
            self.refresh_description(writing, user_id)

    def description(self, user_id: str) -> Preference | None:
        found = self.store.list_preferences(user_id, source="label")
        return found[0] if found else None

    def refresh_description(self, writing: Writing, user_id: str) -> Preference | None:
        """Rewrite the user description from the most recent labels (one LLM call, made
        outside any transaction). A description the user edited is kept as they wrote it; a
        failing LLM leaves the old one in place (the labels are already stored)."""
        current = self.description(user_id)
        if current is not None and "manual:edit" in current.provenance:
            return current
        labels = self.store.list_labels(user_id)[-self.config.describe_shots :]
        if not labels:
            if current is not None:
                with writing(user_id) as write:
                    current = self.description(user_id)  # again, under the write lock
                    if current is not None and "manual:edit" in current.provenance:
                        return current
                    if current is not None:
                        self.store.delete_preference(user_id, current.id)
                        write.removed.append(current.id)
            return None
        from persona.llm import complete

        ask = prompts.FSPO_DESCRIBE.format(shots=format_shots(labels, limit=self.config.max_chars))
        try:
            text = _one_description(complete(self._llm(), ask).text)
        except PersonaError as exc:
            log.warning("user description not refreshed for %r: %s", user_id, exc)
            return current
        provenance = tuple(f"label:{lb.id}" for lb in labels)
        with writing(user_id) as write:
            # read again under the user's write lock: the user may have edited it (or another
            # refresh written one) while the LLM was writing this one
            current = self.description(user_id)
            if current is not None and "manual:edit" in current.provenance:
                return current
            if current is None:
                return write.add_preference(
                    text, "label", scope=DESCRIPTION_SCOPE, provenance=provenance
                )
            write.rebuild = True
            return self.store.update_preference(
                user_id,
                current.id,
                text=text,
                provenance=provenance,
                flagged=looks_like_injection(text),
            )

    # -- conditioning ----------------------------------------------------------------------
    def nearest(self, user_id: str, embedding: np.ndarray, n: int) -> list[Label]:
        """The user's ``n`` labels whose questions are nearest to ``embedding``."""
        stored = self.store.label_vectors(user_id)
        if not stored or n <= 0:
            return []
        ids = sorted(stored)
        with self._lock:
            missing = [i for i in ids if i not in self._vectors]
        fresh = {i: v for i, v in stored.items() if v is not None and v.shape == embedding.shape}
        todo = [i for i in missing if i not in fresh]
        if todo:  # one batch for every label not embedded yet
            found = self.store.get_labels(user_id, todo)
            if found:
                vecs = self.embedder.embed([lb.prompt for lb in found])
                fresh.update({lb.id: vec for lb, vec in zip(found, vecs, strict=True)})
        with self._lock:
            self._vectors.update({i: fresh[i] for i in missing if i in fresh})
            have = [i for i in ids if i in self._vectors]
            mat = np.stack([self._vectors[i] for i in have]) if have else None
        if mat is None:
            return []
        sims = mat @ np.asarray(embedding, dtype=np.float32)
        order = np.argsort(-sims, kind="stable")[:n]
        return self.store.get_labels(user_id, [have[i] for i in order])

    def contribute(self, request: Request) -> Contribution:
        t0 = time.perf_counter()
        shots = self.nearest(request.user_id, request.embedding, self.config.shots)
        applied: tuple[AppliedPreference, ...] = ()
        desc = self.description(request.user_id) if shots else None
        if desc is not None and desc.enabled and not desc.flagged:
            why = Why(None, f"user description from {len(desc.provenance)} labeled pairs")
            applied = (AppliedPreference(desc.id, desc.text, 1.0, why),)
        ms = (time.perf_counter() - t0) * 1e3
        return Contribution(preferences=applied, examples=tuple(shots), timings={"fspo_ms": ms})

    def forget(self, user_id: str) -> None:
        """Nothing per user to drop: cached vectors are keyed by ids that are never reused."""

    # -- the personalized reward -------------------------------------------------------------
    def score(self, user_id: str, prompt: str, responses: Sequence[str]) -> list[float]:
        """Higher = this user is predicted to prefer the response more."""
        if not responses:
            return []
        scorer = self.scorer()
        n = self.config.shots if self.config.scorer == "llm" else self.config.score_shots
        shots = self.nearest(user_id, self.embedder.embed([prompt])[0], n)
        return [float(s) for s in scorer.score(shots, prompt, responses)]

    def scorer(self) -> Scorer:
        with self._lock:
            if self._scorer is None:
                if self.config.scorer == "llm":
                    self._scorer = LLMJudge(self._llm(), limit=self.config.max_chars)
                else:
                    from persona.learn.fspo_scorer import LearnedScorer, load_prior
                    from persona.store.embed import embedder_id

                    shipped = load_prior()
                    prior: Prior | None = shipped
                    if shipped.embedder != embedder_id(self.embedder):
                        # the shipped prior is MiniLM's; another embedder learns from N(0, I)
                        log.info("FSPO prior is for %s: scoring without it", shipped.embedder)
                        prior = None
                    self._scorer = LearnedScorer(self.embedder, prior)
            return self._scorer


def _one_description(reply: str) -> str:
    """The first non-empty paragraph of the LLM's answer, without a repeated header."""
    text = re.sub(r"^#+\s*user description\s*:?", "", reply.strip(), flags=re.I).strip()
    para = next((p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()), "")
    para = " ".join(para.split())
    if len(para) < 8 or para.startswith("#"):
        raise ModelError(f"the LLM wrote no usable user description ({reply[:80]!r}).")
    return para[:400]


# -- scorer (a): the LLM as a few-shot judge --------------------------------------------------


class LLMJudge:
    """FSPO's model as a judge: ``log p(answer | the user's pairs, question) − log p(answer |
    question)``. The difference removes what the model thinks of the answer regardless of
    the user (its length, its fluency) and keeps what the user's pairs add.

    Needs a chat model that returns the log-likelihood of a given answer (the local model's
    ``loglikelihood``); a served model behind a chat API does not expose it.
    """

    name = "llm-judge"

    def __init__(self, model: Any, *, limit: int = 1200) -> None:
        if not callable(getattr(model, "loglikelihood", None)):
            raise InvalidInputError(
                f"the LLM judge needs a model that exposes log-likelihoods, and "
                f"{type(model).__name__} does not; use the local model (llm='local') or "
                "scorer='learned'."
            )
        self.model = model
        self.limit = limit

    def score(self, shots: Sequence[Shot], prompt: str, responses: Sequence[str]) -> list[float]:
        if not responses:
            return []
        with_shots = self.model.loglikelihood(
            few_shot_prompt(shots, prompt, limit=self.limit), responses
        )
        plain = self.model.loglikelihood(few_shot_prompt((), prompt), responses)
        return [float(a - b) for a, b in zip(with_shots, plain, strict=True)]
