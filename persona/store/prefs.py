"""The preference rows of both stores: reading, listing, updating and deleting them.

Written once with ``?`` placeholders (as :mod:`persona.store.events`): SQLite runs them as
they are, :class:`~persona.store.postgres.PostgresStore` turns them into ``%s``. Booleans are
passed as Python ``bool`` and compared with ``TRUE``, which both databases understand.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from persona.errors import InvalidInputError, NotFoundError, StorageError
from persona.store.base import UPDATABLE
from persona.store.rows import REPAIR, blob, json_list
from persona.types import Preference

PREF_COLS = (
    "id, user_id, text, source, enabled, scope, provenance, context, flagged, "
    "created_at, updated_at"
)


def pref_from_row(row: Sequence[Any]) -> Preference:
    """A :class:`Preference` from a row of :data:`PREF_COLS`; a damaged row is named."""
    if not isinstance(row[2], str) or not isinstance(row[3], str):
        raise StorageError(f"preference row {row[0]!r} is damaged (no text); {REPAIR}")
    return Preference(
        id=row[0],
        user_id=row[1],
        text=row[2],
        source=row[3],  # type: ignore[arg-type]
        enabled=bool(row[4]),
        scope=row[5],
        provenance=json_list(row[6], f"preference {row[0]} provenance"),
        context=row[7],
        flagged=bool(row[8]),
        created_at=row[9],
        updated_at=row[10],
    )


class PreferenceTables:
    """Mixed into both stores, which provide how a statement runs and ``_lock_user`` (the
    PostgreSQL store's per-user write lock; SQLite's writes are serialized already)."""

    if TYPE_CHECKING:  # what SQLiteStore and PostgresStore provide

        def _x(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
        def _q(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...
        def transaction(self) -> AbstractContextManager[None]: ...
        def _bump(self, user_id: str) -> None: ...
        def _lock_user(self, user_id: str) -> None: ...

    def get_preferences(self, user_id: str, ids: Sequence[int]) -> list[Preference]:
        if not ids:
            return []
        ids = [int(i) for i in ids]
        marks = ",".join("?" * len(ids))
        rows = self._q(
            f"SELECT {PREF_COLS} FROM preferences WHERE user_id = ? AND id IN ({marks})",
            (user_id, *ids),
        )
        by_id = {r[0]: pref_from_row(r) for r in rows}
        return [by_id[i] for i in dict.fromkeys(ids) if i in by_id]

    def list_preferences(
        self,
        user_id: str,
        *,
        enabled_only: bool = False,
        source: str | None = None,
        global_only: bool = False,
    ) -> list[Preference]:
        sql = f"SELECT {PREF_COLS} FROM preferences WHERE user_id = ?"
        params: list[Any] = [user_id]
        if global_only:
            sql += " AND context IS NULL AND scope IS NULL"
        if enabled_only:
            sql += " AND enabled = TRUE"
        if source is not None:
            sql += " AND source = ?"
            params.append(source)
        return [pref_from_row(r) for r in self._q(sql + " ORDER BY id", params)]

    def _own(self, user_id: str, pref_id: int) -> Preference:
        found = self.get_preferences(user_id, [pref_id])
        if not found:
            raise NotFoundError(
                f"preference {pref_id!r} does not exist for user {user_id!r}; pick one of "
                "the ids listed for this user."
            )
        return found[0]

    def update_preference(self, user_id: str, pref_id: int, **changes: Any) -> Preference:
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise InvalidInputError(
                f"cannot update {sorted(unknown)}; updatable fields are {sorted(UPDATABLE)}."
            )
        with self.transaction():
            self._lock_user(user_id)
            self._own(user_id, pref_id)
            cols, params = [], []
            for key, value in changes.items():
                if key == "embedding":
                    value = blob(value)
                elif key == "provenance":
                    value = json.dumps(list(value))
                elif key in ("enabled", "flagged"):
                    value = bool(value)
                cols.append(f"{key} = ?")
                params.append(value)
            cols.append("updated_at = ?")
            params.append(time.time())
            self._x(
                f"UPDATE preferences SET {', '.join(cols)} WHERE id = ? AND user_id = ?",
                (*params, pref_id, user_id),
            )
            if {"embedding", "enabled"} & set(changes):
                self._bump(user_id)
            return self._own(user_id, pref_id)

    def delete_preference(self, user_id: str, pref_id: int) -> None:
        with self.transaction():
            self._lock_user(user_id)
            self._own(user_id, pref_id)
            self._x("DELETE FROM preferences WHERE id = ? AND user_id = ?", (pref_id, user_id))
            self._bump(user_id)

    def all_embedded(self) -> list[tuple[int, str, str, str | None]]:
        """(id, user_id, text, context) of every embedded row: for re-embedding."""
        return [
            (r[0], r[1], r[2], r[3])
            for r in self._q(
                "SELECT id, user_id, text, context FROM preferences WHERE embedding IS NOT NULL "
                "ORDER BY id"
            )
        ]
