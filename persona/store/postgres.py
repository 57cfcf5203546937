"""PostgreSQL backend (scale-out: many app servers share one database).

The same tables and semantics as :class:`~persona.store.sqlite.SQLiteStore`, through
psycopg 3 and a ``psycopg_pool.ConnectionPool``:

* **Transactions.** ``transaction()`` is re-entrant; the outermost one borrows a pooled
  connection for the calling thread and holds it until it commits or rolls back, so every
  statement of the thread in between runs in that transaction. A statement outside one runs
  alone (autocommit) on whichever pooled connection is free: one round trip.
* **Writers of one user are serialized.** Inside a transaction, the first call that reads or
  changes a user takes a transaction-scoped advisory lock on that user, so the
  ``index_version`` a write starts from stays current until it commits (what SQLite's
  ``BEGIN IMMEDIATE`` gives for the whole file): the layer's incremental FAISS update can
  never skip another server's write. Different users write in parallel.
* **Versions never repeat.** ``index_version`` comes from one sequence for the whole
  database (random start, see :mod:`persona.store.postgres_schema`); a deleted and re-created
  user gets a new value, so no server's FAISS cache of the old user is ever taken as current.
  Each server checks it with one indexed read per ``condition()``.
* **Embeddings live with their rows** (``bytea``, float32). Debian has no pgvector, and none
  is needed: each server's FAISS cache is rebuilt from one consistent read.
* **Errors** are :class:`StorageError` naming the server (password hidden) and what to check.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from persona.errors import InvalidInputError, StorageError

try:
    import psycopg
    from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout
except ImportError as exc:  # an install without the extra
    raise StorageError(
        f"the PostgreSQL store needs psycopg and psycopg-pool ({exc}); "
        "pip install 'persona[postgres]'."
    ) from exc

from persona.store.base import Store
from persona.store.events import EventTables
from persona.store.postgres_errors import storage_error
from persona.store.postgres_schema import migrate
from persona.store.prefs import PreferenceTables
from persona.store.rows import REPAIR, blob
from persona.store.urls import redact
from persona.types import Preference

#: The tables of the schema, parents first (``persona migrate`` copies them in this order).
TABLES = ("users", "preferences", "edits", "feedback", "labels", "adapters", "meta")


@dataclass
class _Tx:
    """The calling thread's open transaction: its connection, depth and locked users."""

    conn: Any
    depth: int = 1
    locked: set[str] = field(default_factory=set)


def _pg(sql: str) -> str:
    """A statement with the shared ``?`` placeholders (:mod:`persona.store.events`) in
    psycopg's ``%s`` form; this module's own statements use ``%s`` and no ``?``."""
    return sql.replace("?", "%s")


class PostgresStore(PreferenceTables, EventTables, Store):
    """All users in one PostgreSQL database. Safe to share between threads, processes and
    machines. ``pool_size``: connections this process may hold (one per thread inside a
    transaction); ``connect_timeout``: seconds to wait for the server before giving up."""

    def __init__(
        self, url: str, *, pool_size: int = 16, connect_timeout: float = 10.0, min_size: int = 1
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
            raise InvalidInputError(
                f"{url!r:.80} is not a PostgreSQL URL; pass postgresql://USER@HOST:PORT/DB."
            )
        self.url = url
        self.where = redact(url)
        self._local = threading.local()
        self._pool = ConnectionPool(
            url,
            min_size=min(min_size, pool_size),
            max_size=pool_size,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(connect_timeout))},
            open=False,
            timeout=max(connect_timeout, 30.0),
            name="persona",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
            with self._pool.connection(timeout=connect_timeout) as conn:
                migrate(conn, self.where)
        except (psycopg.Error, PoolTimeout) as exc:
            self._pool.close()
            raise storage_error(self.where, exc) from exc
        except BaseException:
            self._pool.close()
            raise

    # -- statements ----------------------------------------------------------------------
    def _tx(self) -> _Tx | None:
        return getattr(self._local, "tx", None)

    def _x(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Execute one statement inside the thread's transaction; returns the cursor."""
        tx = self._tx()
        assert tx is not None, "_x runs inside transaction()"
        try:
            return tx.conn.execute(_pg(sql), params or None)
        except psycopg.Error as exc:
            raise storage_error(self.where, exc) from exc

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of one query: in the thread's transaction if any, else alone (autocommit).
        A read alone is retried once on a fresh connection if the old one was broken
        (the server restarted): reads change nothing, so the retry is safe."""
        tx = self._tx()
        if tx is not None:
            return list(self._x(sql, params).fetchall())
        for attempt in (1, 2):
            conn = None
            try:
                with self._pool.connection() as conn:
                    return list(conn.execute(_pg(sql), params or None).fetchall())
            except psycopg.OperationalError as exc:
                if attempt == 1 and conn is not None and conn.closed:
                    self._pool.check()  # drop the other broken connections too
                    continue
                raise storage_error(self.where, exc) from exc
            except (psycopg.Error, PoolTimeout, PoolClosed) as exc:
                raise storage_error(self.where, exc) from exc
        raise AssertionError("unreachable")

    def _insert(self, sql: str, params: Sequence[Any]) -> int:
        with self.transaction():
            return int(self._x(sql + " RETURNING id", params).fetchone()[0])

    # -- transactions ----------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        tx = self._tx()
        if tx is not None:
            tx.depth += 1
            try:
                yield
            finally:
                tx.depth -= 1
            return
        try:
            with self._pool.connection() as conn:
                self._local.tx = _Tx(conn)
                try:
                    with conn.transaction():
                        yield
                finally:
                    self._local.tx = None
        except (psycopg.Error, PoolTimeout, PoolClosed) as exc:
            raise storage_error(self.where, exc) from exc

    def _lock_user(self, user_id: str) -> None:
        """Inside a transaction: wait for, then hold until commit, the user's write lock."""
        tx = self._tx()
        if tx is not None and user_id not in tx.locked:
            self._x("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (user_id,))
            tx.locked.add(user_id)

    # -- meta ----------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._q("SELECT value FROM meta WHERE key = %s", (key,))
        return None if not rows else str(rows[0][0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._x(
                "INSERT INTO meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- users ---------------------------------------------------------------------------
    def users(self) -> list[str]:
        return [r[0] for r in self._q('SELECT id FROM users ORDER BY id COLLATE "C"')]

    def has_user(self, user_id: str) -> bool:
        return bool(self._q("SELECT 1 FROM users WHERE id = %s", (user_id,)))

    def ensure_user(self, user_id: str) -> None:
        with self.transaction():
            self._lock_user(user_id)
            self._x(
                "INSERT INTO users (id, created_at, index_version) "
                "SELECT %s, %s, nextval('persona_index_seq') "
                "WHERE NOT EXISTS (SELECT 1 FROM users WHERE id = %s) "
                "ON CONFLICT (id) DO NOTHING",
                (user_id, time.time(), user_id),
            )

    def delete_user(self, user_id: str) -> None:
        with self.transaction():
            self._lock_user(user_id)
            for table in ("preferences", "edits", "feedback", "labels", "adapters"):
                self._x(f"DELETE FROM {table} WHERE user_id = %s", (user_id,))
            self._x("DELETE FROM users WHERE id = %s", (user_id,))

    def _bump(self, user_id: str) -> None:
        self._lock_user(user_id)
        self._x(
            "UPDATE users SET index_version = nextval('persona_index_seq') WHERE id = %s",
            (user_id,),
        )

    def index_version(self, user_id: str) -> int:
        """0 when the user does not exist; otherwise a value no earlier state of any user of
        this database ever had. Inside a transaction it also takes the user's write lock, so
        the value stays current until the transaction ends."""
        self._lock_user(user_id)
        rows = self._q("SELECT index_version FROM users WHERE id = %s", (user_id,))
        return int(rows[0][0]) if rows else 0

    # -- preferences -----------------------------------------------------------------------
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
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    user_id,
                    text,
                    source,
                    bool(enabled),
                    scope,
                    json.dumps(list(provenance)),
                    context,
                    blob(embedding),
                    bool(flagged),
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
        # One statement: PostgreSQL reads it from one snapshot (version and rows agree).
        rows = self._q(
            "SELECT u.index_version, p.id, p.embedding FROM users u LEFT JOIN preferences p "
            "ON p.user_id = u.id AND p.enabled AND p.embedding IS NOT NULL "
            "WHERE u.id = %s ORDER BY p.id",
            (user_id,),
        )
        version = int(rows[0][0]) if rows else 0
        rows = [r for r in rows if r[1] is not None]
        if not rows:
            return version, np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        sizes = {len(r[2]) if isinstance(r[2], bytes) else -1 for r in rows}
        if len(sizes) != 1 or min(sizes) <= 0 or min(sizes) % 4:
            raise StorageError(
                f"the embeddings of user {user_id!r} are damaged (blob sizes {sorted(sizes)[:4]}); "
                f"{REPAIR}"
            )
        ids = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        mat = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32)
        return version, ids, mat.reshape(len(rows), -1).copy()

    def vector_ids(self, user_id: str) -> tuple[int, np.ndarray]:
        rows = self._q(
            "SELECT u.index_version, p.id FROM users u LEFT JOIN preferences p "
            "ON p.user_id = u.id AND p.enabled AND p.embedding IS NOT NULL "
            "WHERE u.id = %s ORDER BY p.id",
            (user_id,),
        )
        version = int(rows[0][0]) if rows else 0
        ids = [r[1] for r in rows if r[1] is not None]
        return version, np.asarray(ids, dtype=np.int64)

    # -- checks ---------------------------------------------------------------------------
    def count(self, table: str, user_ids: Sequence[str] | None = None) -> int:
        """Rows in one of :data:`TABLES` (only these users' rows when ``user_ids`` is given)."""
        if table not in TABLES:
            raise InvalidInputError(f"unknown table {table!r}; use one of {TABLES}.")
        if user_ids is not None and table in ("users", "meta"):
            raise InvalidInputError(f"{table!r} has no user_id; count it without user_ids.")
        if user_ids is None:
            return int(self._q(f"SELECT count(*) FROM {table}")[0][0])
        sql = f"SELECT count(*) FROM {table} WHERE user_id = ANY(%s)"
        return int(self._q(sql, (list(user_ids),))[0][0])

    def integrity_check(self) -> str:
        """``"ok"``, or what breaks persona's invariants: rows without their user, users
        without a version, embeddings whose size is not whole float32 values or differs
        within one user. (PostgreSQL's WAL keeps pages consistent; this checks the data.)"""
        problems = []
        for table in ("preferences", "edits", "feedback", "labels", "adapters"):
            n = self._q(
                f"SELECT count(*) FROM {table} t WHERE NOT EXISTS "
                "(SELECT 1 FROM users u WHERE u.id = t.user_id)"
            )[0][0]
            if n:
                problems.append(f"{n} {table} rows without their user")
        n = self._q("SELECT count(*) FROM users WHERE index_version IS NULL OR index_version < 1")
        if n[0][0]:
            problems.append(f"{n[0][0]} users without an index version")
        n = self._q(
            "SELECT count(*) FROM (SELECT user_id FROM preferences WHERE embedding IS NOT NULL "
            "GROUP BY user_id HAVING count(DISTINCT length(embedding)) > 1 "
            "OR min(mod(length(embedding), 4)) > 0 OR max(mod(length(embedding), 4)) > 0 "
            "OR min(length(embedding)) = 0) bad"
        )
        if n[0][0]:
            problems.append(f"{n[0][0]} users with damaged embeddings")
        return "; ".join(problems) or "ok"

    def close(self) -> None:
        self._pool.close()
