"""psycopg and pool errors as persona errors whose message names the server and the fix."""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolClosed, PoolTimeout

from persona.errors import InvalidInputError, StorageError
from persona.store.rows import REPAIR


def storage_error(where: str, exc: BaseException) -> StorageError | InvalidInputError:
    """A psycopg or pool error as a persona error whose message says what to do."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    errors = psycopg.errors
    if isinstance(exc, PoolClosed):
        return StorageError(f"the store {where} is closed; open the layer again.")
    if isinstance(exc, errors.TransactionRollback | errors.LockNotAvailable):
        return StorageError(
            f"a write to {where} conflicted with another server's ({text}); nothing was "
            "written: retry the call."
        )
    if isinstance(exc, errors.InsufficientResources):  # disk full, out of memory, too many
        return StorageError(
            f"PostgreSQL at {where} is out of resources ({text}); free disk space or raise "
            "max_connections on the database server (or lower pool_size), then retry."
        )
    if isinstance(exc, errors.InsufficientPrivilege):
        return StorageError(
            f"the PostgreSQL user of {where} may not do this ({text}); grant it CREATE and "
            "read/write on the database's schema, or connect as its owner."
        )
    if isinstance(exc, psycopg.DataError) and "0x00" in text:
        return InvalidInputError(
            f"PostgreSQL cannot store a text with a NUL character ({text}); remove it."
        )
    if isinstance(exc, PoolTimeout):
        return StorageError(
            f"no connection to PostgreSQL at {where} within the timeout ({text}); check that "
            "the server is running and reachable, or raise pool_size if every connection "
            "stayed busy."
        )
    if isinstance(exc, psycopg.OperationalError) and not isinstance(exc, errors.QueryCanceled):
        return StorageError(
            f"cannot reach PostgreSQL at {where} ({text}); check that the server is running "
            "and accepts connections from this host (listen_addresses, pg_hba.conf), and that "
            "the user, password and database in the URL are right; then retry."
        )
    return StorageError(
        f"PostgreSQL at {where} failed ({text}); check the server's log, and that the "
        f"database is a persona database; {REPAIR}."
    )
