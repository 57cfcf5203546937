"""Serving per-user adapters: an LRU of LoRAs on one base model, a different one per row.

:class:`AdapterPool` wraps its own copy of the base model in a peft ``PeftModel`` and loads a
user's adapter folder on first use (≈ 0.2 s for SmolLM2's), keeping at most ``capacity``;
the least recently used is unloaded when another is needed. Generation passes
``adapter_names`` (one per row, ``"__base__"`` for none), so one ``generate`` can serve
several users, each with their own adapter, and no global "active adapter" is ever switched.

An adapter is keyed by its folder and the modification time of its weights: a retrained
adapter gets a new key and is loaded afresh, never served stale. Loading and unloading take
the pool's write lock; generation holds its read lock, so an adapter in use is never unloaded.

A user adapter learns a change to the weights it was trained on, which include the merged
follow adapter. Its record names that follow adapter by digest (:data:`FOLLOW_FIELD`), and a
pool refuses an adapter trained on other weights (:func:`follow_mismatch`) rather than serve
a change meant for another model.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from persona.errors import ModelError

BASE = "__base__"
WEIGHTS = "adapter_model.safetensors"
#: The records a trained adapter carries: a user's adapter, a C3PO adapter, FSPO's.
RECORDS = ("training.json", "c3po.json", "fspo.json")
#: The record field naming the follow adapter merged into the weights an adapter was trained
#: on: its digest (:func:`persona.agents.weights.adapter_digest`), or null for none. Written
#: for adapters trained on the packaged local model; one trained on another base (``base=``)
#: has none, and is not checked.
FOLLOW_FIELD = "follow_adapter_sha256"
#: A pool's ``follow`` that checks nothing (the weights' follow adapter is not known).
ANY_FOLLOW = "*"


def trained_follow(folder: str | Path) -> tuple[bool, str | None]:
    """``(recorded, digest)``: the follow adapter the adapter in ``folder`` was trained on.
    ``recorded`` is False for an adapter trained on another base model, or before persona
    recorded it."""
    for name in RECORDS:
        try:
            record = json.loads((Path(folder) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and FOLLOW_FIELD in record:
            value = record[FOLLOW_FIELD]
            return True, value if isinstance(value, str) else None
    return False, None


def _weights_name(digest: str | None) -> str:
    return f"follow adapter {digest}" if digest else "no follow adapter"


def follow_mismatch(folder: str | Path, follow: str | None) -> str | None:
    """Why the adapter in ``folder`` does not fit weights carrying the follow adapter
    ``follow`` (a digest; None: no follow adapter), or None when it fits or is unrecorded."""
    recorded, trained = trained_follow(folder)
    if not recorded or trained == follow:
        return None
    return (
        f"the adapter at {folder} was trained on the local model with "
        f"{_weights_name(trained)}, but this model runs with {_weights_name(follow)}"
    )


class _RWLock:
    """Many readers or one writer; a waiting writer is not starved by new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def adapter_key(folder: str | Path) -> str:
    """A peft-safe name for the adapter in ``folder``, new whenever its weights change."""
    path = Path(folder).resolve()
    try:
        stamp = (path / WEIGHTS).stat().st_mtime_ns
    except OSError as exc:
        raise ModelError(
            f"no adapter weights at {path / WEIGHTS}; train the user's adapter first "
            "(`persona train-adapters --users ID`)."
        ) from exc
    digest = hashlib.sha256(f"{path}\x00{stamp}".encode()).hexdigest()[:16]
    return f"a{digest}"


class AdapterPool:
    """Up to ``capacity`` user adapters loaded on one base model (see the module docstring)."""

    def __init__(self, base_model: Any, capacity: int = 8, follow: str | None = ANY_FOLLOW) -> None:
        """``follow``: the digest of the follow adapter merged into ``base_model`` (None:
        none); adapters recorded as trained on other weights are refused. :data:`ANY_FOLLOW`
        checks nothing."""
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.base = base_model
        self.capacity = capacity
        self.follow = follow
        self.model: Any = None  # the PeftModel, built on the first adapter
        self._loaded: OrderedDict[str, str] = OrderedDict()  # key -> folder, LRU order
        self._lock = _RWLock()
        self._mutex = threading.Lock()  # guards _loaded's order between readers
        self.loads = 0
        self.evictions = 0

    @property
    def loaded(self) -> list[str]:
        with self._mutex:
            return list(self._loaded)

    def _load(self, key: str, folder: str, keep: set[str]) -> None:
        """Load one adapter, then unload the least recently used ones not in ``keep``."""
        from peft import PeftModel

        why = None if self.follow == ANY_FOLLOW else follow_mismatch(folder, self.follow)
        if why:
            raise ModelError(
                f"{why}; retrain it on this model (`persona train-adapters --users ID`), or "
                "serve it with the follow adapter it was trained on (follow_adapter=...)."
            )
        try:
            if self.model is None:
                self.model = PeftModel.from_pretrained(self.base, folder, adapter_name=key)
            else:
                self.model.load_adapter(folder, adapter_name=key)
        except Exception as exc:
            raise ModelError(
                f"could not load the adapter at {folder} ({type(exc).__name__}: {exc}); it "
                "must be a LoRA trained on this base model; retrain it."
            ) from exc
        self.model.eval()
        self.loads += 1
        with self._mutex:
            self._loaded[key] = folder
            for old in [k for k in self._loaded if k not in keep]:
                if len(self._loaded) <= self.capacity:
                    break
                del self._loaded[old]
                self.model.delete_adapter(old)
                self.evictions += 1

    @contextmanager
    def using(self, folders: Sequence[str | None]) -> Iterator[tuple[Any, list[str] | None]]:
        """``(model, adapter_names)`` for rows served by ``folders`` (None: the base model),
        with every adapter loaded and none unloaded until the block ends. ``adapter_names``
        is None while no adapter was ever loaded (the plain base model serves every row)."""
        keys = [BASE if f is None else adapter_key(f) for f in folders]
        wanted = {k: str(f) for k, f in zip(keys, folders, strict=True) if f is not None}
        if len(wanted) > self.capacity:
            raise ModelError(
                f"{len(wanted)} different adapters in one batch, more than the pool's "
                f"capacity {self.capacity}; raise max_adapters or batch fewer users."
            )
        while True:
            with self._lock.read():
                with self._mutex:
                    missing = [k for k in wanted if k not in self._loaded]
                    if not missing:
                        for k in wanted:
                            self._loaded.move_to_end(k)
                if not missing:
                    names = keys if self.model is not None else None
                    yield (self.model if self.model is not None else self.base), names
                    return
            with self._lock.write():
                for key in wanted:
                    if key not in self._loaded:
                        self._load(key, wanted[key], keep=set(wanted))
