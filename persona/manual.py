"""The layer's manual preference methods (mixed into :class:`persona.PreferenceLayer`): list,
add, edit, switch on or off and delete what the layer holds about a user."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from persona.config import (
    MAX_PREFERENCE_CHARS,
    check_optional_text,
    check_pref_id,
    check_text,
    check_user_id,
)
from persona.errors import InvalidInputError
from persona.learn.base import Write
from persona.learn.guard import looks_like_injection
from persona.store.base import Store
from persona.types import Preference


class ManualPreferenceMethods:
    """``preferences``, ``add_preference``, ``update_preference`` and ``delete_preference``."""

    store: Store

    def _known(self, user_id: str) -> str:  # provided by PreferenceLayer
        raise NotImplementedError

    def _embed_one(self, text: str) -> Any:  # provided by PreferenceLayer
        raise NotImplementedError

    def _writing(self, user_id: str) -> AbstractContextManager[Write]:  # by PreferenceLayer
        raise NotImplementedError

    def preferences(self, user_id: str) -> list[Preference]:
        """Everything learned or told about this user, oldest first."""
        return self.store.list_preferences(self._known(user_id))

    def add_preference(self, user_id: str, text: str, *, context: str | None = None) -> Preference:
        """Tell the layer a preference. Without ``context`` it applies to every request; with
        one, it applies to requests similar to that context."""
        check_user_id(user_id)
        text = check_text(text, "text", limit=MAX_PREFERENCE_CHARS).strip()
        context = check_optional_text(context, "context")
        if context is None:
            with self._writing(user_id) as write:
                return write.add_preference(text, "manual")
        context = context.strip()
        vec = self._embed_one(context)
        with self._writing(user_id) as write:
            return write.add_preference(text, "manual", context=context, embedding=vec)

    def update_preference(
        self, user_id: str, pref_id: int, *, text: str | None = None, enabled: bool | None = None
    ) -> Preference:
        """Change a preference's text and/or switch it on or off."""
        self._known(user_id)
        pref_id = check_pref_id(pref_id)
        changes: dict[str, Any] = {}
        if text is not None:
            changes["text"] = check_text(text, "text", limit=MAX_PREFERENCE_CHARS).strip()
            changes["flagged"] = looks_like_injection(changes["text"])
            self._get(user_id, pref_id)  # a missing row is refused before anything else
        if enabled is not None:
            if not isinstance(enabled, bool):
                raise InvalidInputError(f"enabled={enabled!r} must be True or False.")
            changes["enabled"] = enabled
        if not changes:
            raise InvalidInputError("nothing to update; pass text=... and/or enabled=....")
        with self._writing(user_id) as write:
            if text is not None:  # read under the user's write lock: no provenance is lost
                changes["provenance"] = (*self._get(user_id, pref_id).provenance, "manual:edit")
            write.rebuild = True
            return self.store.update_preference(user_id, pref_id, **changes)

    def delete_preference(self, user_id: str, pref_id: int) -> None:
        """Delete one preference (its row and its vector)."""
        self._known(user_id)
        pref_id = check_pref_id(pref_id)
        with self._writing(user_id) as write:
            self.store.delete_preference(user_id, pref_id)
            write.removed.append(pref_id)

    def _get(self, user_id: str, pref_id: int) -> Preference:
        from persona.errors import NotFoundError

        found = self.store.get_preferences(user_id, [pref_id])
        if not found:
            raise NotFoundError(
                f"preference {pref_id!r} does not exist for user {user_id!r}; pick one of the "
                "ids listed for this user."
            )
        return found[0]
