"""Two candidate answers to pick from: the pick is a labeled pair (FSPO, ``learn_from_labels``).

Candidate A is the answer conditioned on the person's preferences; B is a second, sampled
answer, or (when sampling gives the same text, as greedy local models do) the plain model's
answer without preferences. Both stay editable before the pick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from persona.errors import InvalidInputError, UnknownUserError
from persona.llm import complete
from persona.ui.chat import Job, Learned, _learned, _prepare, adapter_mode, request_messages
from persona.ui.common import (
    Message,
    Notify,
    contexts_of,
    failed,
    normalise_user,
    plain,
    text_in,
    warn,
)
from persona.ui.why import why_note

if TYPE_CHECKING:
    import pandas as pd

    from persona.assistant import Assistant
    from persona.layer import PreferenceLayer

SAMPLE_TEMPERATURE = 1.0  # the second candidate is sampled, so it differs from the first


class Candidates(NamedTuple):
    a: str
    b: str
    request: str  # the request both answer (the labeled pair's prompt)
    status: str
    ok: bool = True


def candidates(
    layer: PreferenceLayer,
    assistant: Assistant,
    user_id: Any,
    mode: Any,
    message: Any,
    history: Any,
    notify: Notify = warn,
    *,
    adapter: Any = "both",
) -> Candidates:
    """Two answers to the message typed; the person picks the better one. ``adapter``: the
    Adapter tab's switch, as for a chat answer."""
    try:
        user = normalise_user(user_id)
        text = text_in(message, "message")
        messages = request_messages(mode, text, plain(history))
        prep = _prepare(assistant, user, messages, adapter)
        model, limit, how = assistant.runnable.model, assistant.max_tokens, prep.routed
        a = ask_model(model, prep.messages, prep.config, limit, **how)
        b = ask_model(model, prep.messages, prep.config, limit, **how,
                      temperature=SAMPLE_TEMPERATURE)  # fmt: skip
        if b == a:  # a greedy model: the answer without preferences (nor adapter) is the other
            b = ask_model(model, messages, prep.config, limit)
    except Exception as err:
        return Candidates("", "", "", f"⚠️ {failed(err, notify)}", ok=False)
    request = messages[-1].text
    status = "Two candidates are below: pick the one you prefer (you may edit them first)."
    if a == b:
        status = "Both candidates came out the same; edit one of them, then pick."
    try:
        sa, sb = layer.score(user, request, [a or " ", b or " "])
        likely = "A" if sa >= sb else "B"
        status += f" From your earlier picks, persona expects you to prefer {likely}."
    except UnknownUserError:
        pass
    except Exception as err:  # a guess only: never in the way of picking
        failed(err, lambda _: None)
    return Candidates(a, b, request, status)


def ask_model(chat_model: Any, messages: Any, config: Any, limit: int, /, **kwargs: Any) -> str:
    """One answer's text (``kwargs`` may name a served adapter as ``model=``)."""
    return complete(chat_model, messages, config=config, max_tokens=limit, **kwargs).text.strip()


class Picked(NamedTuple):
    history: list[Message]
    contexts: dict[int, str]
    table: pd.DataFrame | None
    status: str
    ok: bool = True
    job: Job | None = None


def pick(
    layer: PreferenceLayer,
    user_id: Any,
    choice: Any,
    request: Any,
    message: Any,
    a: Any,
    b: Any,
    history: Any,
    contexts: Any,
    notify: Notify = warn,
    *,
    learn: bool = True,
    adapter: Any = "both",
) -> Picked:
    """The person preferred candidate ``choice`` ("A" or "B"): it becomes the answer in the
    chat, and the pair is learned. ``adapter``: the switch the candidates were made with."""
    ctx = contexts_of(contexts)
    chat: list[Message] = []
    try:
        chat = plain(history)
        user = normalise_user(user_id)
        if choice not in ("A", "B"):
            raise InvalidInputError("Pick candidate A or candidate B.")
        if not isinstance(request, str) or not request.strip():
            raise InvalidInputError("Ask for two candidates first, then pick one.")
        first = text_in(a, "candidate A")
        second = text_in(b, "candidate B")
        chosen, rejected = (first, second) if choice == "A" else (second, first)
        if chosen == rejected:
            raise InvalidInputError("Both candidates are the same; edit one of them, then pick.")
        shown = message if isinstance(message, str) and message.strip() else request
        how = adapter_mode(adapter)
        note = why_note(layer.condition(user, request), {"Picked": f"candidate {choice}"},
                        mode=how, used=False if how == "prompt" else None)  # fmt: skip
    except Exception as err:
        return Picked(chat, ctx, None, f"⚠️ {failed(err, notify)}", ok=False)
    chat += [{"role": "user", "content": shown}, {"role": "assistant", "content": chosen}]
    ctx[len(chat) - 1] = request
    chat.append(note)
    job = {"kind": "label", "user": user, "prompt": request, "chosen": chosen,
           "rejected": rejected}  # fmt: skip
    table, status, left = _learned(layer, job, learn, notify, "Learning from your pick…")
    return Picked(chat, ctx, table, status, not status.startswith("⚠️"), left)


__all__ = ["Candidates", "Learned", "Picked", "candidates", "pick"]
