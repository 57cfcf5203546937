"""``persona migrate --from sqlite:PATH --to postgresql://...`` against a real server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest
from conformance import vec
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from typer.testing import CliRunner

from persona import PreferenceLayer
from persona.cli import app
from persona.errors import InvalidInputError, StorageError
from persona.store.embed import HashEmbedder
from persona.store.migrate import copy_sqlite_to_postgres
from persona.store.postgres import PostgresStore
from persona.store.sqlite import SQLiteStore


def _fill(path: Path) -> SQLiteStore:
    """A store with every kind of row, odd text and two users."""
    s = SQLiteStore(path)
    for uid in ("alice", "bob ü 🙂"):
        s.add_preference(uid, "no emojis 🙅 — نعم", "manual")
        p = s.add_preference(
            uid, "bullets", "edit", context="Summarize", embedding=vec(1), provenance=["edit:1"]
        )
        s.add_preference(uid, "off", "feedback", embedding=vec(2), enabled=False, flagged=True)
        s.update_preference(uid, p.id, text="bullet points")
        s.add_edit(uid, "ctx", "out", "out!")
        f = s.add_feedback(uid, "no emojis", ["email"], ["tweet"], dataset={"in": ["a"]})
        s.update_feedback(
            uid, f.id, in_scope=["email"], out_of_scope=[], dataset={"x": 1}, scope_model={"w": 2}
        )
        s.add_label(uid, "q", "good", "bad", embedding=vec(3))
        s.add_label(uid, "q2", "good", "bad")
        s.set_adapter(uid, "a-v1", "adapters/a", {"steps": 3})
    s.delete_preference("alice", s.add_preference("alice", "gone", "manual").id)
    s.set_meta("embedder", "hash:8")
    return s


def _everything(store: SQLiteStore | PostgresStore) -> dict[str, object]:
    out: dict[str, object] = {"users": store.users()}
    for uid in store.users():
        out[uid] = (
            store.list_preferences(uid),
            store.vectors(uid)[0].tolist(),
            store.vectors(uid)[1].tolist(),
            store.list_edits(uid),
            store.list_feedback(uid),
            store.scope_revisions(uid),
            [store.scope_model(uid, f.id) for f in store.list_feedback(uid)],
            store.list_labels(uid),
            {k: None if v is None else v.tolist() for k, v in store.label_vectors(uid).items()},
            store.get_adapter(uid),
        )
    out["embedder"] = store.get_meta("embedder")
    return out


def test_copies_everything_with_ids_vectors_and_versions(tmp_path: Path, pg_url: str) -> None:
    lite = _fill(tmp_path / "persona.db")
    before = _everything(lite)
    versions = {u: lite.index_version(u) for u in lite.users()}
    lite.close()
    copies = copy_sqlite_to_postgres(f"sqlite:{tmp_path / 'persona.db'}", pg_url)
    assert {c.table: c.rows for c in copies} == {
        "users": 2, "preferences": 6, "edits": 2, "feedback": 2, "labels": 4, "adapters": 2,
        "meta": 1,
    }  # fmt: skip
    pg = PostgresStore(pg_url)
    assert _everything(pg) == before
    assert {u: pg.index_version(u) for u in pg.users()} == versions
    # new ids and versions continue after the copied ones: nothing is ever reused
    seq = max(versions.values())
    p = pg.add_preference("alice", "new", "manual", embedding=vec(4))
    assert p.id > max(q.id for u in pg.users() for q in pg.list_preferences(u) if q.id != p.id)
    assert pg.index_version("alice") > seq
    label_ids = [lb.id for u in pg.users() for lb in pg.list_labels(u)]
    assert pg.add_label("alice", "q3", "a", "b").id > max(label_ids)
    pg.close()


def test_a_target_with_data_is_refused_unless_replace(tmp_path: Path, pg_url: str) -> None:
    _fill(tmp_path / "persona.db").close()
    pg = PostgresStore(pg_url)
    pg.add_preference("carol", "mine", "manual")
    pg.close()
    with pytest.raises(InvalidInputError, match="already holds persona data.*--replace"):
        copy_sqlite_to_postgres(tmp_path, pg_url)
    pg = PostgresStore(pg_url)
    assert pg.users() == ["carol"]  # untouched
    pg.close()
    copy_sqlite_to_postgres(tmp_path, pg_url, replace=True)
    pg = PostgresStore(pg_url)
    assert pg.users() == ["alice", "bob ü 🙂"]
    pg.close()


def test_a_mismatch_writes_nothing(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import persona.store.migrate as migrate

    _fill(tmp_path / "persona.db").close()
    real = migrate._canonical
    calls = {"n": 0}

    def flaky(value: object) -> object:  # the read-back of one value differs from the source
        calls["n"] += 1
        return "corrupted" if calls["n"] == 40 else real(value)

    monkeypatch.setattr(migrate, "_canonical", flaky)
    with pytest.raises(StorageError, match="does not match the source.*nothing was written"):
        copy_sqlite_to_postgres(tmp_path, pg_url)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_bad_locations_are_named(tmp_path: Path, pg_url: str) -> None:
    with pytest.raises(InvalidInputError, match="no SQLite store"):
        copy_sqlite_to_postgres(tmp_path / "missing.db", pg_url)
    _fill(tmp_path / "p.db").close()
    with pytest.raises(InvalidInputError, match="not a PostgreSQL URL"):
        copy_sqlite_to_postgres(tmp_path / "p.db", "mysql://x")


def test_cli_migrates_then_a_layer_serves_the_users(tmp_path: Path, pg_url: str) -> None:
    home = tmp_path / "home"
    emb = HashEmbedder(dim=64)
    with PreferenceLayer.open(home, llm=FakeListChatModel(responses=["x"]), embedder=emb) as lyr:
        lyr.add_preference("alice", "bullet points", context="summarize the report")
        lyr.learn_from_labels("alice", "a question", "short", "a long answer")
    runner = CliRunner()
    result = runner.invoke(app, ["migrate", "--from", f"sqlite:{home}", "--to", pg_url])
    assert result.exit_code == 0, result.output
    assert "preferences" in result.output and "checksum" in result.output
    again = runner.invoke(app, ["migrate", "--from", f"sqlite:{home}", "--to", pg_url])
    assert again.exit_code == 1 and "--replace" in again.output
    with PreferenceLayer.open(pg_url, llm=FakeListChatModel(responses=["x"]), embedder=emb) as lyr:
        cond = lyr.condition("alice", "summarize the report")
        assert [p.text for p in cond.preferences] == ["bullet points"]
        assert len(lyr.labels("alice")) == 1
        assert np.isfinite(lyr.score("alice", "a question", ["short", "long"])).all()


def test_every_command_takes_a_postgresql_url_as_path(pg_url: str) -> None:
    """The global --path keeps the URL's ``//`` (a Path would collapse it)."""
    runner = CliRunner()
    args = ["--path", pg_url, "--embedder", "hash"]
    added = runner.invoke(app, [*args, "prefs", "add", "alice", "bullet points"])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, [*args, "prefs", "list", "alice"])
    assert "bullet points" in listed.output
    store = PostgresStore(pg_url)
    assert store.users() == ["alice"]
    store.close()
