"""Per-user storage: SQL is the source of truth, FAISS a per-user cache rebuilt from it."""

from persona.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(location: str, **kwargs: object) -> Store:
    """Open a store from a location: a SQLite file path (PostgreSQL URLs arrive later)."""
    from persona.store.sqlite import SQLiteStore

    return SQLiteStore(location, **kwargs)  # type: ignore[arg-type]
