"""Preferences the user stated: told directly (``add_preference``) or as verbal feedback.

* A preference with no context applies to every request ("global").
* One tied to a context (a manual preference with ``context=``, or a feedback anchored on its
  own text and its in-scope examples) applies to requests whose context is similar to it:
  the ``top_k`` nearest with cosine >= ``min_similarity``.

C3PO's learned scope replaces the similarity rule for feedback in its own module.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from persona.learn.base import Contribution, Request, Writing
from persona.store.base import Store
from persona.store.embed import Embedder
from persona.types import AppliedPreference, Preference, Why

#: The sources this learner applies.
STATED = frozenset({"manual", "feedback"})


@dataclass(frozen=True)
class StatedConfig:
    top_k: int = 5  # contextual preferences applied per request
    min_similarity: float = 0.25  # below this cosine a context does not match


class Stated:
    """Applies global stated preferences everywhere and contextual ones where similar."""

    def __init__(self, store: Store, config: StatedConfig | None = None) -> None:
        self.store = store
        self.config = config or StatedConfig()

    def learn_feedback(
        self,
        writing: Writing,
        user_id: str,
        feedback: str,
        in_scope: Sequence[str],
        out_of_scope: Sequence[str],
        embedder: Embedder,
    ) -> Preference:
        """Store the feedback as an event and as a preference anchored on its own text and its
        in-scope examples: it applies to requests similar to them, not everywhere."""
        anchor = "\n".join([feedback, *in_scope])
        vec = embedder.embed([anchor])[0]
        with writing(user_id) as write:
            event = write.store.add_feedback(user_id, feedback, in_scope, out_of_scope)
            return write.add_preference(
                feedback,
                "feedback",
                context=anchor,
                embedding=vec,
                provenance=(f"feedback:{event.id}",),
            )

    def contribute(self, request: Request) -> Contribution:
        t0 = time.perf_counter()
        globals_ = [
            p
            for p in self.store.list_preferences(
                request.user_id, enabled_only=True, global_only=True
            )
            if not p.flagged
        ]
        sql_ms = (time.perf_counter() - t0) * 1e3
        applied = [
            AppliedPreference(p.id, p.text, 1.0, Why(None, "global (no context)", p.provenance))
            for p in globals_
        ]
        k, floor = self.config.top_k, self.config.min_similarity
        applied += request.pick(STATED, k, floor, f"similar context (top-{k}, >= {floor})")
        return Contribution(preferences=tuple(applied), timings={"sql_ms": sql_ms})

    def forget(self, user_id: str) -> None:
        """Nothing is cached per user."""
