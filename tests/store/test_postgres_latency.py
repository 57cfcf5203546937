"""``persona bench latency --store postgresql://...``: a tiny real run beside SQLite's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from persona.bench.latency import LatencyConfig, run_latency
from persona.errors import InvalidInputError


def test_postgres_figures_are_written_beside_sqlites(tmp_path: Path, pg_url: str) -> None:
    out = tmp_path / "latency.json"
    small = {"users": 3, "prefs": 30, "sample_users": 2, "queries": 4, "minilm": False}
    run_latency(LatencyConfig(**small), out)  # type: ignore[arg-type]
    pg = run_latency(LatencyConfig(**small, store=pg_url), out)  # type: ignore[arg-type]
    assert pg["backend"] == "postgresql" and pg["parameters"]["store"] == pg_url
    doc = json.loads(out.read_text())
    assert doc["backend"] == "sqlite" and doc["postgresql"]["backend"] == "postgresql"
    part = doc["postgresql"]["store_part"]
    assert part["store"]["rows"] == 90 and part["store"]["db_bytes"] > 0
    assert part["warm"]["total_ms"]["n"] == 8 and part["vectors_per_user"] == 27
    rows = {(r["run"], r["phase"], r["part"]): r for r in doc["side_by_side"]}
    warm = rows[("hash", "warm", "store_ms")]
    assert warm["sqlite_p50"] == doc["store_part"]["warm"]["store_ms"]["p50"]
    assert warm["postgresql_p50"] == part["warm"]["store_ms"]["p50"] > 0
    assert (tmp_path / "latency-postgresql.png").read_bytes()[:4] == b"\x89PNG"
    # the same data is reused on a second run; a SQLite rerun keeps the PostgreSQL entry
    again = run_latency(LatencyConfig(**small, store=pg_url), tmp_path / "again.json")  # type: ignore[arg-type]
    assert again["store_part"]["store"]["reused"] is True
    run_latency(LatencyConfig(**small), out)  # type: ignore[arg-type]
    assert "postgresql" in json.loads(out.read_text())


def test_a_database_with_other_data_is_refused(tmp_path: Path, pg_url: str) -> None:
    from persona.store.postgres import PostgresStore

    s = PostgresStore(pg_url)
    s.add_preference("a real user", "terse", "manual")
    s.close()
    cfg = LatencyConfig(users=2, prefs=10, sample_users=1, queries=1, minilm=False, store=pg_url)
    with pytest.raises(InvalidInputError, match="already holds 1 users"):
        run_latency(cfg, tmp_path / "x.json")


def test_store_must_be_a_postgres_url(tmp_path: Path) -> None:
    cfg = LatencyConfig(users=2, prefs=10, sample_users=1, queries=1, minilm=False, store="x.db")
    with pytest.raises(InvalidInputError, match="not a PostgreSQL URL"):
        run_latency(cfg, tmp_path / "x.json")
