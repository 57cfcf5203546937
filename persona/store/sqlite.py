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

from persona.errors import InvalidInputError, SchemaError, StorageError
from persona.store.base import Store
from persona.store.events import EventTables
from persona.store.migrations import KNOWN_MIGRATIONS, migrations
from persona.store.prefs import PreferenceTables
from persona.store.rows import REPAIR, blob
from persona.types import Preference


def _storage_error(path: str, exc: sqlite3.Error) -> StorageError:
    """A sqlite error as a :class:`StorageError` whose message says what to do."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StorageError(
            f"the database {path!r} stayed locked by another process past the busy timeout "
            f"({text}); retry, or keep long writes (imports) out of busy hours."
        )
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in text:
        return StorageError(f"the store {path!r} is closed; open the layer again.")
    if "full" in text or "I/O" in text or "readonly" in text:
        return StorageError(
            f"the database {path!r} could not be written ({text}); free disk space or fix "
            "the file's permissions, then retry."
        )
    return StorageError(
        f"the database {path!r} is damaged or unreadable ({text}); restore it from a backup "
        "(export the users that still read with `persona export`)."
    )


class SQLiteStore(PreferenceTables, EventTables, Store):
    """One SQLite file for all users. Safe to share between threads of one process and between
    processes (WAL, busy timeout, ``BEGIN IMMEDIATE`` writes).

    Durability: WAL with ``synchronous=NORMAL`` (default) never corrupts the file; a process
    crash loses nothing that was committed, a power loss can lose the last transactions
    committed before it. ``synchronous="full"`` makes every commit survive a power loss too.
    """

    def __init__(
        self, path: str | Path, *, busy_timeout_ms: int = 10_000, synchronous: str = "normal"
    ) -> None:
        self.path = str(path)
        if synchronous not in ("normal", "full"):
            raise InvalidInputError(
                f"synchronous={synchronous!r} is unknown; use 'normal' or 'full'."
            )
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        try:
            self._conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=busy_timeout_ms / 1000,
            )
        except sqlite3.Error as exc:
            raise _storage_error(self.path, exc) from exc
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._enable_wal(busy_timeout_ms / 1000)
            self._conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self.db = sqlite_utils.Database(self._conn)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise _storage_error(self.path, exc) from exc
            raise SchemaError(
                f"{self.path!r} is not a SQLite database persona can read ({exc}); point persona "
                "at a new path or restore the file from a backup."
            ) from exc
        except BaseException:
            self._conn.close()
            raise

    def _enable_wal(self, timeout_s: float) -> None:
        """Switch a new file to WAL. SQLite answers "database is locked" at once (without its
        busy handler) while another process is creating the same file, so retry until the
        busy timeout."""
        deadline = time.monotonic() + timeout_s
        delay = 0.005
        while True:
            try:
                mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal" and self.path != ":memory:":
                    self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    # -- schema ----------------------------------------------------------------
    def _migrate(self) -> None:
        """Apply pending migrations under the write lock, so that several processes opening
        a new file at once wait for each other instead of failing."""
        with self._lock:
            applied = {m.name for m in migrations.applied(self.db)}
            if applied >= KNOWN_MIGRATIONS:
                self._check_newer(applied)
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                applied = {m.name for m in migrations.applied(self.db)}
                self._check_newer(applied)
                tables = set(self.db.table_names())
                if not applied and tables - {"_sqlite_migrations"}:
                    raise SchemaError(
                        f"{self.path!r} holds tables {sorted(tables)[:5]} but is not a persona "
                        "database; use another path."
                    )
                migrations.apply(self.db)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _check_newer(self, applied: set[str]) -> None:
        newer = applied - KNOWN_MIGRATIONS
        if newer:
            raise SchemaError(
                f"the database {self.path!r} has schema migrations {sorted(newer)} from a "
                "newer persona; upgrade persona (pip install -U persona) to open it."
            )

    def get_meta(self, key: str) -> str | None:
        rows = self._q("SELECT value FROM meta WHERE key = ?", (key,))
        return None if not rows else str(rows[0][0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._x(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- statements ----------------------------------------------------------------
    def _x(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Execute one statement; sqlite errors become :class:`StorageError`."""
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise _storage_error(self.path, exc) from exc

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise _storage_error(self.path, exc) from exc

    def _insert(self, sql: str, params: Sequence[Any]) -> int:
        with self.transaction():
            return int(self._x(sql, params).lastrowid or 0)

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
            self._x("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                if self._conn.in_transaction:
                    self._x("ROLLBACK")
                raise
            self._depth = 0
            try:
                self._x("COMMIT")
            except StorageError:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Several reads that see one consistent state (a read transaction in WAL)."""
        with self._lock:
            if self._depth:
                yield
                return
            self._x("BEGIN")
            try:
                yield
            finally:
                if self._conn.in_transaction:
                    self._x("COMMIT")

    # -- users ----------------------------------------------------------------
    def users(self) -> list[str]:
        return [r[0] for r in self._q("SELECT id FROM users ORDER BY id")]

    def has_user(self, user_id: str) -> bool:
        return bool(self._q("SELECT 1 FROM users WHERE id = ?", (user_id,)))

    def ensure_user(self, user_id: str) -> None:
        with self.transaction():
            if not self._x("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone():
                self._x(
                    "INSERT INTO users (id, created_at, index_version) VALUES (?, ?, ?)",
                    (user_id, time.time(), self._next_version()),
                )

    def delete_user(self, user_id: str) -> None:
        with self.transaction():
            for table in ("preferences", "edits", "feedback", "labels", "adapters"):
                self._x(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
            self._x("DELETE FROM users WHERE id = ?", (user_id,))

    def _next_version(self) -> int:
        """The next value of the store-wide version sequence (inside a write transaction)."""
        self._x("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'index_seq'")
        row = self._x("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'index_seq'").fetchone()
        return int(row[0])

    def _lock_user(self, user_id: str) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already serializes every write."""

    def _bump(self, user_id: str) -> None:
        self._x("UPDATE users SET index_version = ? WHERE id = ?", (self._next_version(), user_id))

    def index_version(self, user_id: str) -> int:
        """0 when the user does not exist; otherwise a value that no earlier state of any
        user of this store ever had (one sequence for the whole store)."""
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
                    blob(embedding),
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

    def snapshot(self, user_id: str) -> tuple[int, np.ndarray, np.ndarray]:
        with self._snapshot():
            version = self.index_version(user_id)
            rows = self._q(
                "SELECT id, embedding FROM preferences WHERE user_id = ? AND enabled = 1 "
                "AND embedding IS NOT NULL ORDER BY id",
                (user_id,),
            )
        if not rows:
            return version, np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        sizes = {len(r[1]) if isinstance(r[1], bytes) else -1 for r in rows}
        if len(sizes) != 1 or min(sizes) <= 0 or min(sizes) % 4:
            raise StorageError(
                f"the embeddings of user {user_id!r} are damaged (blob sizes {sorted(sizes)[:4]}); "
                f"{REPAIR}"
            )
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        return version, ids, mat.reshape(len(rows), -1).copy()

    def vector_ids(self, user_id: str) -> tuple[int, np.ndarray]:
        with self._snapshot():
            version = self.index_version(user_id)
            rows = self._q(
                "SELECT id FROM preferences WHERE user_id = ? AND enabled = 1 "
                "AND embedding IS NOT NULL ORDER BY id",
                (user_id,),
            )
        return version, np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def integrity_check(self) -> str:
        """SQLite's own check of the whole file: ``"ok"`` when nothing is damaged."""
        return "; ".join(str(r[0]) for r in self._q("PRAGMA integrity_check"))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
