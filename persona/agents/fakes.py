"""Deterministic chat models for tests: they need no weights, no network and no GPU.

- :class:`EchoChatModel` replies with every input message as ``role: text`` lines, so a test
  can assert exactly what reached the model (``load_chat_model("fake")``).
- :class:`ScriptedChatModel` cycles through fixed replies (``load_chat_model("fake:a|b")``).
- :class:`FailingChatModel` raises :class:`ConnectionError` like a dead endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr

from persona.agents.models import cut_at_stop


def render(messages: list[BaseMessage]) -> str:
    """``role: text`` per message (roles as LangChain names them: system, human, ai, tool)."""
    return "\n".join(f"{m.type}: {m.text}" for m in messages)


def _words(text: str) -> int:
    return len(text.split())


class _FakeBase(BaseChatModel):
    """Shared plumbing: one reply per call, streamed word by word, usage in words."""

    #: Where conditioning goes (see ``LocalChatModel.follows_system_prompt``); settable so tests
    #: can exercise both placements.
    follows_system_prompt: bool = True

    def _reply(self, messages: list[BaseMessage]) -> str:
        raise NotImplementedError

    def _usage(self, messages: list[BaseMessage], reply: str) -> UsageMetadata:
        n_in = sum(_words(m.text) for m in messages)
        n_out = _words(reply)
        return {"input_tokens": n_in, "output_tokens": n_out, "total_tokens": n_in + n_out}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = cut_at_stop(self._reply(messages), stop)
        msg = AIMessage(content=reply, usage_metadata=self._usage(messages, reply))
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = cut_at_stop(self._reply(messages), stop)
        for piece in re.findall(r"\S+\s*|\s+", reply):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        usage = self._usage(messages, reply)
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", usage_metadata=usage, chunk_position="last")
        )


class EchoChatModel(_FakeBase):
    """Replies with the whole input, one ``role: text`` line per message."""

    @property
    def _llm_type(self) -> str:
        return "persona-fake-echo"

    def _reply(self, messages: list[BaseMessage]) -> str:
        return render(messages)


class ScriptedChatModel(_FakeBase):
    """Replies with ``responses`` in turn, starting over after the last one.

    ``seen`` records each call's input (rendered as by :func:`render`), for assertions.
    """

    responses: list[str]
    seen: list[str] = Field(default_factory=list)
    _next: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "persona-fake-scripted"

    def _reply(self, messages: list[BaseMessage]) -> str:
        if not self.responses:
            raise ValueError("ScriptedChatModel has no responses; pass responses=['...'].")
        self.seen.append(render(messages))
        reply = self.responses[self._next % len(self.responses)]
        self._next += 1
        return reply


class FailingChatModel(_FakeBase):
    """Raises :class:`ConnectionError` on every call, like a server that is down."""

    error: str = "connection refused (FailingChatModel is always down)"

    @property
    def _llm_type(self) -> str:
        return "persona-fake-failing"

    def _reply(self, messages: list[BaseMessage]) -> str:
        raise ConnectionError(self.error)
