"""Many app servers on one PostgreSQL database: each sees the others' writes on its next call.

Every "server" is a :class:`PreferenceLayer` with its own ``PERSONA_HOME`` (its own FAISS
cache files and adapters) on the same database; the multi-process test runs them as separate
processes that learn and condition the same users in lock-step rounds.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from persona import PreferenceLayer
from persona.store.embed import HashEmbedder

USERS = ("alice", "bob")


def _open(url: str, home: Path, **options: Any) -> PreferenceLayer:
    os.environ["PERSONA_HOME"] = str(home)
    return PreferenceLayer.open(
        url,
        llm=FakeListChatModel(responses=["bullet points", "short sentences"]),
        embedder=HashEmbedder(dim=64),
        **options,
    )


@pytest.fixture
def servers(pg_url: str, tmp_path: Path) -> Iterator[tuple[PreferenceLayer, PreferenceLayer]]:
    a = _open(pg_url, tmp_path / "server-a")
    b = _open(pg_url, tmp_path / "server-b")
    yield a, b
    a.close()
    b.close()


def _texts(layer: PreferenceLayer, user: str, context: str) -> list[str]:
    return [p.text for p in layer.condition(user, context).preferences]


def _faiss_agrees(layer: PreferenceLayer, user: str) -> bool:
    return layer.index.ids(user).tolist() == layer.store.vector_ids(user)[1].tolist()


def test_open_selects_postgres_and_keeps_local_files_in_persona_home(
    servers: tuple[PreferenceLayer, PreferenceLayer], tmp_path: Path
) -> None:
    from persona.store.postgres import PostgresStore

    a, _ = servers
    assert isinstance(a.store, PostgresStore)
    assert a.home == tmp_path / "server-a"
    assert not list(tmp_path.rglob("*.db"))


def test_another_servers_write_is_seen_on_the_next_call(
    servers: tuple[PreferenceLayer, PreferenceLayer],
) -> None:
    a, b = servers
    a.add_preference("alice", "bullet points", context="summarize the quarterly report")
    assert _texts(a, "alice", "summarize the quarterly report") == ["bullet points"]
    rebuilds = a.index.rebuilds
    b.add_preference("alice", "no emojis", context="write an email to my boss")
    assert "no emojis" in _texts(a, "alice", "write an email to my boss")
    assert a.index.rebuilds == rebuilds + 1  # A's cache was stale: rebuilt from SQL
    assert _texts(a, "alice", "write an email to my boss") == _texts(
        b, "alice", "write an email to my boss"
    )
    pref = next(p for p in b.preferences("alice") if p.text == "no emojis")
    b.update_preference("alice", pref.id, enabled=False)
    assert "no emojis" not in _texts(a, "alice", "write an email to my boss")
    b.delete_preference("alice", pref.id)
    assert [p.text for p in a.preferences("alice")] == ["bullet points"]
    assert _faiss_agrees(a, "alice") and _faiss_agrees(b, "alice")


def test_a_deleted_and_recreated_user_never_sees_an_old_cache(
    servers: tuple[PreferenceLayer, PreferenceLayer],
) -> None:
    a, b = servers
    for i in range(3):
        a.add_preference("alice", f"old {i}", context=f"old topic number {i}")
    assert _texts(a, "alice", "old topic number 1")[0] == "old 1"
    a.index.flush()  # A's cache file of the old alice is on disk
    old_file = a.index.path("alice")
    assert old_file is not None and old_file.exists()
    b.delete_user("alice")
    for i in range(3):  # the same number of rows, the same contexts: only versions differ
        b.add_preference("alice", f"new {i}", context=f"old topic number {i}")
    assert _texts(a, "alice", "old topic number 1")[0] == "new 1"
    a.index.forget("alice")  # drop the memory cache: the stale file must not be loaded
    rebuilds = a.index.rebuilds
    assert _texts(a, "alice", "old topic number 2")[0] == "new 2"
    assert a.index.rebuilds == rebuilds + 1
    assert {p.text for p in a.preferences("alice")} == {"new 0", "new 1", "new 2"}
    assert _faiss_agrees(a, "alice")


def test_a_cache_directory_shared_by_two_databases_is_never_confused(
    pg_url: str, postgres_server: Any, tmp_path: Path
) -> None:
    other = postgres_server.create_database()
    home = tmp_path / "shared-home"
    first = _open(pg_url, home)
    first.add_preference("alice", "from database one", context="plan a trip")
    first.close()  # its FAISS file for alice is written to the shared home
    second = _open(other, home)
    second.add_preference("alice", "from database two", context="plan a trip")
    assert _texts(second, "alice", "plan a trip") == ["from database two"]
    assert _faiss_agrees(second, "alice")
    second.close()
    postgres_server.drop_database(other)


# -- several processes ------------------------------------------------------------------------


def _server_process(url: str, home: str, k: int, n: int, rounds: int, barrier: Any, q: Any) -> None:
    """One app server: writes in each round, then checks it sees every server's writes."""
    try:
        layer = _open(url, Path(home), index_capacity=1)
        seen = 0
        for r in range(rounds):
            for user in USERS:
                layer.add_preference(user, f"s{k} r{r} {user}", context=f"topic s{k} r{r} zebra")
            layer.learn_from_edit(USERS[r % 2], f"draft s{k} r{r}", "Hello there.", "- Hello.")
            layer.learn_from_labels(USERS[k % 2], f"question s{k} r{r}", "short", "long answer")
            barrier.wait(120)
            for user in USERS:
                for j in range(n):  # every server's write of this round, on the next call
                    got = _texts(layer, user, f"topic s{j} r{r} zebra")
                    assert f"s{j} r{r} {user}" in got, (k, user, j, r, got)
                    seen += j != k
                texts = {p.text for p in layer.preferences(user)}
                expected = {f"s{j} r{q} {user}" for j in range(n) for q in range(r + 1)}
                expected -= {f"s{q % n} r{q} alice" for q in range(r)}  # deleted earlier
                assert expected <= texts, expected - texts
                assert len(layer.labels(user)) == sum(
                    1 for j in range(n) for _ in range(r + 1) if j % 2 == USERS.index(user)
                )
            barrier.wait(120)
            if k == r % n:  # one server deletes its row: nobody may retrieve it afterwards
                gone = next(p for p in layer.preferences("alice") if p.text == f"s{k} r{r} alice")
                layer.delete_preference("alice", gone.id)
            barrier.wait(120)
            owner = r % n
            got = _texts(layer, "alice", f"topic s{owner} r{r} zebra")
            assert f"s{owner} r{r} alice" not in got, (k, r, got)
            for user in USERS:
                agree = layer.index.ids(user).tolist() == layer.store.vector_ids(user)[1].tolist()
                assert agree, (k, user)
            barrier.wait(120)
        q.put((k, "ok", seen, layer.index.rebuilds))
        layer.close()
    except BaseException:
        barrier.abort()
        q.put((k, traceback.format_exc(), 0, 0))


def test_several_processes_see_each_others_writes_on_their_next_call(
    pg_url: str, tmp_path: Path
) -> None:
    n, rounds = 3, 4
    ctx = mp.get_context("spawn")
    barrier, q = ctx.Barrier(n), ctx.Queue()
    procs = [
        ctx.Process(
            target=_server_process,
            args=(pg_url, str(tmp_path / f"server-{k}"), k, n, rounds, barrier, q),
        )
        for k in range(n)
    ]
    for p in procs:
        p.start()
    results = sorted(q.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    failures = [r[1] for r in results if r[1] != "ok"]
    assert failures == [], failures[0]
    assert all(p.exitcode == 0 for p in procs)
    # every server read every other server's writes of every round
    assert [r[2] for r in results] == [rounds * len(USERS) * (n - 1)] * n
    with _open(pg_url, tmp_path / "checker") as layer:
        for user in USERS:
            assert len(layer.preferences(user)) == (
                n * rounds  # added
                - (rounds if user == "alice" else 0)  # deleted
                + sum(1 for r in range(rounds) if USERS[r % 2] == user) * n  # edits
            )
        assert layer.store.integrity_check() == "ok"  # type: ignore[attr-defined]
