"""The store conformance suite: every backend subclasses :class:`StoreConformance` and
supplies an empty-store fixture named ``store`` (like langchain's BaseStoreSyncTests)."""

from __future__ import annotations

import numpy as np
import pytest

from persona.errors import ConflictError, InvalidInputError, NotFoundError
from persona.store.base import Store


def vec(seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


class StoreConformance:
    def test_users_start_empty_and_are_created_on_write(self, store: Store) -> None:
        assert store.users() == []
        assert not store.has_user("alice")
        store.add_preference("alice", "bullet points", "manual")
        store.ensure_user("bob")
        store.ensure_user("bob")
        assert store.users() == ["alice", "bob"]

    def test_preference_round_trip(self, store: Store) -> None:
        p = store.add_preference(
            "alice",
            "no emojis 🙅 — نعم",
            "edit",
            context="Summarize this",
            embedding=vec(1),
            provenance=["edit:3"],
            scope="emails",
        )
        [got] = store.get_preferences("alice", [p.id])
        assert got == p
        assert got.text == "no emojis 🙅 — نعم" and got.provenance == ("edit:3",)
        assert got.enabled and not got.flagged and got.created_at > 0

    def test_no_call_returns_another_users_rows(self, store: Store) -> None:
        a = store.add_preference("alice", "terse", "manual", embedding=vec(1))
        b = store.add_preference("bob", "verbose", "manual", embedding=vec(2))
        assert store.get_preferences("alice", [a.id, b.id]) == [a]
        assert [p.text for p in store.list_preferences("bob")] == ["verbose"]
        ids, _ = store.vectors("alice")
        assert ids.tolist() == [a.id]
        with pytest.raises(NotFoundError, match=str(b.id)):
            store.update_preference("alice", b.id, text="hijacked")
        with pytest.raises(NotFoundError):
            store.delete_preference("alice", b.id)
        assert store.get_preferences("bob", [b.id])[0].text == "verbose"

    def test_update_and_delete(self, store: Store) -> None:
        p = store.add_preference("alice", "terse", "manual", embedding=vec(1))
        v0 = store.index_version("alice")
        q = store.update_preference("alice", p.id, text="very terse", enabled=False)
        assert q.text == "very terse" and not q.enabled and q.updated_at >= p.updated_at
        assert store.index_version("alice") > v0
        assert store.vectors("alice")[0].tolist() == []
        with pytest.raises(InvalidInputError, match="source"):
            store.update_preference("alice", p.id, source="label")
        store.delete_preference("alice", p.id)
        assert store.list_preferences("alice") == []
        with pytest.raises(NotFoundError):
            store.delete_preference("alice", p.id)

    def test_vectors_only_enabled_embedded_rows(self, store: Store) -> None:
        a = store.add_preference("alice", "a", "manual", embedding=vec(1))
        store.add_preference("alice", "b", "manual")  # no embedding: global
        c = store.add_preference("alice", "c", "edit", embedding=vec(3), enabled=False)
        d = store.add_preference("alice", "d", "edit", embedding=vec(4))
        ids, mat = store.vectors("alice")
        assert ids.tolist() == [a.id, d.id]
        assert mat.shape == (2, 8) and mat.dtype == np.float32
        np.testing.assert_allclose(mat[1], vec(4))
        assert c.id not in ids
        assert store.list_preferences("alice", enabled_only=True, source="edit") == [
            store.get_preferences("alice", [d.id])[0]
        ]

    def test_index_version_counts_vector_writes(self, store: Store) -> None:
        assert store.index_version("nobody") == 0
        store.add_preference("alice", "global", "manual")
        v0 = store.index_version("alice")
        p = store.add_preference("alice", "ctx", "edit", embedding=vec(1))
        v1 = store.index_version("alice")
        store.update_preference("alice", p.id, text="renamed")
        assert store.index_version("alice") == v1 > v0
        store.delete_preference("alice", p.id)
        assert store.index_version("alice") > v1

    def test_transaction_is_all_or_nothing(self, store: Store) -> None:
        store.ensure_user("alice")
        with pytest.raises(RuntimeError), store.transaction():
            store.add_edit("alice", "ctx", "out", "edited")
            store.add_preference("alice", "bullets", "edit", embedding=vec(1))
            raise RuntimeError("learner failed")
        assert store.list_edits("alice") == []
        assert store.list_preferences("alice") == []
        with store.transaction(), store.transaction():
            store.add_label("alice", "p", "a", "b")
        assert len(store.list_labels("alice")) == 1

    def test_events_round_trip_per_user(self, store: Store) -> None:
        e = store.add_edit("alice", "ctx", "out", "out!")
        f = store.add_feedback("alice", "no emojis", ["email to boss"], ["tweet"])
        lb = store.add_label("alice", "q", "good", "bad")
        store.add_edit("bob", "ctx2", "x", "y")
        assert store.list_edits("alice") == [e]
        assert store.list_feedback("alice") == [f]
        assert f.in_scope == ("email to boss",) and f.out_of_scope == ("tweet",)
        assert store.list_labels("alice") == [lb]
        assert store.list_labels("bob") == []

    def test_a_feedback_update_at_a_stale_revision_writes_nothing(self, store: Store) -> None:
        f = store.add_feedback("alice", "no emojis", ["email to boss"])
        rev = store.scope_revisions("alice")[f.id]

        def update(example: str, revision: int | None) -> None:
            store.update_feedback(
                "alice",
                f.id,
                in_scope=[example],
                out_of_scope=[],
                dataset={"x": example},
                scope_model={"w": example},
                revision=revision,
            )

        update("first", rev)
        assert store.scope_revisions("alice")[f.id] == rev + 1
        with pytest.raises(ConflictError, match=f"since revision {rev}"):
            update("second", rev)  # read before "first" landed
        assert store.get_feedback("alice", f.id).in_scope == ("first",)
        assert store.scope_model("alice", f.id) == (rev + 1, {"w": "first"})
        update("second", rev + 1)
        update("third", None)  # no revision: the write always lands
        assert store.get_feedback("alice", f.id).in_scope == ("third",)
        assert store.scope_revisions("alice")[f.id] == rev + 3

    def test_labels_keep_their_vectors_and_stay_per_user(self, store: Store) -> None:
        a = store.add_label("alice", "q1", "good", "bad", embedding=vec(1))
        b = store.add_label("alice", "q2", "good", "bad")  # stored before vectors existed
        c = store.add_label("bob", "q3", "good", "bad", embedding=vec(2))
        got = store.label_vectors("alice")
        assert set(got) == {a.id, b.id} and got[b.id] is None
        assert np.allclose(got[a.id], vec(1))
        assert store.get_labels("alice", [b.id, c.id, a.id]) == [b, a]  # bob's is not alice's
        with pytest.raises(NotFoundError):
            store.delete_label("alice", c.id)
        store.delete_label("alice", a.id)
        assert store.list_labels("alice") == [b] and store.list_labels("bob") == [c]

    def test_adapter_record(self, store: Store) -> None:
        assert store.get_adapter("alice") is None
        store.set_adapter("alice", "alice-v1", "/adapters/a", {"steps": 3})
        store.set_adapter("alice", "alice-v2", "/adapters/a", {"steps": 5})
        got = store.get_adapter("alice")
        assert got is not None and got["name"] == "alice-v2" and got["meta"] == {"steps": 5}

    def test_delete_user_leaves_nothing_and_spares_others(self, store: Store) -> None:
        for uid in ("alice", "bob"):
            store.add_preference(uid, "terse", "manual", embedding=vec(1))
            store.add_edit(uid, "c", "o", "e")
            store.add_feedback(uid, "f")
            store.add_label(uid, "p", "a", "b")
            store.set_adapter(uid, "n", "/p", {})
        store.delete_user("alice")
        assert store.users() == ["bob"]
        assert store.list_preferences("alice") == [] and store.list_edits("alice") == []
        assert store.list_feedback("alice") == [] and store.list_labels("alice") == []
        assert store.get_adapter("alice") is None
        assert len(store.list_preferences("bob")) == 1 and store.get_adapter("bob")
