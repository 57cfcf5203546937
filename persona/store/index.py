"""Per-user FAISS cache: one ``IndexIDMap2(IndexFlatIP)`` per user, ids = SQL row ids.

SQL is the source of truth. Each user's index is loaded lazily (from its file when that file
is current, else rebuilt from :meth:`Store.vectors`), kept in an LRU of ``capacity`` users,
and written back to disk when evicted or on :meth:`VectorIndex.flush`. Staleness is decided by
the user's ``index_version`` in SQL, so a write from another process is seen on the next
search. A missing, corrupted or stale file is rebuilt silently. Indexes are written with
``faiss.write_index`` — never pickled.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from persona.config import safe_dir_name
from persona.store.base import Store

log = logging.getLogger(__name__)

_configured = False


def _faiss() -> Any:
    """faiss, limited to one OpenMP thread: per-user flat indexes hold at most thousands of
    vectors, where a search takes ~0.05 ms on one thread but p99 > 100 ms with 2 threads on a
    2-core machine (OpenMP spin-waits; measured by ``persona bench latency``)."""
    global _configured
    import faiss

    if not _configured:
        faiss.omp_set_num_threads(1)
        _configured = True
    return faiss


@dataclass
class _Entry:
    index: Any  # faiss.IndexIDMap2
    version: int
    dim: int
    dirty: bool = False


class VectorIndex:
    """LRU-bounded per-user FAISS indexes over a :class:`Store`."""

    def __init__(self, store: Store, root: Path | None, *, capacity: int = 256) -> None:
        self.store = store
        self.root = root
        self.capacity = capacity
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.RLock()
        self.rebuilds = 0  # how many times an index was rebuilt from SQL (for tests/benchmarks)

    # -- files ---------------------------------------------------------------------------------
    def _paths(self, user_id: str) -> tuple[Path, Path] | None:
        if self.root is None:
            return None
        name = safe_dir_name(user_id)
        return self.root / f"{name}.faiss", self.root / f"{name}.json"

    def _load_file(self, user_id: str, version: int) -> _Entry | None:
        faiss = _faiss()

        paths = self._paths(user_id)
        if paths is None or not paths[0].exists() or not paths[1].exists():
            return None
        try:
            meta = json.loads(paths[1].read_text())
            if meta.get("version") != version or meta.get("user_id") != user_id:
                return None
            index = faiss.read_index(str(paths[0]))
            if index.ntotal != meta.get("count"):
                return None
            return _Entry(index, version, int(meta["dim"]))
        except Exception as exc:  # corrupted file: rebuild from SQL
            log.warning("rebuilding FAISS index for %r: %s", user_id, exc)
            return None

    def _save(self, user_id: str, entry: _Entry) -> None:
        faiss = _faiss()

        paths = self._paths(user_id)
        if paths is None or not entry.dirty:
            return
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        tmp = paths[0].with_suffix(".faiss.tmp")
        faiss.write_index(entry.index, str(tmp))
        os.replace(tmp, paths[0])
        meta = {"user_id": user_id, "version": entry.version, "dim": entry.dim}
        meta["count"] = int(entry.index.ntotal)
        tmp_meta = paths[1].with_suffix(".json.tmp")
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, paths[1])
        entry.dirty = False

    def _rebuild(self, user_id: str, version: int) -> _Entry:
        faiss = _faiss()

        ids, mat = self.store.vectors(user_id)
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
            entry = self._load_file(user_id, version) or self._rebuild(user_id, version)
            self._cache[user_id] = entry
            self._cache.move_to_end(user_id)
            while len(self._cache) > self.capacity:
                old_user, old = self._cache.popitem(last=False)
                self._save(old_user, old)
            return entry

    def search(self, user_id: str, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest rows of this user: (row id, cosine similarity), best first."""
        entry = self._get(user_id)
        if entry.index.ntotal == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if q.shape[1] != entry.dim:
            return []
        scores, ids = entry.index.search(q, min(k, entry.index.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def update(
        self,
        user_id: str,
        before: int,
        *,
        add: tuple[np.ndarray, np.ndarray] | None = None,
        remove: list[int] | None = None,
    ) -> None:
        """Apply a write that moved the user's version from ``before`` to ``before + 1``.

        Incremental when the cached index is exactly at ``before``; otherwise the cache entry
        is dropped and the next search rebuilds it from SQL.
        """
        after = self.store.index_version(user_id)
        with self._lock:
            entry = self._cache.get(user_id)
            if entry is None:
                return
            if entry.version != before or after != before + 1:
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

    def invalidate(self, user_id: str) -> None:
        """Forget the cached index and its file (e.g. after deleting the user)."""
        with self._lock:
            self._cache.pop(user_id, None)
        paths = self._paths(user_id)
        if paths:
            for p in paths:
                p.unlink(missing_ok=True)

    def flush(self) -> None:
        """Write every changed index to disk."""
        with self._lock:
            for user_id, entry in self._cache.items():
                self._save(user_id, entry)

    def clear(self) -> None:
        with self._lock:
            self.flush()
            self._cache.clear()
