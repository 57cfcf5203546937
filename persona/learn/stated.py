"""Preferences the user stated: told directly (``add_preference``) or as verbal feedback.

* A preference with no context applies to every request ("global").
* One tied to a context (a manual preference with ``context=``) applies to requests whose
  context is similar to it: the ``top_k`` nearest with cosine >= ``min_similarity``.

Verbal feedback is C3PO's (:mod:`persona.learn.c3po`): its learned scope decides.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from persona.learn.base import Contribution, Request
from persona.store.base import Store
from persona.types import AppliedPreference, Why

#: The sources this learner applies (feedback is C3PO's, see :mod:`persona.learn.c3po`).
STATED = frozenset({"manual"})


@dataclass(frozen=True)
class StatedConfig:
    top_k: int = 5  # contextual preferences applied per request
    min_similarity: float = 0.25  # below this cosine a context does not match


class Stated:
    """Applies global stated preferences everywhere and contextual ones where similar."""

    def __init__(self, store: Store, config: StatedConfig | None = None) -> None:
        self.store = store
        self.config = config or StatedConfig()

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
