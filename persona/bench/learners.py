"""The learners compared by ``persona bench edits``, on the same rounds (PRELUDE, Table 2).

Each learner turns a round's context into what conditions generation (:meth:`prepare`) and
learns from the user's edit (:meth:`learn`):

* ``no-learning`` — nothing; ``oracle`` — the true latent preference;
* ``icl-edit-k`` — the k past (answer, edit) pairs of the closest contexts, as examples;
* ``agnostic`` — one running preference for every context (inferred from each edit, merged
  by the LLM with the running one);
* ``cipher-1`` / ``cipher-5`` — the :class:`~persona.PreferenceLayer` itself (CIPHER, the
  LLM aggregating the k retrieved preferences as in the paper); ``cipher-5-vote`` — the same
  layer on its default request path (the clauses most of the 5 retrieved preferences state,
  no LLM at request time); ``cipher-5-list`` — the deduplicated preferences (no LLM either);
  ``cipher-5-background`` — the LLM's aggregate of this set or of one differing by a single
  preference when one is made, else the vote (the aggregation runs between rounds, as it
  would while the user reads and edits);
* ``cipher-5+truth``, ``cipher-5-vote+truth`` (any CIPHER learner ``+truth``) — the same,
  with inference replaced by the round's true preference: what perfect inference would give
  (a diagnostic bound).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from persona.agents.fakes import ReplyChatModel
from persona.bench.env import Context, instruction, latent
from persona.bench.users import SimulatedUser
from persona.errors import LearningError, PersonaError
from persona.layer import PreferenceLayer
from persona.learn import prompts
from persona.learn.base import render_system_prompt
from persona.learn.cipher_model import Cipher
from persona.store.embed import Embedder
from persona.types import AppliedPreference, Conditioning, Why

LEARNERS = ("no-learning", "oracle", "icl-edit-5", "agnostic", "cipher-1", "cipher-5")
USER_ID = "bench-user"


@dataclass
class Prepared:
    """What conditions one round's generation."""

    conditioning: Conditioning = field(default_factory=Conditioning)
    description: str | None = None  # the preference in words, if the learner has one
    retrieved_sources: list[str] = field(default_factory=list)  # sources of retrieved items
    message: str | None = None  # a replacement user turn (ICL-edit's examples)
    call: dict[str, Any] = field(default_factory=dict)  # extra model-call arguments (adapter=)


def described(text: str) -> Conditioning:
    """A conditioning carrying one preference description."""
    applied = [AppliedPreference(0, text, 1.0, Why(None, "benchmark learner"))]
    return Conditioning(
        preferences=tuple(applied), system_prompt=render_system_prompt(applied, text), summary=text
    )


class Learner(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def tokens_in(self) -> int: ...

    @property
    def tokens_out(self) -> int: ...

    @property
    def failures(self) -> int: ...

    def prepare(self, ctx: Context) -> Prepared: ...

    def learn(self, ctx: Context, output: str, edited: str) -> None: ...


class NoLearning:
    name = "no-learning"
    tokens_in = tokens_out = failures = 0

    def prepare(self, ctx: Context) -> Prepared:
        return Prepared()

    def learn(self, ctx: Context, output: str, edited: str) -> None:
        return None


class Oracle(NoLearning):
    name = "oracle"

    def __init__(self, user: SimulatedUser) -> None:
        self.user = user

    def prepare(self, ctx: Context) -> Prepared:
        text = self.user.latent(ctx)
        return Prepared(described(text), text)


class ICLEdit(NoLearning):
    """Retrieve the k past (answer, edited) pairs of the most similar contexts as examples."""

    def __init__(self, embedder: Embedder, k: int = 5, max_words: int = 80) -> None:
        self.embedder, self.k, self.max_words = embedder, k, max_words
        self.name = f"icl-edit-{k}"
        self.history: list[tuple[np.ndarray, str, str, str]] = []  # (vec, source, out, edited)

    def _cut(self, text: str) -> str:
        words = text.split()
        return " ".join(words[: self.max_words]) + (" ..." if len(words) > self.max_words else "")

    def prepare(self, ctx: Context) -> Prepared:
        edited = [h for h in self.history if h[2].split() != h[3].split()]
        if not edited:
            return Prepared()
        q = self.embedder.embed([instruction(ctx)])[0]
        sims = np.array([float(q @ h[0]) for h in edited])
        top = [edited[i] for i in np.argsort(-sims)[: self.k]]
        examples = "\n\n".join(
            prompts.ICL_EDIT_EXAMPLE.format(i=i + 1, output=self._cut(o), edited=self._cut(e))
            for i, (_, _, o, e) in enumerate(top)
        )
        message = prompts.ICL_EDIT.format(examples=examples, message=instruction(ctx))
        return Prepared(retrieved_sources=[h[1] for h in top], message=message)

    def learn(self, ctx: Context, output: str, edited: str) -> None:
        vec = self.embedder.embed([instruction(ctx)])[0]
        self.history.append((vec, ctx.source, output, edited))


class Agnostic(NoLearning):
    """One running preference for all contexts, refined by every edit."""

    name = "agnostic"

    def __init__(self, llm: BaseChatModel) -> None:
        self.cipher = Cipher(llm)
        self.running: str | None = None

    @property
    def tokens_in(self) -> int:  # type: ignore[override]
        return self.cipher.tokens_in

    @property
    def tokens_out(self) -> int:  # type: ignore[override]
        return self.cipher.tokens_out

    def prepare(self, ctx: Context) -> Prepared:
        return Prepared(described(self.running), self.running) if self.running else Prepared()

    def learn(self, ctx: Context, output: str, edited: str) -> None:
        if output.split() == edited.split():
            return
        try:
            new = self.cipher.infer(output, edited)
            self.running = self.cipher.aggregate([new, self.running]) if self.running else new
        except LearningError:
            self.failures += 1


class CipherLearner(NoLearning):
    """The product: a :class:`PreferenceLayer` learning from edits with CIPHER-k."""

    def __init__(self, layer: PreferenceLayer, name: str) -> None:
        self.layer = layer
        self.name = name
        self.source_of: dict[int, str] = {}
        self.last_learned: str | None = None  # the preference stored from the last edit
        self.background_served: Counter[str] = Counter()  # each round's request got

    @property
    def tokens_in(self) -> int:  # type: ignore[override]
        return self.layer.cipher.cipher.tokens_in

    @property
    def tokens_out(self) -> int:  # type: ignore[override]
        return self.layer.cipher.cipher.tokens_out

    def prepare(self, ctx: Context) -> Prepared:
        # "background": the aggregation queued last round ran while the user read and edited
        self.layer.cipher.drain()
        before = self.layer.cipher.served.copy()
        cond = self.layer.condition(USER_ID, instruction(ctx))
        # this request's own (the accept rule may also retrieve, when learning)
        self.background_served.update(self.layer.cipher.served - before)
        learned = [p for p in cond.preferences if p.id in self.source_of]
        return Prepared(cond, cond.summary, [self.source_of[p.id] for p in learned])

    @property
    def aggregated(self) -> dict[str, int] | None:
        """``"background"``: how many rounds were served this set's LLM aggregate, a
        neighbouring set's, or the vote; None in the other modes."""
        if self.layer.cipher.config.aggregate != "background":
            return None
        return {k: self.background_served[k] for k in ("aggregate", "neighbour", "vote")}

    def learn(self, ctx: Context, output: str, edited: str) -> None:
        self.last_learned = None
        try:
            prefs = self.layer.learn_from_edit(USER_ID, instruction(ctx), output, edited)
        except LearningError:
            self.failures += 1
            return
        for pref in prefs:
            self.source_of[pref.id] = ctx.source
        self.last_learned = "; ".join(p.text for p in prefs) or None


class Told(ReplyChatModel):
    """CIPHER's LLM in :class:`TruthLearner`: while told a preference it answers with it (the
    inference); otherwise ``inner`` answers (the aggregation, in ``sync`` mode)."""

    inner: BaseChatModel | None = None
    told: str | None = None
    told_thread: int | None = None  # only this thread is told (a background aggregation is not)

    @property
    def _llm_type(self) -> str:
        return "persona-bench-told"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.inner is not None and (
            self.told is None or threading.get_ident() != self.told_thread
        ):
            reply = self.inner.invoke(messages, stop=stop, **kwargs)
            return ChatResult(generations=[ChatGeneration(message=reply)])
        return super()._generate(messages, stop, run_manager, **kwargs)

    def _reply(self, messages: list[BaseMessage]) -> str:
        return self.told or ""


class TruthLearner(CipherLearner):
    """CIPHER whose inference names the round's true latent preference; retrieval and
    aggregation are the layer's own ("cipher-5-vote+truth"). What CIPHER would save with
    perfect inference: a diagnostic bound, as the oracle is for the whole method."""

    def __init__(self, layer: PreferenceLayer, name: str, told: Told) -> None:
        super().__init__(layer, name)
        self.told = told

    def learn(self, ctx: Context, output: str, edited: str) -> None:
        self.told.told, self.told.told_thread = latent(ctx), threading.get_ident()
        try:
            super().learn(ctx, output, edited)
        finally:
            self.told.told = self.told.told_thread = None


class AdapterLearner(CipherLearner):
    """A per-user LoRA adapter retrained from the user's edits every ``every`` rounds
    (``persona train-adapters``' recipe), served by the local model; with ``cipher`` the
    layer's CIPHER-5 preferences are in the prompt too ("cipher-5+adapter-R")."""

    def __init__(
        self, layer: PreferenceLayer, name: str, every: int, cipher: bool, **config: Any
    ) -> None:
        super().__init__(layer, name)
        self.every, self.cipher, self.config = every, cipher, config
        self.rounds = 0
        self.folder: str | None = None
        self.trainings: list[dict[str, Any]] = []
        self.served = 0  # rounds answered through the user's adapter

    def prepare(self, ctx: Context) -> Prepared:
        prepared = super().prepare(ctx) if self.cipher else Prepared()
        if self.folder:
            prepared.call = {"adapter": self.folder}
            self.served += 1
        return prepared

    def learn(self, ctx: Context, output: str, edited: str) -> None:
        if self.cipher:
            super().learn(ctx, output, edited)
        else:  # the edit is only data for the adapter: no LLM inference
            self.layer.store.add_edit(USER_ID, instruction(ctx), output, edited)
        self.rounds += 1
        if self.rounds % self.every:
            return
        try:
            record = self.layer.train_adapter(USER_ID, **self.config)
        except LearningError:
            self.failures += 1
            return
        except PersonaError as exc:  # e.g. every edit so far was an acceptance
            self.trainings.append({"round": self.rounds, "error": str(exc)})
            return
        self.folder = self.layer.adapter_status(USER_ID)["path"]
        self.trainings.append(
            {
                "round": self.rounds,
                "pairs": record["rows"]["train_pairs"],
                "steps": record["steps"],
                "seconds": record["seconds"],
                "final_loss": record["losses"][-1] if record["losses"] else None,
            }
        )


def make_learner(
    name: str,
    *,
    llm: BaseChatModel,
    embedder: Embedder,
    user: SimulatedUser,
    home: str,
    min_similarity: float,
    cipher_min_similarity: float = 0.0,
    adapter_config: dict[str, Any] | None = None,
    cipher_infer_guidance: float = 1.0,
    cipher_infer_candidates: int = 1,
    cipher_edit_facts: bool = False,
    cipher_infer: str = "llm",
    cipher_keep_shown: bool = False,
) -> Learner:
    """Build a learner by name (see :data:`LEARNERS`)."""
    from persona.errors import InvalidInputError

    if name == "no-learning":
        return NoLearning()
    if name == "oracle":
        return Oracle(user)
    if name.startswith("icl-edit-") and name[9:].isdigit():
        return ICLEdit(embedder, int(name[9:]))
    if name == "agnostic":
        return Agnostic(llm)
    head, _, every = name.rpartition("adapter-")
    if every.isdigit() and int(every) > 0 and head in ("", "cipher-5+"):
        layer = PreferenceLayer.open(
            home,
            llm=llm,
            embedder=embedder,
            cipher_k=5,
            cipher_aggregate="sync",
            cipher_infer_guidance=cipher_infer_guidance,
            cipher_edit_facts=cipher_edit_facts,
            cipher_infer=cipher_infer,
            cipher_keep_shown=cipher_keep_shown,
        )
        return AdapterLearner(layer, name, int(every), bool(head), **(adapter_config or {}))
    base, plus, truth = name.partition("+")
    k, _, mode = base[7:].partition("-")
    if base.startswith("cipher-") and k.isdigit() and mode in ("", "list", "vote", "background"):
        if plus and truth != "truth":
            raise InvalidInputError(
                f"learner {name!r}: after '+' only 'truth' (inference replaced by the true "
                "preference) may follow, e.g. cipher-5-vote+truth."
            )
        told = Told(inner=llm) if plus else None
        layer = PreferenceLayer.open(
            home,
            llm=told or llm,
            embedder=embedder,
            cipher_k=int(k),
            min_similarity=min_similarity,
            cipher_min_similarity=cipher_min_similarity,
            cipher_infer_guidance=cipher_infer_guidance,
            cipher_infer_candidates=cipher_infer_candidates,
            cipher_edit_facts=cipher_edit_facts,
            cipher_infer=cipher_infer,
            cipher_keep_shown=cipher_keep_shown,
            # "cipher-K": the paper's CIPHER (the LLM aggregates the k retrieved preferences);
            # "cipher-K-vote": the layer's default request path (the clauses most of the k
            # state; no LLM); "cipher-K-list": the deduplicated list (no LLM);
            # "cipher-K-background": the LLM's aggregate of this set or of one differing by a
            # single preference when made, else the vote
            cipher_aggregate=mode or "sync",
        )
        return TruthLearner(layer, name, told) if told else CipherLearner(layer, name)
    raise InvalidInputError(
        f"unknown learner {name!r}; use one of {', '.join(LEARNERS)} (icl-edit-K, cipher-K, "
        "cipher-K-list, cipher-K-vote, cipher-K-background, cipher-K[-mode]+truth, adapter-R, "
        "cipher-5+adapter-R)."
    )
