"""The storage contract every backend implements (SQLite now, PostgreSQL next).

A backend keeps users, preferences (with their context embeddings) and the raw events the
preferences were learned from. Every method takes the ``user_id``; no call reads or returns
another user's rows. Vector search is not here: :class:`persona.store.index.VectorIndex`
caches each user's vectors in FAISS and rebuilds them from :meth:`Store.vectors`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from persona.types import Edit, Feedback, Label, Preference

#: Columns of a preference that :meth:`Store.update_preference` may change.
UPDATABLE = frozenset({"text", "enabled", "scope", "context", "embedding", "flagged", "provenance"})


class Store(ABC):
    """A per-user preference store. Writes are atomic; ``transaction()`` groups several."""

    # -- transactions ---------------------------------------------------------------------
    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Group writes: all of them land, or none (re-entrant)."""

    # -- users ----------------------------------------------------------------------------
    @abstractmethod
    def users(self) -> list[str]: ...

    @abstractmethod
    def has_user(self, user_id: str) -> bool: ...

    @abstractmethod
    def ensure_user(self, user_id: str) -> None: ...

    @abstractmethod
    def delete_user(self, user_id: str) -> None:
        """Delete every row of the user (preferences, events, adapters)."""

    # -- preferences ----------------------------------------------------------------------
    @abstractmethod
    def add_preference(
        self,
        user_id: str,
        text: str,
        source: str,
        *,
        context: str | None = None,
        embedding: np.ndarray | None = None,
        provenance: Sequence[str] = (),
        scope: str | None = None,
        enabled: bool = True,
        flagged: bool = False,
    ) -> Preference: ...

    @abstractmethod
    def get_preferences(self, user_id: str, ids: Sequence[int]) -> list[Preference]:
        """The user's preferences with these ids, in the order given; others' ids are skipped."""

    @abstractmethod
    def list_preferences(
        self,
        user_id: str,
        *,
        enabled_only: bool = False,
        source: str | None = None,
        global_only: bool = False,
    ) -> list[Preference]:
        """The user's preferences, oldest first; ``global_only``: those with no context and
        no scope (they apply to every request)."""

    @abstractmethod
    def update_preference(self, user_id: str, pref_id: int, **changes: Any) -> Preference:
        """Change some of :data:`UPDATABLE`; raises NotFoundError for another user's id."""

    @abstractmethod
    def delete_preference(self, user_id: str, pref_id: int) -> None: ...

    def vectors(self, user_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 (n,), embeddings float32 (n, dim)) of the user's enabled, embedded rows."""
        return self.snapshot(user_id)[1:]

    @abstractmethod
    def snapshot(self, user_id: str) -> tuple[int, np.ndarray, np.ndarray]:
        """``(index_version, ids, embeddings)`` read together from one consistent state."""

    @abstractmethod
    def vector_ids(self, user_id: str) -> tuple[int, np.ndarray]:
        """``(index_version, ids)`` of the user's enabled, embedded rows, from one state."""

    @abstractmethod
    def index_version(self, user_id: str) -> int:
        """0 when the user does not exist; otherwise a value that changes with every write
        to the user's vectors and never repeats, even after the user is deleted and
        re-created (a FAISS cache tagged with it can never be mistaken for current)."""

    # -- raw events ------------------------------------------------------------------------
    @abstractmethod
    def add_edit(self, user_id: str, context: str, output: str, edited: str) -> Edit: ...

    @abstractmethod
    def add_feedback(
        self,
        user_id: str,
        text: str,
        in_scope: Sequence[str] = (),
        out_of_scope: Sequence[str] = (),
        *,
        dataset: dict[str, Any] | None = None,
        scope_model: dict[str, Any] | None = None,
    ) -> Feedback: ...

    @abstractmethod
    def get_feedback(self, user_id: str, feedback_id: int) -> Feedback:
        """One of the user's feedback rows; NotFoundError for another user's id."""

    @abstractmethod
    def update_feedback(
        self,
        user_id: str,
        feedback_id: int,
        *,
        in_scope: Sequence[str],
        out_of_scope: Sequence[str],
        dataset: dict[str, Any],
        scope_model: dict[str, Any],
        revision: int | None = None,
    ) -> Feedback:
        """Replace the feedback's examples, dataset and scope model; its revision grows.

        ``revision``: write only if the scope revision is still this one (read before the
        feedback was), else :class:`ConflictError` and nothing is written; a read-modify-write
        then never overwrites a change that landed in between."""

    @abstractmethod
    def scope_revisions(self, user_id: str) -> dict[int, int]:
        """``{feedback id: scope revision}`` for the user's feedback (one cheap query)."""

    @abstractmethod
    def scope_model(self, user_id: str, feedback_id: int) -> tuple[int, dict[str, Any] | None]:
        """``(revision, scope model JSON or None)`` of one of the user's feedback rows."""

    @abstractmethod
    def add_label(
        self,
        user_id: str,
        prompt: str,
        chosen: str,
        rejected: str,
        embedding: np.ndarray | None = None,
    ) -> Label:
        """Store a labeled pair (with its prompt's embedding, for retrieval)."""

    @abstractmethod
    def label_vectors(self, user_id: str) -> dict[int, np.ndarray | None]:
        """Every label id of the user with its prompt embedding (None: not embedded yet)."""

    @abstractmethod
    def get_labels(self, user_id: str, ids: Sequence[int]) -> list[Label]:
        """These labels of the user, in the order of ``ids`` (missing ones skipped)."""

    @abstractmethod
    def delete_label(self, user_id: str, label_id: int) -> None:
        """Delete one labeled pair; :class:`NotFoundError` when the user has no such label."""

    @abstractmethod
    def list_edits(self, user_id: str) -> list[Edit]: ...

    @abstractmethod
    def list_feedback(self, user_id: str) -> list[Feedback]: ...

    @abstractmethod
    def list_labels(self, user_id: str) -> list[Label]: ...

    # -- adapters --------------------------------------------------------------------------
    @abstractmethod
    def set_adapter(self, user_id: str, name: str, path: str, meta: dict[str, Any]) -> None: ...

    @abstractmethod
    def get_adapter(self, user_id: str) -> dict[str, Any] | None: ...

    # -- lifecycle -------------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None: ...
