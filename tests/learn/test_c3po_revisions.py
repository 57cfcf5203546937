"""A feedback's scope over time: edits racing each other lose nothing, and a stored scope
read by an older scope-word reader is read again (unless the user named it)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from persona import PreferenceLayer
from persona.errors import ConflictError
from persona.learn import c3po
from persona.learn.c3po_data import describe_scope
from persona.learn.scope import ScopeModel
from persona.learn.scope_words import scope_phrases

FEEDBACK = "Don't use emojis when drafting emails to my boss."
READ = "drafting emails to my boss"  # what the scope-word reader reads today
WRITTEN = "emails to my boss"  # what the LLM says the scope is
GOOD = [
    WRITTEN,
    "1. Status updates to my manager",
    "1. Write an email to my manager about this week's billing migration.\n"
    "2. Draft a note to my boss saying the quarterly report will be late.\n"
    "3. Email my supervisor the results of the customer interviews.",
    "1. Write a birthday text to my best friend Jo.\n"
    "2. Draft an Instagram caption for my beach photos.\n"
    "3. Send my sister a message about Sunday's family dinner.",
]
IN = "Write an email to my boss explaining why the release slipped to next week."


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


def open_layer(home: Path, embedder: Any) -> PreferenceLayer:
    return PreferenceLayer.open(
        home, llm=FakeListChatModel(responses=GOOD), embedder=embedder, c3po_categories=1
    )


@pytest.fixture
def layer(home: Path, embedder: Any) -> Iterator[PreferenceLayer]:
    with open_layer(home, embedder) as lyr:
        yield lyr


def rev(lyr: PreferenceLayer, fid: int) -> int:
    return lyr.store.scope_revisions("ann")[fid]


def test_scope_edits_racing_each_other_both_land(
    layer: PreferenceLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both edits read the feedback before either writes (the refit sits in between): the one
    that writes second finds the revision moved, and redoes its edit on the newer row."""
    pref = layer.learn_from_feedback("ann", FEEDBACK)
    fid = layer.store.list_feedback("ann")[0].id
    before = rev(layer, fid)
    both_read = threading.Barrier(2, timeout=60)
    waited = threading.local()
    fit = c3po.scope_model_for

    def slow_fit(dataset: dict[str, Any], embedder: Any) -> ScopeModel:
        if not getattr(waited, "done", False):
            waited.done = True
            both_read.wait()
        return fit(dataset, embedder)

    monkeypatch.setattr(c3po, "scope_model_for", slow_fit)
    errors: list[BaseException] = []

    def edit(**change: Any) -> None:
        try:
            layer.edit_scope("ann", pref.id, **change)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=edit, kwargs={"add_in_scope": ["Email my boss the agenda"]}),
        threading.Thread(target=edit, kwargs={"add_out_of_scope": ["Text my mum a photo"]}),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    fb = layer.store.get_feedback("ann", fid)
    assert fb.in_scope == ("Email my boss the agenda",)
    assert fb.out_of_scope == ("Text my mum a photo",)
    assert fb.dataset is not None
    assert fb.dataset["user_in_scope"] == ["Email my boss the agenda"]
    assert fb.dataset["user_out_of_scope"] == ["Text my mum a photo"]
    assert rev(layer, fid) == before + 2
    # the stored model is the one fitted on both edits
    _, model = layer.store.scope_model("ann", fid)
    assert model is not None
    assert "Email my boss the agenda" in model["positives"]
    assert "Text my mum a photo" in model["negatives"]


def test_an_edit_always_overtaken_says_so_and_writes_nothing(
    layer: PreferenceLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pref = layer.learn_from_feedback("ann", FEEDBACK)
    fid = layer.store.list_feedback("ann")[0].id
    before = layer.store.get_feedback("ann", fid)
    stuck = {fid: -1}  # a revision the row never has: every write is refused
    monkeypatch.setattr(layer.store, "scope_revisions", lambda user_id: stuck)
    with pytest.raises(ConflictError, match=f"preference {pref.id} kept changing"):
        layer.edit_scope("ann", pref.id, add_in_scope=["Email my boss the agenda"])
    monkeypatch.undo()
    assert layer.store.get_feedback("ann", fid) == before
    assert layer.store.get_preferences("ann", [pref.id])[0].scope == pref.scope


def _store(lyr: PreferenceLayer, fid: int, dataset: dict[str, Any], model: dict[str, Any]) -> None:
    """Replace the feedback's dataset and scope model behind the layer's back."""
    fb = lyr.store.get_feedback("ann", fid)
    lyr.store.update_feedback(
        "ann",
        fid,
        in_scope=fb.in_scope,
        out_of_scope=fb.out_of_scope,
        dataset=dataset,
        scope_model=model,
    )


def _as_read_by_an_older_reader(lyr: PreferenceLayer, fid: int, pid: int, read: str) -> int:
    """Store the feedback as an older reader would have left it: its scope phrases, the
    model fitted on them and the preference's scope line. Returns the revision."""
    fb = lyr.store.get_feedback("ann", fid)
    assert fb.dataset is not None and fb.dataset["scope_read"] == [READ]
    old = {**fb.dataset, "scope": [read, WRITTEN], "scope_read": [read]}
    model = ScopeModel.fit(
        lyr.embedder,
        c3po.embedder_id(lyr.embedder),
        anchors=[FEEDBACK, read, WRITTEN],
        positives=old["in_scope"]["train"],
        negatives=old["near_scope"]["train"],
        pool=old["out_of_scope"]["train"],
        facets=[read.split()[-1]],
    )
    _store(lyr, fid, old, model.to_json())
    lyr.store.update_preference("ann", pid, scope=describe_scope(old))
    return rev(lyr, fid)


def test_a_scope_read_by_an_older_reader_is_read_again_once(home: Path, embedder: Any) -> None:
    with open_layer(home, embedder) as lyr:
        pref = lyr.learn_from_feedback("ann", FEEDBACK)
        fid = lyr.store.list_feedback("ann")[0].id
        old_rev = _as_read_by_an_older_reader(lyr, fid, pref.id, "boss")
        assert str(lyr.store.get_preferences("ann", [pref.id])[0].scope).startswith("boss (")
    # the next process to meet the feedback refits it on today's reading, and stores it
    with open_layer(home, embedder) as lyr:
        cond = lyr.condition("ann", IN)
        assert pref.id in [p.id for p in (*cond.preferences, *cond.withheld)]
        fb = lyr.store.get_feedback("ann", fid)
        assert fb.dataset is not None
        assert fb.dataset["scope_read"] == scope_phrases(FEEDBACK) == [READ]
        assert fb.dataset["scope"] == [READ, WRITTEN]  # the LLM's phrase is kept
        assert rev(lyr, fid) == old_rev + 1
        _, model = lyr.store.scope_model("ann", fid)
        assert model is not None and model["anchors"] == [FEEDBACK, READ, WRITTEN]
        assert model["facets"] == ["emails", "boss"]
        scope = lyr.store.get_preferences("ann", [pref.id])[0].scope
        assert scope is not None and scope.startswith(READ + " (")
    # and the one after that finds it current: nothing is written again
    with open_layer(home, embedder) as lyr:
        lyr.condition("ann", IN)
        assert rev(lyr, fid) == old_rev + 1


def test_a_scope_the_user_named_is_never_read_again(home: Path, embedder: Any) -> None:
    with open_layer(home, embedder) as lyr:
        pref = lyr.learn_from_feedback("ann", FEEDBACK)
        fid = lyr.store.list_feedback("ann")[0].id
        lyr.edit_scope("ann", pref.id, scope="anything I write for work")
        fb = lyr.store.get_feedback("ann", fid)
        assert fb.dataset is not None and fb.dataset["scope_named"] == "anything I write for work"
        # the named scope's words are the ones matched, not the feedback's
        _, model = lyr.store.scope_model("ann", fid)
        assert model is not None and model["facets"] == ["work"]
        named_rev = rev(lyr, fid)
    with open_layer(home, embedder) as lyr:
        lyr.condition("ann", IN)
        fb = lyr.store.get_feedback("ann", fid)
        assert fb.dataset is not None and fb.dataset["scope"] == ["anything I write for work"]
        assert rev(lyr, fid) == named_rev


def test_a_dataset_that_kept_no_reading_keeps_its_phrases_and_gets_todays_words(
    home: Path, embedder: Any
) -> None:
    """Stored before readings were recorded, a dataset cannot tell a reading from a name the
    user gave: its phrases stay; the scope words, always the feedback's own, are re-read."""
    with open_layer(home, embedder) as lyr:
        pref = lyr.learn_from_feedback("ann", FEEDBACK)
        fid = lyr.store.list_feedback("ann")[0].id
        _as_read_by_an_older_reader(lyr, fid, pref.id, "boss")
        fb = lyr.store.get_feedback("ann", fid)
        assert fb.dataset is not None
        legacy = {k: v for k, v in fb.dataset.items() if k != "scope_read"}
        _store(lyr, fid, legacy, lyr.store.scope_model("ann", fid)[1] or {})
        old_rev = rev(lyr, fid)
    with open_layer(home, embedder) as lyr:
        lyr.condition("ann", IN)
        fb = lyr.store.get_feedback("ann", fid)
        assert fb.dataset is not None and fb.dataset["scope"] == ["boss", WRITTEN]
        _, model = lyr.store.scope_model("ann", fid)
        assert model is not None and model["facets"] == ["emails", "boss"]
        assert rev(lyr, fid) == old_rev + 1


def test_a_model_stored_under_another_embedder_is_left_to_it(home: Path, embedder: Any) -> None:
    from persona.store.embed import HashEmbedder

    with open_layer(home, embedder) as lyr:
        lyr.learn_from_feedback("ann", FEEDBACK)
        fid = lyr.store.list_feedback("ann")[0].id
        stored = lyr.store.scope_model("ann", fid)
    with open_layer(home, HashEmbedder(dim=32)) as lyr:
        lyr.condition("ann", IN)  # refitted in memory for this embedder
        assert lyr.store.scope_model("ann", fid) == stored


def test_many_processes_meeting_a_stale_scope_store_it_once(home: Path, embedder: Any) -> None:
    """Layers with their own caches (as processes have) meet the stale feedback at once:
    each refits it, one stores it, the others' writes are refused and they serve anyway."""
    with open_layer(home, embedder) as lyr:
        pref = lyr.learn_from_feedback("ann", FEEDBACK)
        fid = lyr.store.list_feedback("ann")[0].id
        old_rev = _as_read_by_an_older_reader(lyr, fid, pref.id, "boss")
    layers = [open_layer(home, embedder) for _ in range(4)]
    start = threading.Barrier(len(layers), timeout=60)
    seen: list[list[int]] = []
    errors: list[BaseException] = []

    def meet(lyr: PreferenceLayer) -> None:
        try:
            start.wait()
            cond = lyr.condition("ann", IN)
            seen.append([p.id for p in (*cond.preferences, *cond.withheld)])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=meet, args=(lyr,)) for lyr in layers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for lyr in layers:
        lyr.close()
    assert not errors and seen == [[pref.id]] * len(layers)
    with open_layer(home, embedder) as lyr:
        assert rev(lyr, fid) == old_rev + 1
        fb = lyr.store.get_feedback("ann", fid)
        assert fb.dataset is not None and fb.dataset["scope_read"] == [READ]
