"""The shape every learner has, and how contributions merge and render, so that
:class:`~persona.PreferenceLayer` only composes.

A learner learns from its signal (its own LLM calls, what it stores, its own caches) and, for
each request, *contributes* what applies: preferences with their score and reason, few-shot
examples, a summary line, an adapter. The layer validates the input, embeds the context
once, searches the user's FAISS index once, asks every learner, merges and renders::

    request = Request(user_id, context, embedding, nearest)   # nearest rows of every source
    parts = [learner.contribute(request) for learner in learners]
    conditioning = merge(parts)

Writes go through a :class:`Write`: one SQL transaction whose vector changes the layer applies
to the FAISS cache after commit (never while the write lock is held).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from persona.learn import prompts
from persona.learn.guard import as_data, looks_like_injection
from persona.store.base import Store
from persona.types import AppliedPreference, Conditioning, Label, Preference, Why


@dataclass(frozen=True)
class Hit:
    """A stored preference near the request, with the cosine of their contexts."""

    preference: Preference
    similarity: float


@dataclass(frozen=True)
class Request:
    """One ``condition()`` call, as every learner sees it."""

    user_id: str
    context: str
    embedding: np.ndarray
    nearest: tuple[Hit, ...]  # enabled, unflagged rows of every source, nearest first

    def pick(
        self, sources: Collection[str], k: int, floor: float, scope: str
    ) -> tuple[AppliedPreference, ...]:
        """The ``k`` nearest rows of these sources with cosine >= ``floor``, as applied
        preferences whose reason is ``scope``."""
        hits = [h for h in self.nearest if h.preference.source in sources]
        return tuple(
            AppliedPreference(
                h.preference.id,
                h.preference.text,
                h.similarity,
                Why(h.similarity, scope, h.preference.provenance),
            )
            for h in hits
            if h.similarity >= floor
        )[:k]


@dataclass(frozen=True)
class Contribution:
    """What one learner adds to a request's conditioning."""

    preferences: tuple[AppliedPreference, ...] = ()
    # Considered and not applied (a feedback out of its scope), with the reason.
    withheld: tuple[AppliedPreference, ...] = ()
    examples: tuple[Label, ...] = ()
    # One description standing for this learner's preferences (CIPHER's aggregate); when
    # set, it is what generation is conditioned on instead of the preferences' own texts.
    summary: str | None = None
    adapter: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        """What this contribution says to the model."""
        if self.summary:
            return [self.summary]
        return list(dict.fromkeys(p.text for p in self.preferences))


class Learner(Protocol):
    """A method (CIPHER, C3PO, FSPO, stated preferences): one module in ``persona/learn``."""

    def contribute(self, request: Request) -> Contribution:
        """What applies to this request."""
        ...

    def forget(self, user_id: str) -> None:
        """Drop every cache held for this user (the user was deleted or re-imported)."""
        ...


@dataclass
class Write:
    """The vector changes of one write transaction, applied to FAISS after it commits."""

    store: Store
    user_id: str
    before: int = 0
    after: int = 0
    added: list[tuple[int, Any]] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    # True when vectors changed in a way not listed above (e.g. ``enabled`` flipped): the
    # cached index is dropped and rebuilt from SQL on the next search.
    rebuild: bool = False

    def add_preference(self, text: str, source: str, **columns: Any) -> Preference:
        """Insert a preference row (flagged when it reads as an instruction)."""
        pref = self.store.add_preference(
            self.user_id, text, source, flagged=looks_like_injection(text), **columns
        )
        if columns.get("embedding") is not None:
            self.added.append((pref.id, columns["embedding"]))
        return pref


#: ``writing(user_id)``: a context manager around one write transaction (see :class:`Write`).
Writing = Callable[[str], AbstractContextManager[Write]]
#: ``search(user_id, embedding)``: the user's nearest enabled, unflagged rows.
Search = Callable[[str, np.ndarray], tuple[Hit, ...]]


def merged_summary(parts: Sequence[Contribution]) -> str | None:
    """One description for the whole request when some learner summarized its part."""
    if not any(part.summary for part in parts):
        return None
    return "; ".join(dict.fromkeys(t for part in parts for t in part.texts))


def merge(
    parts: Sequence[Contribution], timings: dict[str, float], adapter: dict[str, Any] | None
) -> Conditioning:
    """The learners' contributions as one :class:`Conditioning` (each preference once)."""
    applied = list({p.id: p for part in parts for p in part.preferences}.values())
    examples = tuple(e for part in parts for e in part.examples)
    summary = merged_summary(parts)
    for part in parts:
        for name, ms in part.timings.items():
            timings[name] = timings.get(name, 0.0) + ms
    names = [part.adapter for part in parts if part.adapter]
    return Conditioning(
        preferences=tuple(applied),
        withheld=tuple(p for part in parts for p in part.withheld),
        examples=examples,
        system_prompt=render_system_prompt(applied, summary, examples),
        adapter=names[0] if names else (adapter["name"] if adapter else None),
        summary=summary,
        timings=timings,
    )


def render_system_prompt(
    applied: Sequence[AppliedPreference], summary: str | None, examples: Sequence[Label] = ()
) -> str:
    """The preferences, then the user's labeled pairs, each inside a delimited data block
    (empty string when nothing applies)."""
    blocks = []
    if applied:
        texts = [summary] if summary else list(dict.fromkeys(p.text for p in applied))
        lines = "\n".join(f"- {as_data(t)}" for t in texts)
        blocks.append(prompts.SYSTEM_BLOCK.format(preferences=lines))
    if examples:
        from persona.learn.fspo import format_shots

        blocks.append(prompts.FSPO_SYSTEM.format(shots=format_shots(examples)))
    return "\n\n".join(blocks)
