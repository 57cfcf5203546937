"""Calling any chat model: one ``complete`` that turns every failure into a
:class:`ModelError` naming the model and the fix, token usage, and stop sequences.

The lowest layer that knows about LLMs: learners, agents and benchmarks all call models
through it, and it depends only on langchain-core.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable

from persona.errors import ModelError, PersonaError


def complete(
    model: BaseChatModel | Runnable[LanguageModelInput, Any],
    messages: LanguageModelInput,
    /,
    **kwargs: Any,
) -> AIMessage:
    """``model.invoke(messages, **kwargs)``; any failure becomes a :class:`ModelError`.

    ``model`` may also be a bound model (``llm.bind(max_tokens=64)``).
    """
    try:
        reply = model.invoke(messages, **kwargs)
    except PersonaError:
        raise
    except Exception as exc:
        raise ModelError(
            f"{describe(model)} did not answer ({type(exc).__name__}: {exc}); {_fix(model)}"
        ) from exc
    if not isinstance(reply, AIMessage):
        raise ModelError(
            f"{describe(model)} returned a {type(reply).__name__}, not an AIMessage; {_fix(model)}"
        )
    return reply


def usage(msg: BaseMessage) -> tuple[int, int]:
    """``(input_tokens, output_tokens)`` from the message's usage metadata, ``(0, 0)`` if none."""
    meta = getattr(msg, "usage_metadata", None) or {}
    return int(meta.get("input_tokens", 0)), int(meta.get("output_tokens", 0))


def describe(model: object) -> str:
    """A short name for error messages: type, model name and server URL when known."""
    model = getattr(model, "bound", model)  # see through .bind() / .with_config()
    kind = getattr(model, "_llm_type", type(model).__name__)
    name = getattr(model, "model_name", None) or getattr(model, "model_dir", None)
    url = getattr(model, "openai_api_base", None)
    return f"chat model {kind}" + (f" {name!r}" if name else "") + (f" at {url}" if url else "")


def _fix(model: object) -> str:
    model = getattr(model, "bound", model)
    url = getattr(model, "openai_api_base", None)
    if url or getattr(model, "_llm_type", "") == "openai-chat":
        where = url or "the OpenAI API (check OPENAI_API_KEY)"
        return f"check that the server is running at {where}, or pass another llm= (e.g. 'local')."
    return "check the model loads and answers, or pass another llm= (e.g. 'local')."


def cut_at_stop(text: str, stop: list[str] | None) -> str:
    """Truncate ``text`` before the earliest stop sequence."""
    for s in stop or ():
        if s and s in text:
            text = text[: text.index(s)]
    return text
