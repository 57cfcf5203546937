"""Reading and writing the columns of stored rows: JSON lists and objects, float32 vectors.

A value that does not read back is a damaged row: a :class:`StorageError` that says how to
repair it, never a silent default.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from persona.errors import StorageError


def _decode(raw: object, where: str) -> Any:
    """The JSON value of a column; text that does not parse means the row is damaged."""
    try:
        if not isinstance(raw, str | bytes):
            raise TypeError(f"a {type(raw).__name__}")
        return json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise StorageError(f"{where} holds damaged JSON ({exc}); {REPAIR}") from exc


def json_list(raw: object, where: str) -> tuple[str, ...]:
    """A JSON list of strings read from a row; anything else means the row is damaged."""
    if raw is None or raw == "":
        return ()
    value = _decode(raw, where)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StorageError(f"{where} holds {value!r:.60}, not a list of texts; {REPAIR}")
    return tuple(value)


def json_dict(raw: object, where: str) -> dict[str, Any] | None:
    """A JSON object read from a row (None when the column is empty)."""
    if raw is None or raw == "":
        return None
    value = _decode(raw, where)
    if not isinstance(value, dict):
        raise StorageError(f"{where} holds {value!r:.60}, not an object; {REPAIR}")
    return value


def json_or_null(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


REPAIR = (
    "delete that row or restore the database from a backup "
    "(export the users that still read with `persona export`)"
)


def blob(embedding: np.ndarray | None) -> bytes | None:
    if embedding is None:
        return None
    return np.ascontiguousarray(embedding, dtype=np.float32).reshape(-1).tobytes()
