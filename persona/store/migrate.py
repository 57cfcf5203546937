"""``persona migrate``: copy a SQLite store into PostgreSQL, verified by counts and checksums.

Everything is copied with its ids: users (with their index versions), preferences (with their
embeddings), edits, feedback (with C3PO's datasets, scope models and revisions), labels (with
their embeddings), adapter records and metadata (the embedder the vectors were made with).
The identity sequences continue after the copied ids and the version sequence after SQLite's,
so no id or version is ever reused and FAISS cache files written against the SQLite store are
never mistaken for current.

All in one PostgreSQL transaction, with the tables locked against the app servers: the rows
are streamed in with COPY, read back, and each table's count and checksum (SHA-256 of every
row's canonical form, summed so that order does not matter) must equal the source's, or
nothing is committed. A target that already holds data is refused unless ``replace=True``,
which empties it first (in the same transaction).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from persona.errors import InvalidInputError, PersonaError, StorageError
from persona.store.urls import is_postgres_url, redact

#: The tables in copy order (parents first) with their primary key.
TABLES = {
    "users": "id",
    "preferences": "id",
    "edits": "id",
    "feedback": "id",
    "labels": "id",
    "adapters": "user_id",
    "meta": "key",
}
_BOOLEAN = {"enabled", "flagged"}
#: SQLite's own version counter: PostgreSQL keeps it in a sequence, not in ``meta``.
_SQLITE_ONLY_META = "index_seq"
_MOD = 2**256


@dataclass(frozen=True)
class TableCopy:
    """What one table holds on each side after the copy."""

    table: str
    rows: int
    checksum: str  # hex of the order-independent checksum (equal on both sides)


def sqlite_path(source: str | Path) -> Path:
    """``sqlite:PATH``, a ``.db`` file or a data directory (holding ``persona.db``)."""
    text = str(source)
    text = text[len("sqlite:") :] if text.startswith("sqlite:") else text
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / "persona.db"
    if not path.is_file():
        raise InvalidInputError(
            f"no SQLite store at {str(path)!r}; pass --from sqlite:PATH with PATH a persona "
            ".db file or the data directory that holds persona.db."
        )
    return path


def _canonical(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, float):
        return repr(value)
    return value


class _Checksum:
    def __init__(self) -> None:
        self.rows = 0
        self.total = 0

    def add(self, row: Iterable[Any]) -> None:
        text = json.dumps([_canonical(v) for v in row], ensure_ascii=False)
        self.total = (self.total + int.from_bytes(hashlib.sha256(text.encode()).digest())) % _MOD
        self.rows += 1

    @property
    def hex(self) -> str:
        return f"{self.total:064x}"


def _sqlite_rows(conn: Any, table: str, cols: list[str]) -> Iterable[tuple[Any, ...]]:
    sql = f"SELECT {', '.join(cols)} FROM {table}"
    if table == "meta":
        sql += f" WHERE key != '{_SQLITE_ONLY_META}'"
    for row in conn.execute(sql):
        yield tuple(
            bool(v) if c in _BOOLEAN and v is not None else v
            for c, v in zip(cols, row, strict=True)
        )


def copy_sqlite_to_postgres(
    source: str | Path,
    target: str,
    *,
    replace: bool = False,
    on_table: Callable[[TableCopy], None] | None = None,
) -> list[TableCopy]:
    """Copy the SQLite store ``source`` into the PostgreSQL database ``target`` (see the
    module's docstring); returns each table's verified count and checksum."""
    if not is_postgres_url(target):
        raise InvalidInputError(
            f"--to {target!r:.80} is not a PostgreSQL URL; pass postgresql://USER@HOST:PORT/DB."
        )
    from persona.store.postgres import PostgresStore
    from persona.store.sqlite import SQLiteStore

    path = sqlite_path(source)
    lite = SQLiteStore(path)  # brings an older file's schema up to date first
    try:
        PostgresStore(target, pool_size=1).close()  # creates or checks the schema
        lite.db.execute("BEGIN")  # one snapshot of the source, however long the copy takes
        try:
            return _copy(lite.db.conn, target, replace, on_table)
        finally:
            lite.db.execute("COMMIT")
    finally:
        lite.close()


def _copy(
    lite: Any, target: str, replace: bool, on_table: Callable[[TableCopy], None] | None
) -> list[TableCopy]:
    import psycopg

    from persona.store.postgres_errors import storage_error

    where = redact(target)
    try:
        with psycopg.connect(target) as conn, conn.transaction():
            conn.execute(f"LOCK TABLE {', '.join(TABLES)} IN EXCLUSIVE MODE")
            _check_empty(conn, where, replace)
            done = [_copy_table(lite, conn, table, where) for table in TABLES]
            _continue_sequences(lite, conn)
            for report in done:
                if on_table is not None:
                    on_table(report)
            return done
    except PersonaError:
        raise
    except psycopg.Error as exc:
        raise storage_error(where, exc) from exc


def _check_empty(conn: Any, where: str, replace: bool) -> None:
    counts = {
        t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES if t != "meta"
    }
    held = {t: n for t, n in counts.items() if n}
    if held and not replace:
        raise InvalidInputError(
            f"the target {where} already holds persona data ({held}); migrate into an empty "
            "database, or pass --replace to delete everything in it first."
        )
    if replace:
        for table in reversed(TABLES):
            conn.execute(f"DELETE FROM {table}")


def _columns(conn: Any, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def _copy_table(lite: Any, conn: Any, table: str, where: str) -> TableCopy:
    cols = _columns(conn, table)
    source = _Checksum()
    with conn.cursor().copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
        for row in _sqlite_rows(lite, table, cols):
            source.add(row)
            copy.write_row(row)
    copied = _Checksum()
    with conn.cursor(name=f"verify_{table}") as cur:  # server-side: streams big tables
        cur.execute(f"SELECT {', '.join(cols)} FROM {table}")
        for row in cur:
            copied.add(row)
    if (copied.rows, copied.hex) != (source.rows, source.hex):
        raise StorageError(
            f"the copy of {table!r} into {where} does not match the source ({copied.rows} rows, "
            f"checksum {copied.hex[:12]} vs {source.rows} rows, {source.hex[:12]}); nothing "
            "was written. Check that nothing else writes to the target, then retry."
        )
    return TableCopy(table, source.rows, source.hex)


def _continue_sequences(lite: Any, conn: Any) -> None:
    """Ids continue after the copied ones; versions after SQLite's counter."""
    for table, pk in TABLES.items():
        if pk == "id" and table != "users":
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
            )
    counter = lite.execute(
        "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?", (_SQLITE_ONLY_META,)
    ).fetchall()
    versions = lite.execute("SELECT MAX(index_version) FROM users").fetchall()
    top = max(int(r[0] or 0) for r in [*counter, *versions])
    conn.execute(
        "SELECT setval('persona_index_seq', GREATEST(%s, "
        "(SELECT last_value FROM persona_index_seq)))",
        (top,),
    )
