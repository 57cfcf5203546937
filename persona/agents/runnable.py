"""A LangChain ``Runnable`` that conditions any chat model on the calling user's preferences.

The user comes from ``config={"configurable": {"user_id": ...}}``. The last human message is
the context: the layer retrieves what applies to it and the runnable places it where the model
follows it — a system message for capable chat models, the user turn (CIPHER's generation
form) for models that ignore system messages (``follows_system_prompt = False``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.utils import convert_to_messages
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config

from persona.errors import InvalidInputError, ModelError
from persona.learn import prompts
from persona.learn.guard import as_data
from persona.llm import complete
from persona.types import Conditioning

_log = logging.getLogger(__name__)
_WARNED: set[str] = set()
_WARNED_LOCK = threading.Lock()


def _warn_unfit(why: str) -> None:
    """Log, once per process and reason, that a user adapter is skipped."""
    with _WARNED_LOCK:
        if why in _WARNED:
            return
        _WARNED.add(why)
    _log.warning("%s; it is not used until retrained (`persona train-adapters --users ID`).", why)


Placement = Literal["auto", "system", "user"]
#: How a user is applied: "both" (prompt + adapter, the default), "prompt" (never the
#: adapter), "adapter" (the adapter alone where the user has one, else the prompt).
Mode = Literal["both", "prompt", "adapter"]
#: The folder of a trained adapter by its name (None: no usable adapter there).
AdapterFolder = Callable[[str], str | None]
Conditioner = Callable[[str, str], Conditioning]
#: ``score(user_id, prompt, responses)``: the user's personalized reward (``layer.score``).
Reward = Callable[[str, str, list[str]], list[float]]


def to_messages(value: LanguageModelInput) -> list[BaseMessage]:
    """Accept a string, a PromptValue or a list of message-likes, like a chat model does."""
    if isinstance(value, str):
        return [HumanMessage(value)]
    if isinstance(value, PromptValue):
        return value.to_messages()
    try:
        return convert_to_messages(value)
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise InvalidInputError(
            f"cannot read messages from {value!r:.80}; pass a string, a PromptValue or a "
            "list of messages."
        ) from exc


def user_id_from(config: RunnableConfig) -> str:
    user_id = (config.get("configurable") or {}).get("user_id")
    if user_id is None:
        raise InvalidInputError(
            "no user_id in the config; call with config={'configurable': {'user_id': 'alice'}}."
        )
    return str(user_id)


def conditioning_text(cond: Conditioning) -> str:
    """The preferences as one description (CIPHER's aggregate when there is one), rendered as
    data (:func:`~persona.learn.guard.as_data`): one line, no tags, no chat-template tokens."""
    if cond.summary:
        return as_data(cond.summary)
    return "; ".join(dict.fromkeys(as_data(p.text) for p in cond.preferences))


def apply_conditioning(
    messages: list[BaseMessage], cond: Conditioning, placement: Literal["system", "user"]
) -> list[BaseMessage]:
    """Return new messages with the conditioning placed; the input list is not changed."""
    if cond.empty or not cond.system_prompt:
        return list(messages)
    out = list(messages)
    if placement == "system":
        if out and isinstance(out[0], SystemMessage):
            out[0] = SystemMessage(f"{out[0].text}\n\n{cond.system_prompt}")
        else:
            out.insert(0, SystemMessage(cond.system_prompt))
        return out
    for i in range(len(out) - 1, -1, -1):
        if isinstance(out[i], HumanMessage):
            text = out[i].text.rstrip()
            if cond.preferences:
                text = prompts.USER_TURN.format(
                    message=text, preferences=conditioning_text(cond).rstrip(".")
                )
            if cond.examples:  # FSPO's layout: the user's pairs, then the task and question
                from persona.learn.fspo import few_shot_prompt

                text = few_shot_prompt(cond.examples, text)
            out[i] = HumanMessage(text)
            break
    return out


def guidance_kwargs(
    model: BaseChatModel, original: list[BaseMessage], conditioned: list[BaseMessage]
) -> dict[str, Any]:
    """``negative_messages=`` (the messages without the conditioning) for a local model that
    steers its answers toward the preferences (``guidance_scale`` != 1 or ``rerank`` > 1);
    else nothing."""
    steers = getattr(model, "guidance_scale", 1.0) != 1.0 or getattr(model, "rerank", 1) > 1
    if not steers or conditioned == original:
        return {}
    return {"negative_messages": original}


def last_human_text(messages: list[BaseMessage]) -> str:
    for msg in reversed(messages):
        if isinstance(msg, HumanMessage):
            return msg.text
    raise InvalidInputError(
        "the input has no human message to condition on; pass the user's request as a "
        "string or include a HumanMessage."
    )


class PreferenceRunnable(Runnable[LanguageModelInput, BaseMessage]):
    """``layer.as_runnable(model)``: condition, call the model, return its message.

    The returned message's ``response_metadata["persona"]`` records what was applied (the
    preference ids, the aggregate description and the context), so callers can show it or
    report an unedited acceptance back to the layer.
    """

    def __init__(
        self,
        condition: Conditioner,
        model: BaseChatModel,
        placement: Placement = "auto",
        *,
        best_of: int = 1,
        reward: Reward | None = None,
        temperature: float = 0.8,
        mode: Mode = "both",
        adapter_folder: AdapterFolder | None = None,
        served_adapters: bool = False,
    ) -> None:
        if mode not in ("both", "prompt", "adapter"):
            raise InvalidInputError(f"mode {mode!r} is unknown; use 'both', 'prompt' or 'adapter'.")
        if placement not in ("auto", "system", "user"):
            raise InvalidInputError(
                f"placement {placement!r} is unknown; use 'auto', 'system' or 'user'."
            )
        if isinstance(best_of, bool) or not isinstance(best_of, int) or best_of < 1:
            raise InvalidInputError(f"best_of={best_of!r:.40} must be a whole number >= 1, e.g. 4.")
        if best_of > 1 and reward is None:
            raise InvalidInputError("best_of > 1 needs a reward to pick with (layer.score).")
        self.condition = condition
        self.model = model
        self.placement = placement
        self.best_of = best_of
        self.reward = reward
        self.temperature = temperature  # sampling temperature of the best_of candidates
        self.mode: Mode = mode
        self.adapter_folder = adapter_folder
        self.served_adapters = served_adapters

    @property
    def resolved_placement(self) -> Literal["system", "user"]:
        if self.placement != "auto":
            return self.placement
        return "system" if getattr(self.model, "follows_system_prompt", True) else "user"

    def prepare(
        self, input: LanguageModelInput, config: RunnableConfig | None = None
    ) -> tuple[list[BaseMessage], Conditioning]:
        """The messages the model will see, and the conditioning behind them."""
        config = ensure_config(config)
        user_id = user_id_from(config)
        messages = to_messages(input)
        cond = self.condition(user_id, last_human_text(messages))
        if self.mode == "adapter" and self.adapter_kwargs(cond):
            return messages, cond  # the adapter alone conditions the answer
        return apply_conditioning(messages, cond, self.resolved_placement), cond

    def adapter_kwargs(self, cond: Conditioning) -> dict[str, Any]:
        """What the model call needs to use the user's adapter: ``adapter=FOLDER`` for the
        local model, ``model=NAME`` for a server that serves the adapters (vLLM); nothing when
        the mode is "prompt", the user has no adapter or the model cannot take one."""
        if self.mode == "prompt" or not cond.adapter:
            return {}
        from persona.agents.models import LocalChatModel

        if isinstance(self.model, LocalChatModel):
            folder = self.adapter_folder(cond.adapter) if self.adapter_folder else None
            why = self.model.adapter_mismatch(folder) if folder else None
            if why:  # trained for other weights: the prompt alone serves until it is retrained
                _warn_unfit(why)
                return {}
            return {"adapter": folder} if folder else {}
        return {"model": cond.adapter} if self.served_adapters else {}

    def guidance_kwargs(
        self, original: list[BaseMessage], conditioned: list[BaseMessage]
    ) -> dict[str, Any]:
        """See :func:`guidance_kwargs`."""
        return guidance_kwargs(self.model, original, conditioned)

    @staticmethod
    def _meta(cond: Conditioning, context: str) -> dict[str, Any]:
        return {
            "preference_ids": [p.id for p in cond.preferences],
            "label_ids": [e.id for e in cond.examples],
            "summary": cond.summary,
            "adapter": None,  # set by the call when the adapter is used
            "context": context,
        }

    def invoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> BaseMessage:
        config = ensure_config(config)
        messages, cond = self.prepare(input, config)
        original = to_messages(input)
        context = last_human_text(original)
        meta = self._meta(cond, context)
        routed = self.adapter_kwargs(cond)
        kwargs = {**kwargs, **routed, **self.guidance_kwargs(original, messages)}
        meta["adapter"] = cond.adapter if routed else None
        if self.best_of == 1:
            reply = complete(self.model, messages, config=config, **kwargs)
        else:
            reply, meta["best_of"] = self._best_of(messages, config, context, **kwargs)
        reply.response_metadata = {**reply.response_metadata, "persona": meta}
        return reply

    def _best_of(
        self, messages: list[BaseMessage], config: RunnableConfig, context: str, **kwargs: Any
    ) -> tuple[Any, dict[str, Any]]:
        """Sample ``best_of`` answers and keep the one the user's reward scores highest."""
        assert self.reward is not None
        kwargs.setdefault("temperature", self.temperature)
        replies = [
            complete(self.model, messages, config=config, **kwargs) for _ in range(self.best_of)
        ]
        user_id = user_id_from(config)
        scores = self.reward(user_id, context, [r.text or " " for r in replies])
        best = max(range(len(replies)), key=lambda i: scores[i])
        return replies[best], {"n": self.best_of, "scores": scores, "picked": best}

    def stream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[BaseMessage]:
        config = ensure_config(config)
        messages, cond = self.prepare(input, config)
        guided = self.guidance_kwargs(to_messages(input), messages)
        kwargs = {**kwargs, **self.adapter_kwargs(cond), **guided}
        try:
            yield from self.model.stream(messages, config=config, **kwargs)
        except Exception as exc:
            raise ModelError(
                f"the chat model {type(self.model).__name__} failed while streaming: {exc}; "
                "check that it is running, or pass another model to as_runnable()."
            ) from exc

    def __repr__(self) -> str:
        return (
            f"PreferenceRunnable(model={type(self.model).__name__}, placement={self.placement!r})"
        )
