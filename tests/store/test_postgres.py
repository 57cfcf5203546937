"""The PostgreSQL store against a real server: conformance, schema, transactions, errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
from conformance import StoreConformance, vec

from persona.errors import InvalidInputError, SchemaError, StorageError
from persona.store.postgres import PostgresStore
from persona.store.postgres_schema import KNOWN_MIGRATIONS


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(pg_url, pool_size=4)
    yield s
    s.close()


class TestPostgresStore(StoreConformance):
    pass


def _sql(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def test_migrations_run_once_and_reopen_keeps_data(pg_url: str) -> None:
    s = PostgresStore(pg_url)
    s.add_preference("alice", "terse", "manual")
    s.close()
    s = PostgresStore(pg_url)
    assert [p.text for p in s.list_preferences("alice")] == ["terse"]
    s.close()
    names = [r[0] for r in _sql(pg_url, "SELECT name FROM persona_migrations")]
    assert sorted(names) == sorted(KNOWN_MIGRATIONS)


def test_servers_opening_a_new_database_at_once_migrate_it_once(pg_url: str) -> None:
    stores: list[PostgresStore] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            stores.append(PostgresStore(pg_url, pool_size=2))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(stores) == 6
    assert len(_sql(pg_url, "SELECT name FROM persona_migrations")) == len(KNOWN_MIGRATIONS)
    for s in stores:
        s.close()


def test_newer_schema_is_refused_untouched(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    _sql(pg_url, "INSERT INTO persona_migrations VALUES ('m999_future', 0)")
    with pytest.raises(SchemaError, match="m999_future.*upgrade persona"):
        PostgresStore(pg_url)
    assert len(_sql(pg_url, "SELECT name FROM persona_migrations")) == len(KNOWN_MIGRATIONS) + 1


def test_foreign_database_is_refused(pg_url: str) -> None:
    _sql(pg_url, "CREATE TABLE invoices (id integer)")
    with pytest.raises(SchemaError, match="invoices.*not a persona database"):
        PostgresStore(pg_url)
    assert _sql(pg_url, "SELECT to_regclass('persona_migrations')") == [(None,)]


def test_same_columns_as_the_sqlite_schema(pg_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from persona.store.sqlite import SQLiteStore

    PostgresStore(pg_url).close()
    lite = SQLiteStore(tmp_path / "p.db")
    for table in ("users", "preferences", "edits", "feedback", "labels", "adapters", "meta"):
        pg_cols = [
            r[0]
            for r in _sql(
                pg_url,
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "ORDER BY ordinal_position",
                (table,),
            )
        ]
        assert pg_cols == list(lite.db[table].columns_dict), table
    lite.close()


def test_unreachable_server_names_the_url_and_what_to_check() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://bob:hunter2@127.0.0.1:{port}/persona"
    with pytest.raises(StorageError, match="127.0.0.1.*server is running") as info:
        PostgresStore(url, connect_timeout=1)
    assert "hunter2" not in str(info.value) and "bob:***@" in str(info.value)


def test_not_a_url_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="not a PostgreSQL URL"):
        PostgresStore("/tmp/persona.db")


def test_closed_store_says_so(pg_url: str) -> None:
    s = PostgresStore(pg_url)
    s.close()
    with pytest.raises(StorageError, match="closed"):
        s.users()


def test_versions_never_repeat_after_delete_and_recreate(store: PostgresStore) -> None:
    store.add_preference("alice", "a", "edit", embedding=vec(1))
    seen = {store.index_version("alice")}
    store.delete_user("alice")
    assert store.index_version("alice") == 0
    for _ in range(3):
        store.add_preference("alice", "a", "edit", embedding=vec(1))
        assert store.index_version("alice") not in seen
        seen.add(store.index_version("alice"))
        store.delete_user("alice")


def test_versions_differ_between_databases(pg_url: str, postgres_server) -> None:  # type: ignore[no-untyped-def]
    other = postgres_server.create_database()
    a, b = PostgresStore(pg_url), PostgresStore(other)
    a.add_preference("alice", "x", "edit", embedding=vec(1))
    b.add_preference("alice", "x", "edit", embedding=vec(1))
    assert a.index_version("alice") != b.index_version("alice")
    a.close()
    b.close()
    postgres_server.drop_database(other)


def test_a_failed_transaction_leaves_nothing_and_the_connection_works(
    store: PostgresStore,
) -> None:
    store.add_preference("alice", "kept", "manual")
    with pytest.raises(StorageError), store.transaction():
        store.add_preference("alice", "lost", "manual")
        store._x("SELECT * FROM no_such_table")
    assert [p.text for p in store.list_preferences("alice")] == ["kept"]
    for _ in range(8):  # every pooled connection is usable again
        with store.transaction():
            store.ensure_user("bob")
    assert store.users() == ["alice", "bob"]


def test_nul_in_text_is_invalid_input(store: PostgresStore) -> None:
    with pytest.raises(InvalidInputError, match="NUL"):
        store.add_preference("alice", "a\x00b", "manual")
    assert store.users() == []


def test_writers_of_one_user_wait_for_each_other(store: PostgresStore, pg_url: str) -> None:
    """The version a write transaction read stays current until it commits."""
    other = PostgresStore(pg_url, pool_size=2)
    store.add_preference("alice", "a", "edit", embedding=vec(1))
    entered, done = threading.Event(), threading.Event()

    def second_writer() -> None:
        entered.wait(5)
        other.add_preference("alice", "b", "edit", embedding=vec(2))
        done.set()

    t = threading.Thread(target=second_writer)
    t.start()
    with store.transaction():
        before = store.index_version("alice")
        entered.set()
        assert not done.wait(0.5), "another writer changed alice inside our transaction"
        store.add_preference("alice", "c", "edit", embedding=vec(3))
        after = store.index_version("alice")
    t.join(10)
    assert done.is_set() and after != before
    assert store.index_version("alice") not in (before, after)
    other.close()


def test_other_users_write_in_parallel(store: PostgresStore, pg_url: str) -> None:
    other = PostgresStore(pg_url, pool_size=2)
    with store.transaction():
        store.index_version("alice")
        other.add_preference("bob", "b", "edit", embedding=vec(2))  # not blocked by alice
    assert other.users() == ["bob"]
    other.close()


def test_threads_share_the_pool_without_losing_rows(store: PostgresStore) -> None:
    def writer(n: int) -> None:
        for i in range(30):
            store.add_preference(f"user{n % 2}", f"pref {n} {i}", "edit", embedding=vec(i))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.list_preferences("user0")) == len(store.list_preferences("user1")) == 90
    assert store.integrity_check() == "ok"


def test_a_restarted_server_costs_one_retry_not_an_error() -> None:
    from pg import PostgresServer

    server = PostgresServer()
    try:
        s = PostgresStore(server.start(), pool_size=3, min_size=3)
        s.add_preference("alice", "terse", "manual")
        server.restart()  # every pooled connection is now broken
        assert [p.text for p in s.list_preferences("alice")] == ["terse"]  # reads retry once
        s.add_preference("alice", "second", "manual")  # writes get fresh connections
        assert len(s.list_preferences("alice")) == 2
        s.close()
    finally:
        server.stop()
