"""layer.as_runnable: conditioning reaches the model where it follows it."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from persona import InvalidInputError, ModelError, PreferenceLayer
from persona.agents.fakes import EchoChatModel, FailingChatModel

CFG = {"configurable": {"user_id": "alice"}}


def test_system_placement_for_capable_models(layer: PreferenceLayer) -> None:
    layer.add_preference("alice", "Use metric units")
    run = layer.as_runnable(EchoChatModel())
    msg = run.invoke("How far is Paris from Rome?", config=CFG)
    assert msg.text.startswith("system: This user has shown the preferences")
    assert "- Use metric units" in msg.text
    assert msg.text.endswith("human: How far is Paris from Rome?")
    meta = msg.response_metadata["persona"]
    assert meta["preference_ids"] == [layer.preferences("alice")[0].id]
    assert meta["context"] == "How far is Paris from Rome?"


def test_user_turn_placement_for_models_that_ignore_system(layer: PreferenceLayer) -> None:
    layer.add_preference("alice", "Use metric units")
    model = EchoChatModel(follows_system_prompt=False)
    msg = layer.as_runnable(model).invoke("How far is Paris?", config=CFG)
    assert "system:" not in msg.text
    assert msg.text == (
        "human: How far is Paris?\n\nWrite it for a user who prefers the following style: "
        "Use metric units."
    )


def test_existing_system_message_is_extended_not_replaced(layer: PreferenceLayer) -> None:
    layer.add_preference("alice", "Use metric units")
    msg = layer.as_runnable(EchoChatModel()).invoke(
        [SystemMessage("You are a travel agent."), HumanMessage("Distance to Rome?")], config=CFG
    )
    assert msg.text.startswith("system: You are a travel agent.\n\nThis user has shown")
    assert msg.text.count("system:") == 1


def test_no_preferences_means_untouched_messages(layer: PreferenceLayer) -> None:
    msg = layer.as_runnable(EchoChatModel()).invoke("hi", config=CFG)
    assert msg.text == "human: hi"


def test_in_a_langchain_chain_and_streaming(layer: PreferenceLayer) -> None:
    layer.add_preference("alice", "Answer in French")
    prompt = ChatPromptTemplate.from_messages([("human", "Tell me about {topic}")])
    chain = prompt | layer.as_runnable(EchoChatModel()) | StrOutputParser()
    out = chain.invoke({"topic": "cheese"}, config=CFG)
    assert "- Answer in French" in out and out.endswith("human: Tell me about cheese")
    run = layer.as_runnable(EchoChatModel())
    chunks = list(run.stream("Tell me about cheese", config=CFG))
    assert len(chunks) > 2
    assert "".join(c.text for c in chunks) == run.invoke("Tell me about cheese", config=CFG).text
    other = chain.invoke({"topic": "cheese"}, config={"configurable": {"user_id": "bob"}})
    assert other == "human: Tell me about cheese"


async def _ainvoke(layer: PreferenceLayer) -> str:
    msg = await layer.as_runnable(EchoChatModel()).ainvoke("hi", config=CFG)
    return msg.text


def test_async_and_batch(layer: PreferenceLayer) -> None:
    import asyncio

    layer.add_preference("alice", "Be brief")
    assert "Be brief" in asyncio.run(_ainvoke(layer))
    outs = layer.as_runnable(EchoChatModel()).batch(["a", "b"], config=CFG)
    assert all("Be brief" in o.text for o in outs)


def test_bad_calls(layer: PreferenceLayer) -> None:
    run = layer.as_runnable(EchoChatModel())
    with pytest.raises(InvalidInputError, match="user_id"):
        run.invoke("hi")
    with pytest.raises(InvalidInputError, match="no human message"):
        run.invoke([SystemMessage("only system")], config=CFG)
    with pytest.raises(InvalidInputError, match="placement"):
        layer.as_runnable(EchoChatModel(), placement="middle")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="did not answer"):
        layer.as_runnable(FailingChatModel()).invoke("hi", config=CFG)
    with pytest.raises(ModelError):
        list(layer.as_runnable(FailingChatModel()).stream("hi", config=CFG))
