from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conformance import StoreConformance, vec

from persona.errors import SchemaError
from persona.store.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "persona.db")
    yield s
    s.close()


class TestSQLiteStore(StoreConformance):
    pass


def test_wal_and_busy_timeout(store: SQLiteStore) -> None:
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000


def test_reopen_keeps_data_and_migrations_run_once(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "p.db")
    s.add_preference("alice", "terse", "manual")
    s.close()
    s = SQLiteStore(tmp_path / "p.db")
    assert [p.text for p in s.list_preferences("alice")] == ["terse"]
    s.close()


def test_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
        "VALUES ('persona', 'm999_future', 'later')"
    )
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(SchemaError, match="m999_future.*upgrade persona"):
        SQLiteStore(path)
    assert path.read_bytes() == before


def test_foreign_database_and_garbage_file(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="not a persona database"):
        SQLiteStore(other)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(SchemaError, match="not a SQLite database"):
        SQLiteStore(junk)


def test_two_connections_write_concurrently_without_losing_rows(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    stores = [SQLiteStore(path), SQLiteStore(path)]

    def writer(s: SQLiteStore, n: int) -> None:
        for i in range(50):
            s.add_preference(f"user{n}", f"pref {i}", "edit", embedding=vec(i))

    threads = [threading.Thread(target=writer, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stores[0].list_preferences("user0")) == 50
    assert len(stores[0].list_preferences("user1")) == 50
    for s in stores:
        s.close()
