"""SQLite backend (the embedded default): sqlite-utils migrations, WAL, BEGIN IMMEDIATE."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils
from sqlite_utils import Migrations

from persona.errors import InvalidInputError, NotFoundError, SchemaError
from persona.store.base import UPDATABLE, Store
from persona.types import Edit, Feedback, Label, Preference

migrations = Migrations("persona")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db.table("users").create({"id": str, "created_at": float, "index_version": int}, pk="id")
    db.table("preferences").create(
        {
            "id": int,
            "user_id": str,
            "text": str,
            "source": str,
            "enabled": int,
            "scope": str,
            "provenance": str,  # JSON list of "kind:id"
            "context": str,
            "embedding": bytes,  # float32, L2-normalized; of `context` if set, else of `text`
            "flagged": int,
            "created_at": float,
            "updated_at": float,
        },
        pk="id",
        foreign_keys=[("user_id", "users", "id")],
        not_null={"user_id", "text", "source"},
    )
    db.table("preferences").create_index(["user_id", "enabled"])
    # condition() lists the user's global preferences (no context, no scope) on every call
    db.execute(
        "CREATE INDEX idx_preferences_global ON preferences (user_id) "
        "WHERE context IS NULL AND scope IS NULL"
    )
    for name, cols in {
        "edits": {"context": str, "output": str, "edited": str},
        "feedback": {"text": str, "in_scope": str, "out_of_scope": str},
        "labels": {"prompt": str, "chosen": str, "rejected": str},
    }.items():
        db.table(name).create(
            {"id": int, "user_id": str, **cols, "created_at": float},
            pk="id",
            foreign_keys=[("user_id", "users", "id")],
        )
        db.table(name).create_index(["user_id"])
    db.table("adapters").create(
        {"user_id": str, "name": str, "path": str, "meta": str, "created_at": float},
        pk="user_id",
        foreign_keys=[("user_id", "users", "id")],
    )
    db.table("meta").create({"key": str, "value": str}, pk="key")


KNOWN_MIGRATIONS = frozenset({"m001_initial"})

_PREF_COLS = (
    "id, user_id, text, source, enabled, scope, provenance, context, flagged, "
    "created_at, updated_at"
)


def _pref(row: sqlite3.Row | tuple[Any, ...]) -> Preference:
    return Preference(
        id=row[0],
        user_id=row[1],
        text=row[2],
        source=row[3],
        enabled=bool(row[4]),
        scope=row[5],
        provenance=tuple(json.loads(row[6] or "[]")),
        context=row[7],
        flagged=bool(row[8]),
        created_at=row[9],
        updated_at=row[10],
    )


def _blob(embedding: np.ndarray | None) -> bytes | None:
    if embedding is None:
        return None
    return np.ascontiguousarray(embedding, dtype=np.float32).reshape(-1).tobytes()


class SQLiteStore(Store):
    """One SQLite file for all users. Safe to share between threads of one process and between
    processes (WAL, busy timeout, ``BEGIN IMMEDIATE`` writes)."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise SchemaError(
                f"{self.path!r} is not a SQLite database ({exc}); point persona at a new "
                "path or restore the file from a backup."
            ) from exc
        self._lock = threading.RLock()
        self._depth = 0
        self.db = sqlite_utils.Database(self._conn)
        self._migrate()

    # -- schema ----------------------------------------------------------------
    def _migrate(self) -> None:
        with self._lock:
            applied = {m.name for m in migrations.applied(self.db)}
            newer = applied - KNOWN_MIGRATIONS
            if newer:
                raise SchemaError(
                    f"the database {self.path!r} has schema migrations {sorted(newer)} from a "
                    "newer persona; upgrade persona (pip install -U persona) to open it."
                )
            tables = set(self.db.table_names())
            if not applied and tables - {"_sqlite_migrations"}:
                raise SchemaError(
                    f"{self.path!r} holds tables {sorted(tables)[:5]} but is not a persona "
                    "database; use another path."
                )
            migrations.apply(self.db)

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- transactions ----------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _insert(self, sql: str, params: Sequence[Any]) -> int:
        with self.transaction():
            cur = self._conn.execute(sql, params)
            return int(cur.lastrowid or 0)

    # -- users ----------------------------------------------------------------
    def users(self) -> list[str]:
        return [r[0] for r in self._q("SELECT id FROM users ORDER BY id")]

    def has_user(self, user_id: str) -> bool:
        return bool(self._q("SELECT 1 FROM users WHERE id = ?", (user_id,)))

    def ensure_user(self, user_id: str) -> None:
        with self.transaction():
            self._conn.execute(
                "INSERT OR IGNORE INTO users (id, created_at, index_version) VALUES (?, ?, 0)",
                (user_id, time.time()),
            )

    def delete_user(self, user_id: str) -> None:
        with self.transaction():
            for table in ("preferences", "edits", "feedback", "labels", "adapters"):
                self._conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
            self._conn.execute("DELETE FROM users WHERE id = ?", (user_id,))

    def _bump(self, user_id: str) -> None:
        self._conn.execute(
            "UPDATE users SET index_version = index_version + 1 WHERE id = ?", (user_id,)
        )

    def index_version(self, user_id: str) -> int:
        rows = self._q("SELECT index_version FROM users WHERE id = ?", (user_id,))
        return int(rows[0][0]) if rows else 0

    # -- preferences ----------------------------------------------------------------
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
    ) -> Preference:
        now = time.time()
        with self.transaction():
            self.ensure_user(user_id)
            pref_id = self._insert(
                "INSERT INTO preferences (user_id, text, source, enabled, scope, provenance, "
                "context, embedding, flagged, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user_id,
                    text,
                    source,
                    int(enabled),
                    scope,
                    json.dumps(list(provenance)),
                    context,
                    _blob(embedding),
                    int(flagged),
                    now,
                    now,
                ),
            )
            if embedding is not None:
                self._bump(user_id)
        return Preference(
            id=pref_id,
            user_id=user_id,
            text=text,
            source=source,  # type: ignore[arg-type]
            enabled=enabled,
            scope=scope,
            provenance=tuple(provenance),
            context=context,
            flagged=flagged,
            created_at=now,
            updated_at=now,
        )

    def get_preferences(self, user_id: str, ids: Sequence[int]) -> list[Preference]:
        if not ids:
            return []
        ids = [int(i) for i in ids]
        marks = ",".join("?" * len(ids))
        rows = self._q(
            f"SELECT {_PREF_COLS} FROM preferences WHERE user_id = ? AND id IN ({marks})",
            (user_id, *ids),
        )
        by_id = {r[0]: _pref(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def list_preferences(
        self,
        user_id: str,
        *,
        enabled_only: bool = False,
        source: str | None = None,
        global_only: bool = False,
    ) -> list[Preference]:
        sql = f"SELECT {_PREF_COLS} FROM preferences WHERE user_id = ?"
        params: list[Any] = [user_id]
        if global_only:
            sql += " AND context IS NULL AND scope IS NULL"
        if enabled_only:
            sql += " AND enabled = 1"
        if source is not None:
            sql += " AND source = ?"
            params.append(source)
        return [_pref(r) for r in self._q(sql + " ORDER BY id", params)]

    def _own(self, user_id: str, pref_id: int) -> Preference:
        found = self.get_preferences(user_id, [pref_id])
        if not found:
            raise NotFoundError(
                f"preference {pref_id!r} does not exist for user {user_id!r}; list the "
                f"user's preferences with layer.preferences({user_id!r}) to find its id."
            )
        return found[0]

    def update_preference(self, user_id: str, pref_id: int, **changes: Any) -> Preference:
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise InvalidInputError(
                f"cannot update {sorted(unknown)}; updatable fields are {sorted(UPDATABLE)}."
            )
        with self.transaction():
            self._own(user_id, pref_id)
            cols, params = [], []
            for key, value in changes.items():
                if key == "embedding":
                    value = _blob(value)
                elif key == "provenance":
                    value = json.dumps(list(value))
                elif key in ("enabled", "flagged"):
                    value = int(bool(value))
                cols.append(f"{key} = ?")
                params.append(value)
            cols.append("updated_at = ?")
            params.append(time.time())
            self._conn.execute(
                f"UPDATE preferences SET {', '.join(cols)} WHERE id = ? AND user_id = ?",
                (*params, pref_id, user_id),
            )
            if {"embedding", "enabled"} & set(changes):
                self._bump(user_id)
            return self._own(user_id, pref_id)

    def delete_preference(self, user_id: str, pref_id: int) -> None:
        with self.transaction():
            self._own(user_id, pref_id)
            self._conn.execute(
                "DELETE FROM preferences WHERE id = ? AND user_id = ?", (pref_id, user_id)
            )
            self._bump(user_id)

    def vectors(self, user_id: str) -> tuple[np.ndarray, np.ndarray]:
        rows = self._q(
            "SELECT id, embedding FROM preferences WHERE user_id = ? AND enabled = 1 "
            "AND embedding IS NOT NULL ORDER BY id",
            (user_id,),
        )
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        return ids, mat.reshape(len(rows), -1).copy()

    def all_embedded(self) -> list[tuple[int, str, str, str | None]]:
        """(id, user_id, text, context) of every embedded row: for re-embedding."""
        return [
            (r[0], r[1], r[2], r[3])
            for r in self._q(
                "SELECT id, user_id, text, context FROM preferences WHERE embedding IS NOT NULL"
            )
        ]

    # -- events ----------------------------------------------------------------
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
    ) -> Feedback:
        now = time.time()
        with self.transaction():
            self.ensure_user(user_id)
            fid = self._insert(
                "INSERT INTO feedback (user_id, text, in_scope, out_of_scope, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (user_id, text, json.dumps(list(in_scope)), json.dumps(list(out_of_scope)), now),
            )
        return Feedback(fid, user_id, text, tuple(in_scope), tuple(out_of_scope), now)

    def add_label(self, user_id: str, prompt: str, chosen: str, rejected: str) -> Label:
        now = time.time()
        with self.transaction():
            self.ensure_user(user_id)
            lid = self._insert(
                "INSERT INTO labels (user_id, prompt, chosen, rejected, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (user_id, prompt, chosen, rejected, now),
            )
        return Label(lid, user_id, prompt, chosen, rejected, now)

    def list_edits(self, user_id: str) -> list[Edit]:
        rows = self._q(
            "SELECT id, user_id, context, output, edited, created_at FROM edits "
            "WHERE user_id = ? ORDER BY id",
            (user_id,),
        )
        return [Edit(*r) for r in rows]

    def list_feedback(self, user_id: str) -> list[Feedback]:
        rows = self._q(
            "SELECT id, user_id, text, in_scope, out_of_scope, created_at FROM feedback "
            "WHERE user_id = ? ORDER BY id",
            (user_id,),
        )
        return [
            Feedback(r[0], r[1], r[2], tuple(json.loads(r[3])), tuple(json.loads(r[4])), r[5])
            for r in rows
        ]

    def list_labels(self, user_id: str) -> list[Label]:
        rows = self._q(
            "SELECT id, user_id, prompt, chosen, rejected, created_at FROM labels "
            "WHERE user_id = ? ORDER BY id",
            (user_id,),
        )
        return [Label(*r) for r in rows]

    # -- adapters ----------------------------------------------------------------
    def set_adapter(self, user_id: str, name: str, path: str, meta: dict[str, Any]) -> None:
        with self.transaction():
            self.ensure_user(user_id)
            self._conn.execute(
                "INSERT INTO adapters (user_id, name, path, meta, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(user_id) DO UPDATE SET name = excluded.name, "
                "path = excluded.path, meta = excluded.meta, created_at = excluded.created_at",
                (user_id, name, path, json.dumps(meta), time.time()),
            )

    def get_adapter(self, user_id: str) -> dict[str, Any] | None:
        rows = self._q(
            "SELECT name, path, meta, created_at FROM adapters WHERE user_id = ?", (user_id,)
        )
        if not rows:
            return None
        name, path, meta, created = rows[0]
        return {"name": name, "path": path, "meta": json.loads(meta), "created_at": created}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
