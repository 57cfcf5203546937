"""The reliability suite: short in CI, long from ``persona bench reliability``.

Each test asks the ``reliability`` fixture for its sizes (``rel.n(short, long)``) and records
its figures (``rel.record("load", operations=8000, lost=0)``). With
``PERSONA_RELIABILITY=long`` the sizes are the long ones and the figures of the whole run are
written to ``$PERSONA_RELIABILITY_OUT`` (``benchmarks/reliability.json``) at the end.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pg import postgres_server  # noqa: F401  (the PostgreSQL server the backend fixture uses)

LONG = os.environ.get("PERSONA_RELIABILITY") == "long"
_FIGURES: dict[str, dict[str, Any]] = {}


@dataclass
class Reliability:
    long: bool = LONG
    figures: dict[str, dict[str, Any]] = field(default_factory=lambda: _FIGURES)

    def n(self, short: int, long: int) -> int:
        """A size: ``short`` in CI, ``long`` in the benchmark."""
        return long if self.long else short

    def record(self, part: str, **numbers: Any) -> None:
        """Add figures to ``part`` (numbers add up across tests of the same part)."""
        slot = self.figures.setdefault(part, {})
        for key, value in numbers.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and key in slot:
                slot[key] += value
            else:
                slot[key] = value


@pytest.fixture
def reliability() -> Reliability:
    return Reliability()


@dataclass
class Backend:
    """Where the layers under test keep their data: SQLite in the home directory, or a fresh
    PostgreSQL database (``url``) with each process's FAISS cache in its home directory."""

    name: str
    url: str | None = None

    def part(self, name: str) -> str:
        """A figures part, suffixed with the backend (SQLite keeps the plain names)."""
        return name if self.name == "sqlite" else f"{name}_{self.name}"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite")
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_database("rel")
    yield Backend("postgres", url)
    server.drop_database(url)


@pytest.fixture(scope="session", autouse=True)
def _write_figures() -> Iterator[None]:
    started = time.time()
    yield
    out = os.environ.get("PERSONA_RELIABILITY_OUT")
    if not out or not _FIGURES:
        return
    from persona.bench.machine import machine_info

    report = {
        "command": os.environ.get("PERSONA_RELIABILITY_COMMAND", "persona bench reliability"),
        "mode": "long" if LONG else "short",
        "machine": machine_info(),
        "seconds": round(time.time() - started, 1),
        "parts": _FIGURES,
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
