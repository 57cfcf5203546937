"""LangChain's own standard tests (``langchain-tests``) on persona's chat models.

Each class states what its model really does; a standard test is skipped only through those
capability flags. None of persona's models calls tools, writes structured output, has a JSON
mode or reads images, audio or PDFs; all of them report token usage and a model name. The
local model runs one model, so a per-call ``model=`` is refused; the fakes report the name a
call asks for. ``FailingChatModel`` only gets the unit suite: every call fails by design.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests
from pydantic import ValidationError

from persona.agents.fakes import EchoChatModel, FailingChatModel, ScriptedChatModel
from persona.agents.models import LOCAL_MODEL_NAME, LocalChatModel, load_chat_model
from persona.agents.replay import ReplayChatModel
from persona.errors import InvalidInputError

#: Short answers keep the local model's integration suite fast.
LOCAL_TOKENS = 16
SCRIPT = ["Hello! How can I help you today?", "Here are two haikus about the sea and you."]
RECORDING = Path(__file__).with_name("data") / "recording.json"


class _Capabilities:
    """What every persona chat model can and cannot do (the standard tests' flags)."""

    @property
    def has_tool_calling(self) -> bool:
        return False  # no bind_tools: the models answer in text only

    @property
    def has_tool_choice(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False  # no with_structured_output (it would need tool calling or a JSON mode)

    @property
    def supports_json_mode(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False  # text-only models: SmolLM2-135M-Instruct, and the fakes render text

    @property
    def supports_image_urls(self) -> bool:
        return False

    @property
    def supports_pdf_inputs(self) -> bool:
        return False

    @property
    def supports_audio_inputs(self) -> bool:
        return False

    @property
    def supports_video_inputs(self) -> bool:
        return False

    @property
    def supports_image_tool_message(self) -> bool:
        return False

    @property
    def supports_pdf_tool_message(self) -> bool:
        return False

    @property
    def supports_anthropic_inputs(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True  # tokens for the local model, words for the fakes

    @property
    def enable_vcr_tests(self) -> bool:
        return False  # nothing goes over HTTP, so there is nothing to record


class _LocalFlags(_Capabilities):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return LocalChatModel

    @property
    def supports_model_override(self) -> bool:
        return False  # one model per instance; a call naming another is refused


class _FakeFlags(_Capabilities):
    @property
    def supports_model_override(self) -> bool:
        return True  # a fake has no weights: it reports the model name a call asks for

    @property
    def model_override_value(self) -> str:
        return "persona-fake-override"


# --- unit suites: construction, parameters, tracing (no weights loaded) ----------------------


class TestLocalChatModelUnit(_LocalFlags, ChatModelUnitTests):
    pass  # the defaults: the suite passes max_tokens and stop itself


class TestEchoChatModelUnit(_FakeFlags, ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return EchoChatModel


class TestScriptedChatModelUnit(_FakeFlags, ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ScriptedChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"responses": SCRIPT}


class TestReplayChatModelUnit(_FakeFlags, ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ReplayChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"path": str(RECORDING)}


class TestFailingChatModelUnit(_FakeFlags, ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return FailingChatModel


# --- integration suites: real calls -----------------------------------------------------------


class TestEchoChatModelIntegration(_FakeFlags, ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return EchoChatModel


class TestScriptedChatModelIntegration(_FakeFlags, ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ScriptedChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"responses": SCRIPT}


@pytest.fixture(scope="module")
def local_dir(shared_models: Path) -> str:
    """The run's one conversion of the local model (``$PERSONA_MODELS``, see conftest)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PERSONA_MODELS", str(shared_models))
        model = load_chat_model("local")
    assert isinstance(model, LocalChatModel) and model.model_dir
    return model.model_dir


@pytest.mark.slow
class TestLocalChatModelIntegration(_LocalFlags, ChatModelIntegrationTests):
    model_dir: ClassVar[str] = ""

    @pytest.fixture(autouse=True)
    def _converted(self, local_dir: str) -> None:
        type(self).model_dir = local_dir

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model_dir": self.model_dir, "max_tokens": LOCAL_TOKENS}


# --- what the standard suites imply, checked directly -----------------------------------------


@pytest.mark.parametrize("model", [EchoChatModel(), ScriptedChatModel(responses=SCRIPT)])
def test_usage_callback_records_fakes_by_model_name(model: BaseChatModel) -> None:
    with get_usage_metadata_callback() as cb:
        model.invoke("Hello")
        list(model.stream("Hello"))
    name = model.invoke("Hello").response_metadata["model_name"]
    assert list(cb.usage_metadata) == [name]
    assert cb.usage_metadata[name]["input_tokens"] == 2  # one word in each of two calls


def test_fakes_honour_constructor_stop_and_max_tokens() -> None:
    model = EchoChatModel(stop=["world"], max_tokens=3)
    assert model.invoke("hello big wide world").content == "human: hello big"
    assert model.invoke("hello", stop=[]).content == "human: hello"
    assert model.invoke("a b c d", max_tokens=2).content == "human: a"
    assert "".join(str(c.content) for c in model.stream("hello big wide world")) == (
        "human: hello big"
    )


def test_local_takes_langchain_standard_parameters() -> None:
    model = LocalChatModel(stop=["\n"], max_tokens=3, temperature=0, timeout=30, max_retries=2)
    assert (model.max_new_tokens, model.stop, model.timeout) == (3, ["\n"], 30.0)
    assert LocalChatModel(max_new_tokens=5).max_new_tokens == 5
    params = model._get_ls_params()
    assert params["ls_model_name"] == LOCAL_MODEL_NAME
    assert (params["ls_max_tokens"], params.get("ls_stop")) == (3, ["\n"])
    assert model._get_ls_params(stop=["x"], max_tokens=7)["ls_max_tokens"] == 7


@pytest.mark.parametrize("arg", ["max_new_token", "model", "base_url"])
def test_local_refuses_unknown_constructor_arguments(arg: str) -> None:
    with pytest.raises(ValidationError, match=arg):
        LocalChatModel(**{arg: "x"})


def test_local_refuses_another_model_per_call() -> None:
    with pytest.raises(InvalidInputError, match="model='gpt-4o'"):
        LocalChatModel(model_dir="/nowhere").invoke("hi", model="gpt-4o")


@pytest.mark.slow
def test_local_honours_constructor_stop_and_max_tokens(local_dir: str) -> None:
    free = LocalChatModel(model_dir=local_dir, max_tokens=LOCAL_TOKENS)
    text = str(free.invoke("Count from one to ten.").content)
    words = text.split()
    assert len(words) >= 3
    stop = words[2]  # the cut falls before its first occurrence, as in test_models.py
    stopped = LocalChatModel(model_dir=local_dir, max_tokens=LOCAL_TOKENS, stop=[stop])
    assert stopped.invoke("Count from one to ten.").content == text[: text.index(stop)]
    short = LocalChatModel(model_dir=local_dir, max_tokens=3).invoke("Count from one to ten.")
    assert short.usage_metadata is not None and short.usage_metadata["output_tokens"] <= 3
    hurried = LocalChatModel(model_dir=local_dir, max_tokens=200, timeout=0.01)
    cut = hurried.invoke("Count from one to a hundred.").usage_metadata
    assert cut is not None and cut["output_tokens"] < 200  # the time budget ended it


@pytest.mark.slow
def test_usage_callback_records_the_local_model(local_dir: str) -> None:
    model = LocalChatModel(model_dir=local_dir, max_tokens=4)
    with get_usage_metadata_callback() as cb:
        first = model.invoke("Hello")
        list(model.stream("Hello"))
    assert list(cb.usage_metadata) == [LOCAL_MODEL_NAME]
    assert first.usage_metadata is not None
    assert cb.usage_metadata[LOCAL_MODEL_NAME]["input_tokens"] == (
        2 * first.usage_metadata["input_tokens"]
    )
