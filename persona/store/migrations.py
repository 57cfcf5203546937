"""The SQLite schema, changed only through sqlite-utils migrations (``m00N_...`` functions).

Applied by :class:`~persona.store.sqlite.SQLiteStore` on open, under the write lock, so that
several processes opening a new file wait for each other.
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils import Migrations

migrations = Migrations("persona")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db.table("users").create({"id": str, "created_at": float, "index_version": int}, pk="id")
    db.table("preferences").create(
        {
            "id": int,
            "user_id": str,
            "text": str,
            "source": str,
            "enabled": int,
            "scope": str,
            "provenance": str,  # JSON list of "kind:id"
            "context": str,
            "embedding": bytes,  # float32, L2-normalized; of `context` if set, else of `text`
            "flagged": int,
            "created_at": float,
            "updated_at": float,
        },
        pk="id",
        foreign_keys=[("user_id", "users", "id")],
        not_null={"user_id", "text", "source"},
    )
    db.table("preferences").create_index(["user_id", "enabled"])
    # condition() lists the user's global preferences (no context, no scope) on every call
    db.execute(
        "CREATE INDEX idx_preferences_global ON preferences (user_id) "
        "WHERE context IS NULL AND scope IS NULL"
    )
    for name, cols in {
        "edits": {"context": str, "output": str, "edited": str},
        "feedback": {"text": str, "in_scope": str, "out_of_scope": str},
        "labels": {"prompt": str, "chosen": str, "rejected": str},
    }.items():
        db.table(name).create(
            {"id": int, "user_id": str, **cols, "created_at": float},
            pk="id",
            foreign_keys=[("user_id", "users", "id")],
        )
        db.table(name).create_index(["user_id"])
    db.table("adapters").create(
        {"user_id": str, "name": str, "path": str, "meta": str, "created_at": float},
        pk="user_id",
        foreign_keys=[("user_id", "users", "id")],
    )
    db.table("meta").create({"key": str, "value": str}, pk="key")


@migrations()
def m002_autoincrement_and_version_sequence(db: sqlite_utils.Database) -> None:
    """Row ids are never reused (a deleted preference's id can never point at another user's
    row) and index versions come from one sequence, so they never repeat for a user, even
    after the user is deleted and re-created."""
    for table in ("preferences", "edits", "feedback", "labels"):
        sql = db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()[0]
        indexes = [
            r[0]
            for r in db.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                "AND sql IS NOT NULL",
                (table,),
            ).fetchall()
        ]
        new_sql = sql.replace('"id" INTEGER PRIMARY KEY', '"id" INTEGER PRIMARY KEY AUTOINCREMENT')
        new_sql = new_sql.replace(f'CREATE TABLE "{table}"', f'CREATE TABLE "{table}_new"', 1)
        db.execute(new_sql)
        db.execute(f'INSERT INTO "{table}_new" SELECT * FROM "{table}"')
        db.execute(f'DROP TABLE "{table}"')
        db.execute(f'ALTER TABLE "{table}_new" RENAME TO "{table}"')
        for index_sql in indexes:
            db.execute(index_sql)
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('index_seq', "
        "(SELECT COALESCE(MAX(index_version), 0) FROM users))"
    )


@migrations()
def m003_feedback_scope(db: sqlite_utils.Database) -> None:
    """C3PO: each feedback keeps its synthetic dataset (JSON), its fitted scope model (JSON)
    and a revision that grows whenever the scope changes (caches key on id and revision)."""
    db.execute("ALTER TABLE feedback ADD COLUMN dataset TEXT")
    db.execute("ALTER TABLE feedback ADD COLUMN scope_model TEXT")
    db.execute("ALTER TABLE feedback ADD COLUMN scope_rev INTEGER NOT NULL DEFAULT 0")


@migrations()
def m004_label_embedding(db: sqlite_utils.Database) -> None:
    """FSPO: each labeled pair keeps its prompt's embedding, so the pairs most relevant to a
    request are found without re-embedding them (NULL for pairs stored before: embedded on
    first use)."""
    db.execute("ALTER TABLE labels ADD COLUMN embedding BLOB")


KNOWN_MIGRATIONS = frozenset(
    {
        "m001_initial",
        "m002_autoincrement_and_version_sequence",
        "m003_feedback_scope",
        "m004_label_embedding",
    }
)
