"""``persona migrate`` (registered by :mod:`persona.cli`): SQLite → PostgreSQL."""

from __future__ import annotations

import typer
from rich.table import Table

from persona.cli_common import err, errors, out


def migrate_cmd(
    source: str = typer.Option(
        ..., "--from", help="The SQLite store: sqlite:PATH (a .db file or a data directory)."
    ),
    target: str = typer.Option(..., "--to", help="The PostgreSQL database: postgresql://..."),
    replace: bool = typer.Option(
        False, "--replace", help="The target holds data: delete it all first (else refused)."
    ),
) -> None:
    """Copy everything from a SQLite store into PostgreSQL, verified by counts and checksums
    (all or nothing)."""
    from persona.store.migrate import copy_sqlite_to_postgres
    from persona.store.urls import redact

    with errors():
        copies = copy_sqlite_to_postgres(source, target, replace=replace)
    table = Table(title=f"copied into {redact(target)} (verified)", title_justify="left")
    for name in ("table", "rows", "checksum (sha256 sum)"):
        table.add_column(name, justify="right" if name == "rows" else "left")
    for c in copies:
        table.add_row(c.table, f"{c.rows:,}", c.checksum[:16])
    out.print(table)
    err.print("counts and checksums match the source; the target is ready.", markup=False)
