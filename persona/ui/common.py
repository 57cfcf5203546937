"""Helpers shared by the app's handlers: reading Gradio values, checking what people typed, and
telling them what went wrong in plain language (never a traceback, never a Python name)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import Any

from persona.config import MAX_ROW_ID, MAX_TEXT_CHARS, check_user_id
from persona.errors import InvalidInputError, PersonaError
from persona.ui.messages import for_person

Notify = Callable[[str], None]
Message = dict[str, Any]  # {"role": "user" | "assistant", "content": str, "metadata"?: dict}
WHY_TITLE = "Why this answer"

log = logging.getLogger("persona.ui")


def warn(message: str) -> None:
    """Show ``message`` as a Gradio warning toast (a ``UserWarning`` outside an event)."""
    import gradio as gr

    gr.Warning(message)


def quiet(_: str) -> None:
    """A notify that shows nothing (the status line says it already)."""


def failed(err: BaseException, notify: Notify) -> str:
    """Tell the person what went wrong (a toast) and return it as Markdown for the status."""
    if not isinstance(err, PersonaError):
        log.exception("persona app: unexpected error", exc_info=err)
    message = for_person(err)
    notify(message)
    return escape_md(message)


def escape_md(text: str) -> str:
    """Show ``text`` literally in Markdown (learned preferences are data, not markup)."""
    return re.sub(r"([\\`*_{}\[\]<>()#+\-.!|~])", r"\\\1", " ".join(text.split()))


def normalise_user(user_id: Any) -> str:
    """The user name typed in the app, stripped ("maria " is "maria"), or a plain refusal."""
    if not isinstance(user_id, str) or not user_id.strip():
        raise InvalidInputError("Type your name first, such as alice.")
    try:
        return check_user_id(" ".join(user_id.split()))
    except InvalidInputError:
        raise InvalidInputError(
            "That name cannot be used: use letters, digits, dots, dashes or spaces inside "
            "(no slashes, no backslashes, no two dots in a row, no control characters), at "
            "most 128 characters, such as alice."
        ) from None


def text_in(value: Any, what: str, *, limit: int = MAX_TEXT_CHARS) -> str:
    """A non-empty text typed by the person, within ``limit`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"The {what} is empty; type something first.")
    if len(value) > limit:
        raise InvalidInputError(
            f"The {what} is {len(value):,} characters long; the limit is {limit:,}. Shorten it."
        )
    if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise InvalidInputError(f"The {what} contains a character that cannot be stored.")
    return value.strip()


def lines_in(value: Any, what: str) -> list[str] | None:
    """Example requests typed one per line (blank lines dropped); None when there are none."""
    if not isinstance(value, str) or not value.strip():
        return None
    return [text_in(line, what) for line in value.splitlines() if line.strip()]


def example_boxes(
    applies: str, not_applies: str, ids: tuple[str, str], lines: int
) -> tuple[Any, Any]:
    """Two boxes side by side (inside a Gradio layout) for example requests, one per line:
    where a feedback applies and where it must not (read back with :func:`lines_in`)."""
    import gradio as gr

    with gr.Row(equal_height=True):
        ins = gr.Textbox(label=applies, lines=lines, elem_id=ids[0])
        outs = gr.Textbox(label=not_applies, lines=lines, elem_id=ids[1])
    return ins, outs


# -- chat messages ---------------------------------------------------------------------------------
def as_text(content: Any, _depth: int = 0) -> str:
    """The text of a chat message's content: a string, a ``{"type": "text"}`` part, or a list.

    Anything else (files, numbers, junk) has no text: ``""``.
    """
    if isinstance(content, str):
        return content
    if _depth > 8:
        return ""
    if isinstance(content, dict):
        return as_text(content.get("text") or content.get("content") or "", _depth + 1)
    if isinstance(content, list | tuple):
        parts = (as_text(part, _depth + 1) for part in content)
        return "\n".join(t for t in parts if t)
    return ""


def plain(history: Any) -> list[Message]:
    """Chatbot messages as ``{"role", "content": str}`` dicts (Gradio hands content as parts);
    a "why" note keeps its ``metadata``."""
    if not history:
        return []
    if not isinstance(history, list | tuple):
        raise InvalidInputError("The chat could not be read; clear the chat and start again.")
    out: list[Message] = []
    for m in history:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise InvalidInputError("The chat could not be read; clear the chat and start again.")
        msg: Message = {"role": m["role"], "content": as_text(m.get("content"))}
        meta = m.get("metadata")
        if isinstance(meta, dict) and meta.get("title"):
            msg["metadata"] = {k: v for k, v in meta.items() if isinstance(v, str | int | float)}
        out.append(msg)
    return out


def is_note(message: Message) -> bool:
    """A "why" note under an answer (shown collapsed), not a turn of the conversation."""
    return bool(message.get("metadata"))


def turns(history: list[Message]) -> list[tuple[str, str]]:
    """(user, assistant) pairs from a message list, without the "why" notes."""
    talk = [m for m in history if not is_note(m)]
    pairs: list[tuple[str, str]] = []
    for prev, msg in zip(talk, talk[1:], strict=False):
        if prev["role"] == "user" and msg["role"] == "assistant":
            pairs.append((prev["content"], msg["content"]))
    return pairs


def contexts_of(contexts: Any) -> dict[int, str]:
    """The app's own state (answer index -> request); entries of another shape are dropped.

    Keys may come back as digit strings from the browser's storage (JSON has no int keys).
    """
    if not isinstance(contexts, dict):
        return {}
    out: dict[int, str] = {}
    for k, v in contexts.items():
        if isinstance(k, str) and k.isdecimal() and len(k) < 10:
            k = int(k)
        if isinstance(k, int) and not isinstance(k, bool) and isinstance(v, str):
            out[k] = v
    return out


def indexes_of(values: Any) -> set[int]:
    """A set of message indexes from the app's state (anything else: empty)."""
    if not isinstance(values, list | tuple | set):
        return set()
    return {v for v in values if isinstance(v, int) and not isinstance(v, bool)}


def message_index(index: Any) -> int:
    """``EditData.index`` is an int for messages (a pair for the old tuple format); -1 when it
    is neither."""
    if isinstance(index, list | tuple) and index:
        index = index[0]
    if isinstance(index, int) and not isinstance(index, bool):
        return index
    return -1


def pref_id(value: Any, what: str = "preference") -> int:
    """The id typed (or picked) in an id box: a whole number from a table's id column."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInputError(
            f"No {what} id given; click a row of the table (or type its id) first."
        )
    shown = str(value)[:20] if isinstance(value, str | int | float) else "that"
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("#").isdecimal():
        number = int(value.strip().lstrip("#")[:20])
    if number is None:
        raise InvalidInputError(
            f"The {what} id {shown!r} is not a whole number; use the table's id column."
        )
    if not 1 <= number <= MAX_ROW_ID:
        raise InvalidInputError(f"There is no {what} with that id; use an id from the table.")
    return number
