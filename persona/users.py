"""The layer's per-user data methods (mixed into :class:`persona.PreferenceLayer`): list the
users, export and import one, and delete one with everything stored about them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from persona.config import safe_dir_name
from persona.learn.base import Learner
from persona.learn.guard import looks_like_injection
from persona.store.base import Store
from persona.store.embed import Embedder
from persona.store.index import VectorIndex


class UserMethods:
    """``users``, ``export_user``, ``import_user`` and ``delete_user``."""

    store: Store
    embedder: Embedder
    index: VectorIndex
    home: Path | None
    learners: tuple[Learner, ...]

    def _known(self, user_id: str) -> str:  # provided by PreferenceLayer
        raise NotImplementedError

    def users(self) -> list[str]:
        return self.store.users()

    def export_user(self, user_id: str) -> dict[str, Any]:
        """Everything stored about the user, JSON-serializable (no vectors: they are re-made)."""
        from persona.store.portable import export_user

        return export_user(self.store, self._known(user_id))

    def import_user(self, data: dict[str, Any], *, replace: bool = False) -> str:
        """Load a user exported by :meth:`export_user`; returns the user id. All or nothing."""
        from persona.store.portable import import_user

        user_id = import_user(
            self.store, self.embedder, data, replace=replace, flag=looks_like_injection
        )
        self.index.invalidate(user_id)
        for learner in self.learners:
            learner.forget(user_id)
        return user_id

    def delete_user(self, user_id: str) -> None:
        """Delete the user's rows, vectors and adapter files: nothing is left."""
        self._known(user_id)
        self.store.delete_user(user_id)
        self.index.invalidate(user_id)
        if self.home is not None:
            for folder in ("", ".work"):  # the adapter, and its answers and unfinished runs
                target = self.home / "adapters" / folder / safe_dir_name(user_id)
                shutil.rmtree(target, ignore_errors=True)
        for learner in self.learners:
            learner.forget(user_id)
