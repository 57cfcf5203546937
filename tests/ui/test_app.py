"""The Gradio app: its handlers called directly, then the real app driven in headless Chromium."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from persona import PreferenceLayer
from persona.agents.fakes import FailingChatModel
from persona.assistant import Assistant
from persona.ui import app as ui

USER = "alice"
# Gradio's own queue code (pandas 3 deprecations), not ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:'future.no_silent_downcasting':DeprecationWarning",
    "ignore:The copy keyword is deprecated:DeprecationWarning",
)


def chat_once(layer: PreferenceLayer, assistant: Assistant, message: str, history=(), ctx=None):
    notes: list[str] = []
    turn = ui.send(layer, assistant, USER, "Chat", message, list(history), ctx, notify=notes.append)
    assert notes == []
    return turn


# -- handlers, no browser --------------------------------------------------------------------------
def test_import_stays_light() -> None:
    code = "import sys, persona.ui.app; print(sorted({'gradio', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_send_answers_and_records_the_request(ui_layer, assistant) -> None:
    turn = chat_once(ui_layer, assistant, "Write about cats")
    assert turn.history == [
        {"role": "user", "content": "Write about cats"},
        {"role": "assistant", "content": "human: Write about cats"},
    ]
    assert turn.contexts == {1: "Write about cats"}
    assert turn.message == ""
    assert "no stored preference matched" in (turn.applied or "")


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
    assert "bullet points" in again.history[-1]["content"]  # the echo shows the conditioning
    assert f"#{pref.id}" in (again.applied or "") and "score 1.00" in (again.applied or "")
    assert again.contexts == {1: "Write about cats", 3: "Write about cats"}

    accepted = ui.accept_answer(ui_layer, USER, again.history, again.contexts, notify=pytest.fail)
    assert accepted.ok and "stored again" in accepted.status
    assert [p.text for p in ui_layer.preferences(USER)] == ["bullet points"] * 2


def test_editing_a_user_message_learns_nothing(ui_layer, assistant) -> None:
    turn = chat_once(ui_layer, assistant, "Write about cats")
    out = ui.edit_message(
        ui_layer, USER, turn.history, turn.contexts, 0, "Write about cats", "Write about dogs"
    )
    assert out.history[0]["content"] == "Write about dogs" and out.table is None
    assert ui_layer.users() == []


def test_bad_edits_keep_the_chat(ui_layer, assistant) -> None:
    turn = chat_once(ui_layer, assistant, "Write about cats")
    notes: list[str] = []
    blank = ui.edit_message(ui_layer, USER, turn.history, turn.contexts, 1, "x", "  ", notes.append)
    gone = ui.edit_message(ui_layer, USER, turn.history, turn.contexts, 7, "x", "y", notes.append)
    assert blank.history == turn.history == gone.history and len(notes) == 2
    assert ui_layer.users() == []


def test_a_failing_learner_keeps_the_edit(tmp_path: Path, assistant) -> None:
    with PreferenceLayer.open(tmp_path / "dead", llm=FailingChatModel(), embedder="hash") as dead:
        turn = chat_once(dead, Assistant(dead, "fake"), "Write about cats")
        notes: list[str] = []
        out = ui.edit_message(
            dead, USER, turn.history, turn.contexts, 1, "a b", "- a", notes.append
        )
        assert out.history[1]["content"] == "- a" and "nothing was learned" in out.status
        assert notes and "did not answer" in notes[0]
        with pytest.raises(Exception, match="has no data"):
            dead.preferences(USER)


def test_a_failing_model_keeps_the_message(ui_layer) -> None:
    notes: list[str] = []
    broken = Assistant(ui_layer, FailingChatModel())
    turn = ui.send(ui_layer, broken, USER, "Chat", "hello", [], {}, notify=notes.append)
    assert turn.message == "hello" and turn.history == [] and turn.applied is None
    assert notes and "did not answer" in notes[0]


@pytest.mark.parametrize(("mode", "marker"), [("Summarize", "Summarize"), ("Email", "email")])
def test_summarize_and_email_modes(ui_layer, assistant, mode: str, marker: str) -> None:
    turn = ui.send(ui_layer, assistant, USER, mode, "Cats purr.", [], {}, notify=pytest.fail)
    assert marker in turn.history[-1]["content"] and "Cats purr." in turn.contexts[1]


def test_accept_without_an_answer_warns(ui_layer) -> None:
    notes: list[str] = []
    assert not ui.accept_answer(ui_layer, USER, [], {}, notes.append).ok and notes


def test_preferences_panel(ui_layer) -> None:
    notes: list[str] = []
    empty = ui.load_user(ui_layer, "nobody")
    assert empty.table is not None and empty.table.empty and list(empty.table) == ui.COLUMNS
    assert not ui.load_user(ui_layer, "../x").ok

    assert not ui.add_preference(ui_layer, USER, "   ", notes.append).ok
    assert len(notes) == 1 and "empty" in notes[0] and ui_layer.users() == []

    added = ui.add_preference(ui_layer, USER, "British spelling", notes.append)
    (pref,) = ui_layer.preferences(USER)
    assert added.table is not None and added.table.iloc[0].tolist() == [
        pref.id,
        "British spelling",
        "manual",
        "yes",
        "no",
        "",
    ]
    assert ui.toggle_preference(ui_layer, USER, float(pref.id), notes.append).ok
    assert ui_layer.preferences(USER)[0].enabled is False
    assert ui.toggle_preference(ui_layer, USER, pref.id, notes.append).ok
    assert ui_layer.preferences(USER)[0].enabled is True
    for bad in (None, 1.5, pref.id + 99):
        assert not ui.toggle_preference(ui_layer, USER, bad, notes.append).ok
    assert ui.delete_preference(ui_layer, USER, pref.id, notes.append).ok
    assert ui_layer.preferences(USER) == [] and len(notes) == 4


def test_build_app_has_stable_ids(ui_layer, assistant) -> None:
    demo = ui.build_app(ui_layer, assistant)
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert {"user-id", "chat", "msg", "send", "accept", "prefs", "pref-text", "pref-add"} <= ids
    assert {"pref-id", "pref-toggle", "pref-delete", "status", "applied", "mode"} <= ids


# -- the served app in headless Chromium -----------------------------------------------------------
def use_user(page: Any, user_id: str) -> None:
    from playwright.sync_api import expect

    page.locator("#user-id textarea").fill(user_id)
    expect(page.locator("#status")).to_contain_text(f"No preferences stored for {user_id}")


def send_message(page: Any, text: str) -> None:
    page.locator("#msg textarea").fill(text)
    page.locator("#send").click()


@pytest.mark.browser
def test_browser_chat_answers(page: Any) -> None:
    from playwright.sync_api import expect

    use_user(page, "b-chat")
    send_message(page, "Write about cats")
    expect(page.locator("#chat .bot-row").last).to_contain_text("human: Write about cats")
    expect(page.locator("#applied")).to_contain_text("What applied")
    expect(page.locator("#msg textarea")).to_have_value("")


@pytest.mark.browser
def test_browser_edit_teaches_a_preference(page: Any, served, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    layer: PreferenceLayer = served[1]
    use_user(page, "b-edit")
    send_message(page, "Write about cats")
    bot = page.locator("#chat .bot-row").last
    expect(bot).to_contain_text("human: Write about cats")
    buttons = bot.locator("xpath=following-sibling::div[contains(@class, 'message-buttons')][1]")
    buttons.locator("button[aria-label='Edit']").click()
    box = page.locator("#chat textarea.edit-textarea")
    expect(box).to_have_value("human: Write about cats")
    box.fill("- cats\n- purring")
    page.locator("#chat button[aria-label='Submit']").click()

    expect(page.locator("#status")).to_contain_text("Learned from your edit: bullet points")
    expect(page.locator("#prefs")).to_contain_text("bullet points")
    expect(page.locator("#chat .bot-row").last).to_contain_text("purring")
    (pref,) = layer.preferences("b-edit")
    assert (pref.text, pref.source, pref.context) == ("bullet points", "edit", "Write about cats")

    send_message(page, "Write about cats")  # the same request now applies what was learned
    expect(page.locator("#applied")).to_contain_text(f"#{pref.id} bullet points")
    expect(page.locator("#chat .bot-row").last).to_contain_text("bullet points")
    page.screenshot(path=str(tmp_path / "after-edit.png"), full_page=True)


@pytest.mark.browser
def test_browser_preferences_panel(page: Any, served) -> None:
    from playwright.sync_api import expect

    layer: PreferenceLayer = served[1]
    status = page.locator("#status")
    use_user(page, "b-panel")
    page.locator("#pref-text textarea").fill("British spelling")
    page.locator("#pref-add").click()
    expect(status).to_contain_text("Added preference")
    (pref,) = layer.preferences("b-panel")
    assert (pref.text, pref.source, pref.enabled) == ("British spelling", "manual", True)
    expect(page.locator("#prefs")).to_contain_text("British spelling")
    expect(page.locator("#pref-text textarea")).to_have_value("")

    expect(page.locator("#pref-id input")).to_have_value("")  # empty, not 0, until a pick
    cell = page.locator("#prefs").get_by_text("British spelling", exact=True)
    cell.filter(visible=True).first.click()  # clicking a row picks its id
    expect(page.locator("#pref-id input")).to_have_value(str(pref.id))
    page.locator("#pref-toggle").click()
    expect(status).to_contain_text(f"Preference #{pref.id} disabled")
    assert layer.preferences("b-panel")[0].enabled is False

    page.locator("#pref-delete").click()
    expect(status).to_contain_text(f"Deleted preference #{pref.id}")
    assert layer.preferences("b-panel") == []


@pytest.mark.browser
def test_browser_blank_preference_warns(page: Any, served) -> None:
    from playwright.sync_api import expect

    layer: PreferenceLayer = served[1]
    use_user(page, "b-blank")
    page.locator("#pref-text textarea").fill("   ")
    page.locator("#pref-add").click()
    expect(page.get_by_text("The new preference is empty").first).to_be_visible()
    assert "b-blank" not in layer.users()
