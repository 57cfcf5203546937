"""Per-user FAISS cache: one ``IndexIDMap2(IndexFlatIP)`` per user, ids = SQL row ids.

SQL is the source of truth. Each user's index is loaded lazily (from its file when that file
is current and checks out, else rebuilt from :meth:`Store.snapshot`), kept in an LRU of
``capacity`` users, and written back to disk when evicted or on :meth:`VectorIndex.flush`.

Why it cannot serve stale or foreign data:

* **Versions never repeat.** Every write to a user's vectors gives the user a new value of a
  store-wide sequence (0 means "no such user"), so a cache or file tagged with an old version
  is never taken for current, even after the user is deleted and re-created elsewhere.
* **Consistent rebuilds.** A rebuild reads the version and the vectors in one read
  transaction, and a writer updates the cache only from the exact version it replaced, so a
  row is never added twice.
* **No nested locks.** The cache lock is never held while the store is called, and the layer
  updates the cache only after its SQL transaction has committed: no lock-order deadlock.
* **Files are checked before they are trusted.** One file per user: a header (user id,
  version, count, SHA-256 of the payload) and ``faiss.serialize_index`` bytes. A file is used
  only when the version matches SQL, the checksum matches and its ids equal SQL's ids.
  Files are written to a unique temp name opened with ``O_EXCL | O_NOFOLLOW`` and renamed
  into place; temp files left by a killed process are removed on the next open.
  A failure to write the cache is logged and never reaches the caller.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from persona.config import safe_dir_name
from persona.store.base import Store

log = logging.getLogger(__name__)

_MAGIC = b"PERSONA-FAISS\x01"
_SUFFIX = ".faiss"
_TMP_SUFFIX = ".tmp"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _faiss() -> Any:
    import faiss

    return faiss


def _search(index: Any, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` on one OpenMP thread: per-user flat indexes hold at most thousands of
    vectors, where a search takes ~0.05 ms on one thread but p99 > 100 ms with 2 threads on a
    2-core machine (OpenMP spin-waits; measured by ``persona bench latency``).

    FAISS and torch share the OpenMP runtime, and its thread count is a per-thread setting:
    setting it once for FAISS left torch (the embedder, the local model) on one core in every
    thread that had searched. So it is set around the search and restored after."""
    faiss = _faiss()
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(query, k)
    finally:
        faiss.omp_set_num_threads(before)


@dataclass
class _Entry:
    index: Any  # faiss.IndexIDMap2
    version: int
    dim: int
    dirty: bool = False


def _ids_of(index: Any) -> np.ndarray:
    return np.sort(_faiss().vector_to_array(index.id_map).astype(np.int64))


class VectorIndex:
    """LRU-bounded per-user FAISS indexes over a :class:`Store`. Thread-safe."""

    def __init__(self, store: Store, root: Path | None, *, capacity: int = 256) -> None:
        self.store = store
        self.root = root
        self.capacity = capacity
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()  # guards _cache only; never held while calling the store
        self.rebuilds = 0  # how many times an index was rebuilt from SQL (for tests/benchmarks)
        if root is not None:
            self._remove_stale_temp_files()

    # -- files ---------------------------------------------------------------------------------
    def path(self, user_id: str) -> Path | None:
        """The user's cache file (``None`` when the index lives in memory only)."""
        return None if self.root is None else self.root / f"{safe_dir_name(user_id)}{_SUFFIX}"

    def _remove_stale_temp_files(self) -> None:
        """Delete temp files whose writer is gone (a process killed while saving)."""
        assert self.root is not None
        if not self.root.is_dir():
            return
        for tmp in self.root.glob(f".*{_TMP_SUFFIX}"):
            try:
                pid = int(tmp.name.split(".")[-3])
            except (ValueError, IndexError):
                pid = -1
            if pid == os.getpid() or not _alive(pid):
                tmp.unlink(missing_ok=True)

    def _read_file(self, path: Path) -> tuple[dict[str, Any], bytes] | None:
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as fh:
            data = fh.read()
        if not data.startswith(_MAGIC):
            raise ValueError("not a persona index file")
        (size,) = struct.unpack_from("<I", data, len(_MAGIC))
        start = len(_MAGIC) + 4
        header = json.loads(data[start : start + size])
        return header, data[start + size :]

    def _load_file(self, user_id: str, version: int) -> _Entry | None:
        path = self.path(user_id)
        if path is None or version == 0:
            return None
        try:
            found = self._read_file(path)
            if found is None:
                return None
            header, payload = found
            if header.get("user_id") != user_id or header.get("version") != version:
                return None
            if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
                raise ValueError("checksum mismatch")
            faiss = _faiss()
            index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
            if index.ntotal != header.get("count"):
                raise ValueError("vector count differs from the header")
            sql_version, sql_ids = self.store.vector_ids(user_id)
            if sql_version != version:
                return None  # changed meanwhile: rebuild
            if not np.array_equal(_ids_of(index), sql_ids):
                raise ValueError("ids differ from SQL")
            return _Entry(index, version, int(header["dim"]))
        except Exception as exc:  # corrupted or foreign file: rebuild from SQL
            log.warning("rebuilding FAISS index for %r: %s", user_id, exc)
            return None

    def _save(self, user_id: str, version: int, dim: int, count: int, payload: bytes) -> None:
        """Write one serialized index to its file, atomically, through a unique temp file."""
        path = self.path(user_id)
        if path is None or version == 0:
            return
        tmp: Path | None = None
        try:
            if self.store.index_version(user_id) != version:
                return  # stale (or the user is gone): never write it
            header = json.dumps(
                {
                    "user_id": user_id,
                    "version": version,
                    "dim": dim,
                    "count": count,
                    "sha256": hashlib.sha256(payload).hexdigest(),
                }
            ).encode()
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}{_TMP_SUFFIX}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(_MAGIC + struct.pack("<I", len(header)) + header + payload)
            os.replace(tmp, path)
            tmp = None
        except Exception as exc:  # a cache that cannot be written is only slower next time
            log.warning("could not save the FAISS cache of %r: %s", user_id, exc)
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def _rebuild(self, user_id: str) -> _Entry:
        faiss = _faiss()

        version, ids, mat = self.store.snapshot(user_id)
        dim = mat.shape[1] if len(ids) else 0
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(max(dim, 1)))
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(mat, dtype=np.float32), ids)
        self.rebuilds += 1
        return _Entry(index, version, dim, dirty=True)

    # -- cache ---------------------------------------------------------------------------------
    def _get(self, user_id: str) -> _Entry:
        version = self.store.index_version(user_id)
        with self._lock:
            entry = self._cache.get(user_id)
            if entry is not None and entry.version == version:
                self._cache.move_to_end(user_id)
                return entry
        entry = self._load_file(user_id, version) or self._rebuild(user_id)
        evicted: list[tuple[str, _Entry]] = []
        with self._lock:
            self._cache[user_id] = entry
            self._cache.move_to_end(user_id)
            while len(self._cache) > self.capacity:
                evicted.append(self._cache.popitem(last=False))
        for old_user, old in evicted:  # out of the cache: nobody changes them any more
            if old.dirty:
                self._save(old_user, old.version, old.dim, int(old.index.ntotal), _bytes(old))
        return entry

    def search(self, user_id: str, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest rows of this user: (row id, cosine similarity), best first."""
        entry = self._get(user_id)
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        with self._lock:  # an update may be changing this entry's index
            if entry.index.ntotal == 0 or k <= 0 or q.shape[1] != entry.dim:
                return []
            scores, ids = _search(entry.index, q, min(k, entry.index.ntotal))
        best: dict[int, float] = {}  # best first; an id appears once
        for i, s in zip(ids[0], scores[0], strict=True):
            if i >= 0:
                best.setdefault(int(i), float(s))
        return list(best.items())

    def update(
        self,
        user_id: str,
        before: int,
        after: int,
        *,
        add: tuple[np.ndarray, np.ndarray] | None = None,
        remove: list[int] | None = None,
    ) -> None:
        """Apply a committed write that moved the user's version from ``before`` to ``after``.

        Incremental when the cached index is exactly at ``before``; already at ``after``
        (a rebuild saw the write): nothing to do; otherwise the entry is dropped and the next
        search rebuilds it from SQL. Never calls the store.
        """
        with self._lock:
            entry = self._cache.get(user_id)
            if entry is None or entry.version == after:
                return
            if entry.version != before:
                del self._cache[user_id]
                return
            if remove:
                entry.index.remove_ids(np.asarray(remove, dtype=np.int64))
            if add is not None and len(add[0]):
                ids, vecs = add
                vecs = np.ascontiguousarray(vecs, dtype=np.float32).reshape(len(ids), -1)
                if entry.index.ntotal == 0 and entry.dim != vecs.shape[1]:
                    faiss = _faiss()

                    entry.index = faiss.IndexIDMap2(faiss.IndexFlatIP(vecs.shape[1]))
                    entry.dim = vecs.shape[1]
                if vecs.shape[1] != entry.dim:
                    del self._cache[user_id]
                    return
                entry.index.add_with_ids(vecs, np.asarray(ids, dtype=np.int64))
            entry.version = after
            entry.dirty = True

    def size(self, user_id: str) -> int:
        return int(self._get(user_id).index.ntotal)

    def ids(self, user_id: str) -> np.ndarray:
        """The row ids the (current) index of this user holds, sorted."""
        entry = self._get(user_id)
        with self._lock:
            return _ids_of(entry.index)

    def sweep(self, users: Iterable[str]) -> int:
        """Delete the cache files of users the store no longer has (deleted through another
        app server, whose own deletion could not reach this server's disk); returns how many.
        Called when a layer opens, before it serves anyone."""
        if self.root is None or not self.root.is_dir():
            return 0
        keep = {f"{safe_dir_name(u)}{_SUFFIX}" for u in users}
        removed = 0
        for path in self.root.glob(f"*{_SUFFIX}"):
            if path.name not in keep:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def forget(self, user_id: str) -> None:
        """Drop the cached index (not its file): the next search reloads or rebuilds it."""
        with self._lock:
            self._cache.pop(user_id, None)

    def invalidate(self, user_id: str) -> None:
        """Forget the cached index and its file (e.g. after deleting the user)."""
        with self._lock:
            self._cache.pop(user_id, None)
        path = self.path(user_id)
        if path is not None:
            path.unlink(missing_ok=True)

    def flush(self) -> None:
        """Write every changed index to disk (stale ones are skipped, never written)."""
        with self._lock:
            dirty = [(u, e) for u, e in self._cache.items() if e.dirty]
        for user_id, entry in dirty:
            with self._lock:
                if self._cache.get(user_id) is not entry:
                    continue
                saved = (entry.version, entry.dim, int(entry.index.ntotal), _bytes(entry))
                entry.dirty = False
            self._save(user_id, *saved)

    def clear(self) -> None:
        self.flush()
        with self._lock:
            self._cache.clear()


def _bytes(entry: _Entry) -> bytes:
    return bytes(_faiss().serialize_index(entry.index).tobytes())


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
