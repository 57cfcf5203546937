from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conformance import vec

from persona.store.index import VectorIndex
from persona.store.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "p.db")
    yield s
    s.close()


def fill(store: SQLiteStore, user: str, n: int) -> list[int]:
    return [store.add_preference(user, f"p{i}", "edit", embedding=vec(i)).id for i in range(n)]


def test_search_returns_nearest_own_rows(store: SQLiteStore, tmp_path: Path) -> None:
    ids = fill(store, "alice", 20)
    fill(store, "bob", 5)
    index = VectorIndex(store, tmp_path / "index")
    hits = index.search("alice", vec(7), 3)
    assert hits[0][0] == ids[7] and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert len(hits) == 3 and all(i in ids for i, _ in hits)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert index.search("carol", vec(1), 3) == []


def test_file_is_reused_then_rebuilt_when_stale_missing_or_corrupt(
    store: SQLiteStore, tmp_path: Path
) -> None:
    fill(store, "alice", 10)
    root = tmp_path / "index"
    first = VectorIndex(store, root)
    expected = first.search("alice", vec(3), 5)
    first.flush()
    [faiss_file] = root.glob("*.faiss")

    again = VectorIndex(store, root)
    assert again.search("alice", vec(3), 5) == expected and again.rebuilds == 0

    faiss_file.write_bytes(b"garbage")
    corrupt = VectorIndex(store, root)
    assert corrupt.search("alice", vec(3), 5) == expected and corrupt.rebuilds == 1

    faiss_file.unlink()
    missing = VectorIndex(store, root)
    assert missing.search("alice", vec(3), 5) == expected and missing.rebuilds == 1

    corrupt.flush()
    store.add_preference("alice", "new", "edit", embedding=vec(99))  # another writer
    stale = VectorIndex(store, root)
    assert stale.search("alice", vec(99), 1)[0][1] == pytest.approx(1.0, abs=1e-5)
    assert stale.rebuilds == 1


def test_cached_index_sees_writes_from_another_process(store: SQLiteStore, tmp_path: Path) -> None:
    fill(store, "alice", 3)
    index = VectorIndex(store, None)
    index.search("alice", vec(0), 1)
    other = SQLiteStore(store.path)
    new = other.add_preference("alice", "from elsewhere", "edit", embedding=vec(42))
    assert index.search("alice", vec(42), 1)[0][0] == new.id
    other.close()


def test_incremental_update_matches_rebuild(store: SQLiteStore) -> None:
    ids = fill(store, "alice", 5)
    index = VectorIndex(store, None)
    index.search("alice", vec(0), 1)
    before = store.index_version("alice")
    p = store.add_preference("alice", "x", "edit", embedding=vec(50))
    after = store.index_version("alice")
    index.update("alice", before, after, add=(np.array([p.id]), vec(50)[None, :]))
    before = store.index_version("alice")
    store.delete_preference("alice", ids[0])
    index.update("alice", before, store.index_version("alice"), remove=[ids[0]])
    rebuilds = index.rebuilds
    assert index.size("alice") == 5 and index.rebuilds == rebuilds
    fresh = VectorIndex(store, None)
    for q in (vec(50), vec(0), vec(3)):
        assert index.search("alice", q, 3) == fresh.search("alice", q, 3)


def test_lru_keeps_at_most_capacity_users(store: SQLiteStore, tmp_path: Path) -> None:
    for u in range(5):
        fill(store, f"user{u}", 2)
    index = VectorIndex(store, tmp_path / "index", capacity=2)
    for u in range(5):
        index.search(f"user{u}", vec(0), 1)
    assert len(index._cache) == 2
    assert len(list((tmp_path / "index").glob("*.faiss"))) == 3  # evicted ones were saved


def test_sweep_removes_the_files_of_users_deleted_elsewhere(
    store: SQLiteStore, tmp_path: Path
) -> None:
    """Another app server deleted the user in the shared database; this server's cache file
    of that user must not outlive its next start."""
    fill(store, "alice", 3)
    fill(store, "bob", 3)
    index = VectorIndex(store, tmp_path / "index")
    index.search("alice", vec(1), 1)
    index.search("bob", vec(1), 1)
    index.flush()
    alice, bob = index.path("alice"), index.path("bob")
    assert alice is not None and bob is not None and alice.exists() and bob.exists()
    store.delete_user("alice")  # as another server would: this index is not told
    assert VectorIndex(store, tmp_path / "index").sweep(store.users()) == 1
    assert not alice.exists() and bob.exists()
