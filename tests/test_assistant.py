"""The writing assistant: every task is conditioned, and each reply carries its context."""

from __future__ import annotations

import pytest

from persona import InvalidInputError, PreferenceLayer
from persona.agents.fakes import EchoChatModel
from persona.assistant import Assistant


def test_tasks_use_the_templates_and_are_conditioned(layer: PreferenceLayer) -> None:
    layer.add_preference("alice", "Use bullet points")
    bot = Assistant(layer, EchoChatModel(follows_system_prompt=False), max_tokens=32)
    summary = bot.summarize("alice", "  The council met on Monday.  ")
    assert summary.context == "The council met on Monday.\n\nSummarize the above text."
    assert summary.text.endswith("prefers the following style: Use bullet points.")
    assert summary.applied["preference_ids"] == [layer.preferences("alice")[0].id]
    assert summary.tokens_in > 0 and summary.tokens_out > 0
    email = bot.email("alice", "lunch friday, bring slides")
    assert email.context == "lunch friday, bring slides\n\nWrite an email based on the above notes."


def test_chat_keeps_history_and_conditions_the_last_turn(layer: PreferenceLayer) -> None:
    layer.add_preference("bob", "Answer in French")
    bot = Assistant(layer, EchoChatModel())
    reply = bot.chat("bob", "And tomorrow?", history=[("Weather today?", "Sunny.")])
    lines = reply.text.splitlines()
    assert lines[0].startswith("system: ") and "Answer in French" in reply.text
    assert reply.text.endswith("human: Weather today?\nai: Sunny.\nhuman: And tomorrow?")
    assert reply.context == "And tomorrow?"
    plain = bot.chat("carol", "hi")
    assert plain.text == "human: hi" and plain.applied["preference_ids"] == []


def test_edit_round_trip_through_the_assistant(layer: PreferenceLayer) -> None:
    bot = Assistant(layer, EchoChatModel())
    reply = bot.summarize("alice", "The council met on Monday and approved the budget.")
    [pref] = layer.learn_from_edit(
        "alice", reply.context, reply.text, "- Council: budget approved."
    )
    assert pref.source == "edit" and pref.text == "bullet points"
    again = bot.summarize("alice", "The council met on Tuesday and rejected the plan.")
    assert "bullet points" in again.text and again.applied["summary"] == "bullet points"


def test_bad_input(layer: PreferenceLayer) -> None:
    bot = Assistant(layer, EchoChatModel())
    with pytest.raises(InvalidInputError, match="document"):
        bot.summarize("alice", "   ")
    with pytest.raises(InvalidInputError, match="user_id"):
        bot.chat("../alice", "hi")
