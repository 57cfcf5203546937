"""Where a store lives: one function that opens the store a location names."""

from __future__ import annotations

from pathlib import Path

from persona.config import resolve_home
from persona.store.base import Store
from persona.store.urls import is_postgres_url


def open_store(
    location: str | Path | None, *, synchronous: str = "normal", pool_size: int = 16
) -> tuple[Store, Path]:
    """``(store, home)`` for a location: a directory or ``.db`` file (SQLite; the directory
    also holds the FAISS cache and adapters), or a ``postgresql://`` URL (PostgreSQL; this
    server's FAISS cache and adapters stay under ``$PERSONA_HOME``). None: ``$PERSONA_HOME``."""
    if is_postgres_url(location):
        from persona.store.postgres import PostgresStore

        home, _ = resolve_home(None)
        return PostgresStore(str(location), pool_size=pool_size), home
    from persona.store.sqlite import SQLiteStore

    home, db_path = resolve_home(location)
    return SQLiteStore(db_path, synchronous=synchronous), home
