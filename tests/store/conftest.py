"""The store tests' fixtures: a real PostgreSQL server (see ``tests/pg.py``)."""

from pg import pg_url, postgres_server

__all__ = ["pg_url", "postgres_server"]
