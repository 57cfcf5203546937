"""The writing assistant used by the app and the benchmarks: chat, summarize, draft an email.

Every answer goes through ``layer.as_runnable``, so it is conditioned on the user's
preferences. Each :class:`Reply` carries the ``context`` it was conditioned on: hand it back
with the user's edit (``layer.learn_from_edit(user_id, reply.context, reply.text, edited)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from persona.config import check_text, check_user_id
from persona.learn import prompts

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from persona.agents.runnable import Placement
    from persona.layer import PreferenceLayer


@dataclass(frozen=True)
class Reply:
    text: str
    context: str  # the request the answer was conditioned on
    applied: dict[str, Any] = field(default_factory=dict)  # ids, summary, adapter
    tokens_in: int = 0
    tokens_out: int = 0


class Assistant:
    """A small writing assistant on top of any chat model, conditioned per user."""

    def __init__(
        self,
        layer: PreferenceLayer,
        chat_model: BaseChatModel | str | None = None,
        *,
        max_tokens: int = 256,  # answers stay short: the local model writes ~15 tokens/s
        placement: Placement = "auto",
    ) -> None:
        self.layer = layer
        self.runnable = layer.as_runnable(chat_model, placement=placement)
        self.max_tokens = max_tokens

    def _ask(self, user_id: str, messages: list[BaseMessage]) -> Reply:
        check_user_id(user_id)
        context = str(messages[-1].content)
        msg = self.runnable.invoke(
            messages, config={"configurable": {"user_id": user_id}}, max_tokens=self.max_tokens
        )
        meta = msg.response_metadata.get("persona", {})
        use = getattr(msg, "usage_metadata", None) or {}
        return Reply(
            text=msg.text.strip(),
            context=context,
            applied=meta,
            tokens_in=int(use.get("input_tokens", 0)),
            tokens_out=int(use.get("output_tokens", 0)),
        )

    def chat(self, user_id: str, message: str, history: Sequence[tuple[str, str]] = ()) -> Reply:
        """Answer ``message``; ``history`` is earlier (user, assistant) turns."""
        message = check_text(message, "message")
        messages: list[BaseMessage] = []
        for user_text, bot_text in history:
            messages += [HumanMessage(user_text), AIMessage(bot_text)]
        return self._ask(user_id, [*messages, HumanMessage(message)])

    def summarize(self, user_id: str, document: str) -> Reply:
        document = check_text(document, "document")
        return self._ask(
            user_id, [HumanMessage(prompts.SUMMARIZE.format(document=document.strip()))]
        )

    def email(self, user_id: str, notes: str) -> Reply:
        notes = check_text(notes, "notes")
        return self._ask(user_id, [HumanMessage(prompts.EMAIL.format(notes=notes.strip()))])
