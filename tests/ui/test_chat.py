"""The chat's handlers, called directly: streaming, the "why" notes, edits, accept, feedback and
two candidates. Each defect of issue 13 that lives here has its regression test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from persona import PreferenceLayer
from persona.agents.fakes import FailingChatModel
from persona.assistant import Assistant
from persona.ui import app as ui
from persona.ui.common import WHY_TITLE, is_note, turns

USER = "alice"


def chat_once(layer: PreferenceLayer, assistant: Assistant, message: str, history=(), ctx=None):
    notes: list[str] = []
    turn = ui.send(layer, assistant, USER, "Chat", message, list(history), ctx, notify=notes.append)
    assert notes == [], notes
    return turn


def test_import_stays_light() -> None:
    code = "import sys, persona.ui.app; print(sorted({'gradio', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_answers_stream_then_get_a_why_note(ui_layer, assistant) -> None:
    steps = list(ui.stream_send(ui_layer, assistant, USER, "Chat", "Write about cats", [], {}))
    assert len(steps) > 3  # the question, then the answer word by word, then the note
    assert steps[1].history[-1] == {"role": "assistant", "content": "human: "}
    last = steps[-1]
    assert last.history[:2] == [
        {"role": "user", "content": "Write about cats"},
        {"role": "assistant", "content": "human: Write about cats"},
    ]
    note = last.history[2]
    assert is_note(note) and note["metadata"]["title"] == WHY_TITLE
    assert note["metadata"]["status"] == "done"  # shown collapsed
    assert "none matched" in note["content"] and "Adapter" in note["content"]
    assert last.contexts == {1: "Write about cats"} and last.message == ""


def test_every_answer_keeps_its_own_why(ui_layer, assistant) -> None:
    first = chat_once(ui_layer, assistant, "Write about cats")
    ui_layer.add_preference(USER, "British spelling")
    second = chat_once(ui_layer, assistant, "Write about dogs", first.history, first.contexts)
    notes = [m["content"] for m in second.history if is_note(m)]
    assert len(notes) == 2 and "none matched" in notes[0]
    assert "British spelling" in notes[1] and "score 1.00" in notes[1]
    assert "everywhere" in notes[1] or "global" in notes[1]
    # the notes never reach the model as conversation turns
    assert turns(second.history) == [
        ("Write about cats", "human: Write about cats"),
        ("Write about dogs", second.history[4]["content"]),
    ]


def test_edit_learns_and_the_next_answer_applies_it(ui_layer, assistant) -> None:
    turn = chat_once(ui_layer, assistant, "Write about cats")
    edited = ui.edit_message(
        ui_layer,
        USER,
        turn.history,
        turn.contexts,
        1,
        [{"type": "text", "text": "human: Write about cats"}],  # Gradio hands content as parts
        "- cats\n- purring",
        notify=pytest.fail,
    )
    assert edited.history[1]["content"] == "- cats\n- purring"
    (pref,) = ui_layer.preferences(USER)
    assert (pref.text, pref.source) == ("bullet points", "edit")
    assert edited.table is not None and list(edited.table["text"]) == ["bullet points"]
    assert "bullet points" in edited.status

    again = chat_once(ui_layer, assistant, "Write about cats", edited.history, turn.contexts)
    assert "bullet points" in again.history[-2]["content"]  # the echo shows the conditioning
    assert f"#{pref.id}" in (again.applied or "") and "score 1.00" in (again.applied or "")
    assert again.contexts == {1: "Write about cats", 4: "Write about cats"}


def test_edit_in_the_background_hands_back_a_job(ui_layer, assistant) -> None:
    turn = chat_once(ui_layer, assistant, "Write about cats")
    out = ui.edit_message(
        ui_layer, USER, turn.history, turn.contexts, 1, "human: Write about cats", "- cats",
        pytest.fail, learn=False,
    )  # fmt: skip
    assert out.status.startswith("Learning") and out.job and ui_layer.users() == []
    done = ui.run_job(ui_layer, out.job, pytest.fail)
    assert done.ok and "bullet points" in done.status and done.table is not None
    assert [p.text for p in ui_layer.preferences(USER)] == ["bullet points"]


def test_empty_edit_keeps_the_previous_answer_and_accept_still_works(ui_layer, assistant) -> None:
    """Regression: an empty edit blanked the bubble, then "Accept answer" failed."""
    turn = chat_once(ui_layer, assistant, "Write about cats")
    shown = [*turn.history]
    shown[1] = {"role": "assistant", "content": ""}  # what the browser sends after the edit
    notes: list[str] = []
    old = "human: Write about cats"
    blank = ui.edit_message(ui_layer, USER, shown, turn.contexts, 1, old, "  ", notes.append)
    assert blank.history[1]["content"] == old and len(notes) == 1 and blank.job is None
    accepted = ui.accept_answer(ui_layer, USER, blank.history, turn.contexts, pytest.fail)
    assert accepted.ok and "Accepted" in accepted.status


def test_accept_stores_once(ui_layer, assistant) -> None:
    """Regression: each click on "Accept answer" added another identical row."""
    ui_layer.add_preference(USER, "bullet points", context="Write about cats")
    turn = chat_once(ui_layer, assistant, "Write about cats")
    ui.edit_message(ui_layer, USER, turn.history, turn.contexts, 1, "human: x", "- x")
    again = chat_once(ui_layer, assistant, "Write about cats", turn.history, turn.contexts)
    before = len(ui_layer.preferences(USER))
    first = ui.accept_answer(ui_layer, USER, again.history, again.contexts, pytest.fail, [])
    assert first.ok and "stored again" in first.status and first.accepted == [4]
    for _ in range(3):
        repeat = ui.accept_answer(ui_layer, USER, again.history, again.contexts, pytest.fail,
                                  first.accepted)  # fmt: skip
        assert repeat.ok and "already" in repeat.status
    assert len(ui_layer.preferences(USER)) == before + 1


def test_notes_and_user_messages_teach_nothing(ui_layer, assistant) -> None:
    turn = chat_once(ui_layer, assistant, "Write about cats")
    mine = ui.edit_message(ui_layer, USER, turn.history, turn.contexts, 0, "Write about cats",
                           "Write about dogs")  # fmt: skip
    assert mine.history[0]["content"] == "Write about dogs" and mine.job is None
    note = turn.history[2]["content"]
    out = ui.edit_message(ui_layer, USER, turn.history, turn.contexts, 2, note, "hacked", str)
    assert out.history[2]["content"] == note and "cannot be edited" in out.status
    gone = ui.edit_message(ui_layer, USER, turn.history, turn.contexts, 9, "x", "y", str)
    assert gone.history == turn.history and ui_layer.users() == []


def test_a_failing_learner_keeps_the_edit(tmp_path: Path) -> None:
    with PreferenceLayer.open(tmp_path / "dead", llm=FailingChatModel(), embedder="hash") as dead:
        turn = chat_once(dead, Assistant(dead, "fake"), "Write about cats")
        notes: list[str] = []
        out = ui.edit_message(
            dead, USER, turn.history, turn.contexts, 1, "a b", "- a", notes.append
        )
        assert out.history[1]["content"] == "- a" and "nothing was learned" in out.status
        assert notes and "did not answer" in notes[0]
        assert dead.users() == []


def test_a_failing_model_keeps_the_message(ui_layer) -> None:
    notes: list[str] = []
    broken = Assistant(ui_layer, FailingChatModel())
    turn = ui.send(ui_layer, broken, USER, "Chat", "hello", [], {}, notify=notes.append)
    assert turn.message == "hello" and turn.history == [] and turn.applied is None
    assert notes and "did not answer" in notes[0] and "Error" not in notes[0]


@pytest.mark.parametrize(("mode", "marker"), [("Summarize", "Summarize"), ("Email", "email")])
def test_summarize_and_email_modes(ui_layer, assistant, mode: str, marker: str) -> None:
    turn = ui.send(ui_layer, assistant, USER, mode, "Cats purr.", [], {}, notify=pytest.fail)
    assert marker in turn.history[1]["content"] and "Cats purr." in turn.contexts[1]


def test_names_are_normalised(ui_layer, assistant) -> None:
    """Regression: "maria " silently became another user than "maria"."""
    ui.send(ui_layer, assistant, "maria", "Chat", "hi", [], {}, pytest.fail)
    ui.add_preference(ui_layer, "maria ", "terse", pytest.fail)
    ui.add_preference(ui_layer, "  maria", "metric", pytest.fail)
    assert ui_layer.users() == ["maria"] and len(ui_layer.preferences("maria")) == 2
    assert "**maria**" in ui.load_user(ui_layer, "maria  ").status


def test_feedback_shows_the_scope_it_learned(ui_layer) -> None:
    examples = "email my boss about the budget\n\nemail my boss"
    out = ui.give_feedback(
        ui_layer, USER, "no emojis in emails to my boss", examples, "", pytest.fail
    )
    (pref,) = ui_layer.preferences(USER)
    assert out.ok and pref.source == "feedback" and pref.scope
    assert "applied to" in out.status and "emails to my boss" in out.status
    assert "Suggest requests to check" in out.status  # where to check the scope
    notes: list[str] = []
    assert not ui.give_feedback(ui_layer, USER, "  ", notify=notes.append).ok and notes


def test_two_candidates_and_a_pick_make_a_labeled_pair(ui_layer, assistant) -> None:
    ui_layer.add_preference(USER, "British spelling")  # so A (with it) differs from B
    cands = ui.candidates(ui_layer, assistant, USER, "Chat", "Write about cats", [], pytest.fail)
    assert cands.ok and cands.a != cands.b and "British spelling" in cands.a
    picked = ui.pick(ui_layer, USER, "B", cands.request, "Write about cats", cands.a, cands.b,
                     [], {}, pytest.fail)  # fmt: skip
    assert picked.ok and "labeled pair" in picked.status
    assert picked.history[1]["content"] == cands.b and picked.contexts == {1: "Write about cats"}
    assert "candidate B" in picked.history[2]["content"]
    (label,) = ui_layer.labels(USER)
    assert (label.prompt, label.chosen, label.rejected) == (cands.request, cands.b, cands.a)
    notes: list[str] = []
    same = ui.pick(ui_layer, USER, "A", "q", "q", "same", "same", [], {}, notes.append)
    assert not same.ok and "same" in notes[0] and len(ui_layer.labels(USER)) == 1
