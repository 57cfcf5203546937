"""The latency benchmark on SQLite or PostgreSQL: what differs between the two stores.

SQLite: one file per part of the benchmark in the run's folder. PostgreSQL (``--store URL``):
every part in one database, told apart by user ids (``bench-…``, ``minilm-…``,
``minilm-edits-…``); the run's folder is the layer's ``PERSONA_HOME`` (its FAISS cache
files). The PostgreSQL figures are written beside SQLite's in the same JSON (key
``postgresql``), with a ``side_by_side`` table of the warm and cold p50/p99.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from persona.errors import InvalidInputError
from persona.store.urls import is_postgres_url, redact

if TYPE_CHECKING:
    from persona.layer import PreferenceLayer
    from persona.store.embed import Embedder

#: The user-id prefixes of the benchmark's parts (in one PostgreSQL database).
PREFIXES = ("bench-", "minilm-")


def open_layer(store: str | None, root: Path, name: str, embedder: Embedder) -> PreferenceLayer:
    """The layer of one part: ``root/NAME.db`` (SQLite) or the database ``store``."""
    from persona.layer import PreferenceLayer

    if is_postgres_url(store):
        os.environ["PERSONA_HOME"] = str(root)  # this process's FAISS cache files
        return PreferenceLayer.open(store, llm="fake", embedder=embedder)
    if store is not None:
        raise InvalidInputError(
            f"--store {store!r:.80} is not a PostgreSQL URL; pass postgresql://USER@HOST/DB, "
            "or leave --store out for SQLite."
        )
    return PreferenceLayer.open(root / f"{name}.db", llm="fake", embedder=embedder)


def row_count(layer: PreferenceLayer, user_ids: list[str]) -> int:
    """Preferences of these users (SQLite: of the part's own file)."""
    store: Any = layer.store
    if hasattr(store, "db"):
        return int(store.db["preferences"].count)
    return int(store.count("preferences", user_ids))


def foreign_users(layer: PreferenceLayer, user_ids: list[str]) -> list[str]:
    """Users in the store that belong to no part of this benchmark (or, on SQLite, to
    another part: each part has its own file)."""
    wanted = set(user_ids)
    shared = not hasattr(layer.store, "db")
    return [
        u
        for u in layer.store.users()
        if u not in wanted and not (shared and u.startswith(PREFIXES))
    ]


def settle(layer: PreferenceLayer, root: Path, name: str) -> int:
    """After the inserts: checkpoint (SQLite) or VACUUM ANALYZE (PostgreSQL, what autovacuum
    would do), then the store's size in bytes."""
    store: Any = layer.store
    if hasattr(store, "db"):
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        path = root / f"{name}.db"
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
    import psycopg

    with psycopg.connect(store.url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def backend_name(store: str | None) -> str:
    return "postgresql" if is_postgres_url(store) else "sqlite"


def public_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """The run's parameters as written to JSON (a store URL without its password)."""
    if params.get("store"):
        params = {**params, "store": redact(params["store"])}
    return params


_SIDE = ("total_ms", "store_ms", "sql_ms", "faiss_ms")


def side_by_side(sqlite: dict[str, Any], postgres: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of (run, phase, part): SQLite's and PostgreSQL's p50/p99, milliseconds."""
    rows = []
    runs = [("hash", sqlite.get("store_part"), postgres.get("store_part"))]
    runs.append(("minilm", sqlite.get("minilm"), postgres.get("minilm")))
    for run, lite, pg in runs:
        if not lite or not pg:
            continue
        for phase in ("cold", "warm"):
            for part in _SIDE:
                a, b = lite[phase][part], pg[phase][part]
                rows.append(
                    {
                        "run": run,
                        "phase": phase,
                        "part": part,
                        "sqlite_p50": a["p50"],
                        "postgresql_p50": b["p50"],
                        "sqlite_p99": a["p99"],
                        "postgresql_p99": b["p99"],
                    }
                )
    return rows


def merge(out: Path, result: dict[str, Any]) -> dict[str, Any]:
    """The JSON to write: a PostgreSQL result goes beside the SQLite result already in
    ``out`` (key ``postgresql``); a SQLite result keeps the PostgreSQL one already there."""
    old: dict[str, Any] = {}
    if out.is_file():
        try:
            old = json.loads(out.read_text())
        except ValueError:
            old = {}
    if old.get("benchmark") != "latency":
        old = {}
    if result["backend"] == "postgresql":
        if not old or old.get("backend", "sqlite") != "sqlite":
            return result  # nothing to stand beside: the PostgreSQL run alone
        doc = {**old, "postgresql": result}
    else:
        doc = dict(result)
        if isinstance(old.get("postgresql"), dict):
            doc["postgresql"] = old["postgresql"]
    if "postgresql" in doc:
        doc["side_by_side"] = side_by_side(doc, doc["postgresql"])
    return doc
