"""Deterministic chat models for tests: they need no weights, no network and no GPU.

- :class:`EchoChatModel` replies with every input message as ``role: text`` lines, so a test
  can assert exactly what reached the model (``load_chat_model("fake")``).
- :class:`ScriptedChatModel` cycles through fixed replies (``load_chat_model("fake:a|b")``).
- :class:`FailingChatModel` raises :class:`ConnectionError` like a dead endpoint.

Like :class:`~persona.agents.models.LocalChatModel`, they honour ``stop`` and ``max_tokens``
(counted in words, as their usage is) given to the constructor or to a call, and report a
``model_name`` (a call's ``model=`` is reported instead). The other LangChain standard
parameters (``temperature``, ``timeout``, ``api_key``, ...) are accepted and ignored: the
replies are fixed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr

from persona.llm import cut_at_stop


def render(messages: list[BaseMessage]) -> str:
    """``role: text`` per message (roles as LangChain names them: system, human, ai, tool)."""
    return "\n".join(f"{m.type}: {m.text}" for m in messages)


def _words(text: str) -> int:
    return len(text.split())


class ReplyChatModel(BaseChatModel):
    """Shared plumbing: one reply per call (subclasses write :meth:`_reply`), streamed word by
    word, usage in words."""

    #: Where conditioning goes (see ``LocalChatModel.follows_system_prompt``); settable so tests
    #: can exercise both placements.
    follows_system_prompt: bool = True
    #: Reported as ``response_metadata["model_name"]`` and in traces; None: the ``_llm_type``.
    model_name: str | None = None
    #: Default stop sequences (a call's ``stop=`` replaces them).
    stop: list[str] | None = None
    #: The reply is cut to this many words (a call's ``max_tokens=`` overrides it); None: whole.
    max_tokens: int | None = Field(default=None, ge=1)

    def _reply(self, messages: list[BaseMessage]) -> str:
        raise NotImplementedError

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "persona"
        params["ls_model_name"] = self._name(kwargs)
        limit = kwargs.get("max_tokens") or self.max_tokens
        if limit:
            params["ls_max_tokens"] = int(limit)
        stops = self.stop if stop is None else stop
        if stops:
            params["ls_stop"] = list(stops)
        return params

    def _name(self, kwargs: dict[str, Any]) -> str:
        model = kwargs.get("model")
        return model if isinstance(model, str) else self.model_name or self._llm_type

    def _answer(self, messages: list[BaseMessage], stop: list[str] | None, limit: Any) -> str:
        """The reply, cut before a stop sequence and to ``max_tokens`` words."""
        reply = cut_at_stop(self._reply(messages), self.stop if stop is None else stop)
        limit = limit or self.max_tokens
        if limit and _words(reply) > int(limit):
            reply = "".join(re.findall(r"\s*\S+", reply)[: int(limit)])
        return reply

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
        reply = self._answer(messages, stop, kwargs.get("max_tokens"))
        msg = AIMessage(
            content=reply,
            usage_metadata=self._usage(messages, reply),
            response_metadata={"model_name": self._name(kwargs)},
        )
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._answer(messages, stop, kwargs.get("max_tokens"))
        for piece in re.findall(r"\S+\s*|\s+", reply):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        usage = self._usage(messages, reply)
        yield ChatGenerationChunk(  # the one chunk with usage and model name (they add up)
            message=AIMessageChunk(
                content="",
                usage_metadata=usage,
                response_metadata={"model_name": self._name(kwargs)},
                chunk_position="last",
            )
        )


class EchoChatModel(ReplyChatModel):
    """Replies with the whole input, one ``role: text`` line per message."""

    @property
    def _llm_type(self) -> str:
        return "persona-fake-echo"

    def _reply(self, messages: list[BaseMessage]) -> str:
        return render(messages)


class ScriptedChatModel(ReplyChatModel):
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


class FailingChatModel(ReplyChatModel):
    """Raises :class:`ConnectionError` on every call, like a server that is down."""

    error: str = "connection refused (FailingChatModel is always down)"

    @property
    def _llm_type(self) -> str:
        return "persona-fake-failing"

    def _reply(self, messages: list[BaseMessage]) -> str:
        raise ConnectionError(self.error)
