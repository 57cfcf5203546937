"""The layer and its runnable with a user adapter: Conditioning.adapter, the local model
switching to the user's adapter per request, modes, and a served (vLLM) adapter by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from persona.agents.models import LocalChatModel
from persona.errors import InvalidInputError
from persona.layer import PreferenceLayer

TINY = {"rank": 4, "alpha": 8, "max_steps": 2, "learning_rate": 1e-2, "constraint_prompts": 1}


CALLS: list[dict[str, Any]] = []


class Recorder(BaseChatModel):
    """Answers "ok" and records the keyword arguments of each call in ``CALLS``."""

    @property
    def _llm_type(self) -> str:
        return "recorder"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        CALLS.append({"messages": messages, **kwargs})
        return ChatResult(generations=[ChatGeneration(message=AIMessage("ok"))])


@pytest.fixture
def trained(persona_home: Path, tiny_dir: Path) -> PreferenceLayer:
    layer = PreferenceLayer.open(persona_home, llm="fake", embedder="hash")
    for i in range(3):
        layer.learn_from_labels("ana", f"Greet team {i}", "Hello team.", "YO!!! team")
    layer.train_adapter("ana", base=str(tiny_dir), **TINY)
    return layer


def test_the_runnable_serves_the_users_adapter_on_the_local_model(
    trained: PreferenceLayer, tiny_dir: Path
) -> None:
    cond = trained.condition("ana", "Greet the team")
    status = trained.adapter_status("ana")
    assert cond.adapter == Path(status["path"]).name and status["stale"] is False
    model = LocalChatModel(model_dir=str(tiny_dir), follow_adapter=False, dtype="float32")
    model = model.model_copy(update={"max_new_tokens": 5})
    runnable = trained.as_runnable(model, mode="adapter")
    reply = runnable.invoke("Greet the team", config={"configurable": {"user_id": "ana"}})
    assert reply.response_metadata["persona"]["adapter"] == cond.adapter
    expected = model.invoke("Greet the team", adapter=status["path"]).text
    assert reply.text == expected
    assert model.invoke("Greet the team").text != expected  # the adapter made the difference
    plain = trained.as_runnable(model, mode="prompt")
    reply = plain.invoke("Greet the team", config={"configurable": {"user_id": "ana"}})
    assert reply.response_metadata["persona"]["adapter"] is None
    trained.learn_from_labels("bob", "Greet", "Hi.", "HI!!!")  # bob has no adapter
    reply = runnable.invoke("Greet the team", config={"configurable": {"user_id": "bob"}})
    assert reply.response_metadata["persona"]["adapter"] is None
    trained.close()


def test_a_served_adapter_is_asked_for_by_name(persona_home: Path, tiny_dir: Path) -> None:
    layer = PreferenceLayer.open(persona_home, llm="fake", embedder="hash", served_adapters=True)
    layer.learn_from_labels("ana", "Greet team", "Hello team.", "YO!!! team")
    layer.train_adapter("ana", base=str(tiny_dir), **TINY)
    CALLS.clear()
    runnable = layer.as_runnable(Recorder())
    runnable.invoke("Greet the team", config={"configurable": {"user_id": "ana"}})
    assert CALLS[-1]["model"] == layer.condition("ana", "x").adapter
    layer.close()
    layer = PreferenceLayer.open(persona_home, llm="fake", embedder="hash")  # not served
    layer.as_runnable(Recorder()).invoke("Hi", config={"configurable": {"user_id": "ana"}})
    assert "model" not in CALLS[-1]
    layer.close()


def test_bad_modes_and_options_are_refused(persona_home: Path) -> None:
    with pytest.raises(InvalidInputError, match="served_adapters='yes' must be True or False"):
        PreferenceLayer.open(persona_home, llm="fake", embedder="hash", served_adapters="yes")
    with PreferenceLayer.open(persona_home, llm="fake", embedder="hash") as layer:
        with pytest.raises(InvalidInputError, match="mode 'lora' is unknown"):
            layer.as_runnable(Recorder(), mode="lora")  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="unknown adapter option"):
            layer.learn_from_labels("ana", "Greet", "Hi.", "HI!!!")
            layer.train_adapter("ana", rnak=4)
