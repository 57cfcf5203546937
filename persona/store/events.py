"""The event tables of both stores: edits, feedback (with C3PO's dataset and scope model) and
labeled pairs (with their prompt's embedding). Each row belongs to one user; every read and
write names the user, so no call reaches another user's rows.

The statements are written once, with ``?`` placeholders: SQLite takes them as they are and
:class:`~persona.store.postgres.PostgresStore` turns them into psycopg's ``%s``."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np

from persona.errors import ConflictError, NotFoundError, StorageError
from persona.store.rows import REPAIR, blob, json_dict, json_list, json_or_null
from persona.types import Edit, Feedback, Label


class EventTables:
    """Mixed into both stores, which provide how a statement runs."""

    if TYPE_CHECKING:  # what SQLiteStore and PostgresStore provide

        def _x(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
        def _q(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...
        def _insert(self, sql: str, params: Sequence[Any]) -> int: ...
        def transaction(self) -> AbstractContextManager[None]: ...
        def ensure_user(self, user_id: str) -> None: ...

    def add_edit(self, user_id: str, context: str, output: str, edited: str) -> Edit:
        now = time.time()
        with self.transaction():
            self.ensure_user(user_id)
            eid = self._insert(
                "INSERT INTO edits (user_id, context, output, edited, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (user_id, context, output, edited, now),
            )
        return Edit(eid, user_id, context, output, edited, now)

    def add_feedback(
        self,
        user_id: str,
        text: str,
        in_scope: Sequence[str] = (),
        out_of_scope: Sequence[str] = (),
        *,
        dataset: dict[str, Any] | None = None,
        scope_model: dict[str, Any] | None = None,
    ) -> Feedback:
        now = time.time()
        with self.transaction():
            self.ensure_user(user_id)
            fid = self._insert(
                "INSERT INTO feedback (user_id, text, in_scope, out_of_scope, created_at, "
                "dataset, scope_model) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    user_id,
                    text,
                    json.dumps(list(in_scope)),
                    json.dumps(list(out_of_scope)),
                    now,
                    json_or_null(dataset),
                    json_or_null(scope_model),
                ),
            )
        return Feedback(fid, user_id, text, tuple(in_scope), tuple(out_of_scope), now, dataset)

    _FEEDBACK_COLS = "id, user_id, text, in_scope, out_of_scope, created_at, dataset"

    def _feedback(self, r: Sequence[Any]) -> Feedback:
        return Feedback(
            r[0],
            r[1],
            r[2],
            json_list(r[3], f"feedback {r[0]} in_scope"),
            json_list(r[4], f"feedback {r[0]} out_of_scope"),
            r[5],
            json_dict(r[6], f"feedback {r[0]} dataset"),
        )

    def get_feedback(self, user_id: str, feedback_id: int) -> Feedback:
        rows = self._q(
            f"SELECT {self._FEEDBACK_COLS} FROM feedback WHERE id = ? AND user_id = ?",
            (feedback_id, user_id),
        )
        if not rows:
            raise NotFoundError(f"{user_id!r} has no feedback {feedback_id}.")
        return self._feedback(rows[0])

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
        with self.transaction():
            self.get_feedback(user_id, feedback_id)
            # the revision is checked by the UPDATE itself, so that PostgreSQL (which re-reads
            # a row changed by a concurrent commit) and SQLite both refuse a stale write
            cur = self._x(
                "UPDATE feedback SET in_scope = ?, out_of_scope = ?, dataset = ?, "
                "scope_model = ?, scope_rev = scope_rev + 1 WHERE id = ? AND user_id = ?"
                + ("" if revision is None else " AND scope_rev = ?"),
                (
                    json.dumps(list(in_scope)),
                    json.dumps(list(out_of_scope)),
                    json_or_null(dataset),
                    json_or_null(scope_model),
                    feedback_id,
                    user_id,
                    *(() if revision is None else (int(revision),)),
                ),
            )
            if revision is not None and cur.rowcount == 0:
                raise ConflictError(
                    f"feedback {feedback_id} of {user_id!r} changed since revision {revision}; "
                    "nothing was written: read it again and redo the change."
                )
            return self.get_feedback(user_id, feedback_id)

    def scope_revisions(self, user_id: str) -> dict[int, int]:
        rows = self._q("SELECT id, scope_rev FROM feedback WHERE user_id = ?", (user_id,))
        return {int(r[0]): int(r[1]) for r in rows}

    def scope_model(self, user_id: str, feedback_id: int) -> tuple[int, dict[str, Any] | None]:
        rows = self._q(
            "SELECT scope_rev, scope_model FROM feedback WHERE id = ? AND user_id = ?",
            (feedback_id, user_id),
        )
        if not rows:
            raise NotFoundError(f"{user_id!r} has no feedback {feedback_id}.")
        return int(rows[0][0]), json_dict(rows[0][1], f"feedback {feedback_id} scope model")

    def add_label(
        self,
        user_id: str,
        prompt: str,
        chosen: str,
        rejected: str,
        embedding: np.ndarray | None = None,
    ) -> Label:
        now = time.time()
        with self.transaction():
            self.ensure_user(user_id)
            lid = self._insert(
                "INSERT INTO labels (user_id, prompt, chosen, rejected, created_at, embedding) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, prompt, chosen, rejected, now, blob(embedding)),
            )
        return Label(lid, user_id, prompt, chosen, rejected, now)

    def label_vectors(self, user_id: str) -> dict[int, np.ndarray | None]:
        rows = self._q("SELECT id, embedding FROM labels WHERE user_id = ?", (user_id,))
        # a missing or damaged blob reads as None: the learner re-embeds that prompt
        return {
            int(i): np.frombuffer(blob, dtype=np.float32).copy()
            if isinstance(blob, bytes) and blob and len(blob) % 4 == 0
            else None
            for i, blob in rows
        }

    def forget_label_vectors(self) -> None:
        """The embedder changed: every label's prompt is embedded again on first use."""
        with self.transaction():
            self._x("UPDATE labels SET embedding = NULL")

    def get_labels(self, user_id: str, ids: Sequence[int]) -> list[Label]:
        if not ids:
            return []
        ids = [int(i) for i in ids]
        marks = ",".join("?" * len(ids))
        rows = self._q(
            "SELECT id, user_id, prompt, chosen, rejected, created_at FROM labels "
            f"WHERE user_id = ? AND id IN ({marks})",
            (user_id, *ids),
        )
        found = {r[0]: Label(*r) for r in rows}
        return [found[i] for i in ids if i in found]

    def delete_label(self, user_id: str, label_id: int) -> None:
        with self.transaction():
            cur = self._x("DELETE FROM labels WHERE id = ? AND user_id = ?", (label_id, user_id))
        if cur.rowcount == 0:
            raise NotFoundError(
                f"label {label_id} does not exist for user {user_id!r}; pick one of the ids "
                "layer.labels(user_id) lists."
            )

    def list_edits(self, user_id: str) -> list[Edit]:
        rows = self._q(
            "SELECT id, user_id, context, output, edited, created_at FROM edits "
            "WHERE user_id = ? ORDER BY id",
            (user_id,),
        )
        return [Edit(*r) for r in rows]

    def list_feedback(self, user_id: str) -> list[Feedback]:
        rows = self._q(
            f"SELECT {self._FEEDBACK_COLS} FROM feedback WHERE user_id = ? ORDER BY id",
            (user_id,),
        )
        return [self._feedback(r) for r in rows]

    def list_labels(self, user_id: str) -> list[Label]:
        rows = self._q(
            "SELECT id, user_id, prompt, chosen, rejected, created_at FROM labels "
            "WHERE user_id = ? ORDER BY id",
            (user_id,),
        )
        return [Label(*r) for r in rows]

    # -- adapters (one row per user: the adapter in use) ----------------------------------
    def set_adapter(self, user_id: str, name: str, path: str, meta: dict[str, Any]) -> None:
        with self.transaction():
            self.ensure_user(user_id)
            self._x(
                "INSERT INTO adapters (user_id, name, path, meta, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
                "name = excluded.name, path = excluded.path, meta = excluded.meta, "
                "created_at = excluded.created_at",
                (user_id, name, path, json.dumps(meta), time.time()),
            )

    def get_adapter(self, user_id: str) -> dict[str, Any] | None:
        rows = self._q(
            "SELECT name, path, meta, created_at FROM adapters WHERE user_id = ?", (user_id,)
        )
        if not rows:
            return None
        name, path, meta, created = rows[0]
        try:
            meta_value = json.loads(meta) if meta else {}
        except ValueError as exc:
            raise StorageError(f"the adapter row of {user_id!r} is damaged; {REPAIR}") from exc
        return {"name": name, "path": path, "meta": meta_value, "created_at": created}
