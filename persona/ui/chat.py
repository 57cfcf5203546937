"""The chat: streamed answers, each with its "why" note, and every way to teach persona.

- **edit** an answer in place → ``learn_from_edit`` (CIPHER); **accept** it once as it is;
- **feedback** in words → ``learn_from_feedback`` (C3PO), showing the scope it learned;
- **two candidates** to pick from → ``learn_from_labels`` (FSPO).

Handlers are plain functions of the layer. Each teaching handler returns a *job* (what to
learn); the app runs jobs in their own queue so learning never freezes the chat
(:func:`run_job`). Called with ``learn=True`` (the default), a handler runs its job at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from persona.config import MAX_PREFERENCE_CHARS
from persona.errors import InvalidInputError, ModelError, PersonaError
from persona.ui.common import (
    Message,
    Notify,
    as_text,
    contexts_of,
    escape_md,
    failed,
    indexes_of,
    is_note,
    lines_in,
    message_index,
    normalise_user,
    plain,
    text_in,
    turns,
    warn,
)
from persona.ui.prefs import preference_table
from persona.ui.why import why_note

if TYPE_CHECKING:
    import pandas as pd
    from langchain_core.messages import BaseMessage
    from langchain_core.runnables import RunnableConfig

    from persona.agents.runnable import Mode, PreferenceRunnable
    from persona.assistant import Assistant
    from persona.layer import PreferenceLayer
    from persona.types import Conditioning

MODES = ("Chat", "Summarize", "Email")
# What conditions an answer (the Adapter tab's switch; ``PreferenceRunnable.mode``).
ADAPTER_MODES: tuple[Mode, ...] = ("both", "prompt", "adapter")
# Earlier (user, assistant) turns sent with a chat message: the local model has an 8k-token
# context and reads ~100 tokens/s, and older turns rarely change the answer.
HISTORY_TURNS = 4
Job = dict[str, Any]  # what to learn: {"kind": "edit" | "accept" | "feedback" | "label", ...}


def request_messages(mode: Any, text: str, chat: list[Message]) -> list[BaseMessage]:
    """The messages the assistant answers (as :class:`~persona.assistant.Assistant` builds them)."""
    from langchain_core.messages import AIMessage, HumanMessage

    from persona.learn import prompts

    if mode == "Summarize":
        return [HumanMessage(prompts.SUMMARIZE.format(document=text))]
    if mode == "Email":
        return [HumanMessage(prompts.EMAIL.format(notes=text))]
    messages: list[BaseMessage] = []
    for user_text, bot_text in turns(chat)[-HISTORY_TURNS:]:
        messages += [HumanMessage(user_text), AIMessage(bot_text)]
    return [*messages, HumanMessage(text)]


def adapter_mode(value: Any) -> Mode:
    """The Adapter tab's switch: "both" (the default), "prompt" or "adapter"."""
    return value if value in ADAPTER_MODES else "both"


def runnable_for(assistant: Assistant, mode: Any = "both") -> PreferenceRunnable:
    """The assistant's runnable, answering in ``mode`` (one per call: the switch is per
    session, the assistant is shared)."""
    base, wanted = assistant.runnable, adapter_mode(mode)
    if base.mode == wanted:
        return base
    return assistant.layer.as_runnable(
        base.model, placement=base.placement, best_of=base.best_of, mode=wanted
    )


class Prepared(NamedTuple):
    messages: list[BaseMessage]  # what the model reads (conditioned unless the adapter alone)
    cond: Conditioning
    config: RunnableConfig
    routed: dict[str, Any]  # the model call's keywords that select the user's adapter ({}: none)
    mode: Mode


def _prepare(
    assistant: Assistant, user: str, messages: list[BaseMessage], mode: Any = "both"
) -> Prepared:
    config: RunnableConfig = {"configurable": {"user_id": user}}
    runnable = runnable_for(assistant, mode)
    prepared, cond = runnable.prepare(messages, config)
    return Prepared(prepared, cond, config, runnable.adapter_kwargs(cond), runnable.mode)


def _model_failed(exc: Exception) -> PersonaError:
    if isinstance(exc, PersonaError):
        return exc
    return ModelError(f"the chat model did not answer ({type(exc).__name__}: {exc})")


class Turn(NamedTuple):
    history: list[Message]
    contexts: dict[int, str]  # answer index -> the request that answer was conditioned on
    message: str  # what stays in the message box ("" once answered; kept on error)
    applied: str | None  # the last answer's "why" (Markdown); None: no new answer
    status: str


def stream_send(
    layer: PreferenceLayer,
    assistant: Assistant,
    user_id: Any,
    mode: Any,
    message: Any,
    history: Any,
    contexts: Any,
    notify: Notify = warn,
    *,
    adapter: Any = "both",
) -> Iterator[Turn]:
    """Answer ``message`` in ``mode`` (Chat, Summarize or Email), streaming the answer, then
    add its collapsed "why" note. ``adapter``: the Adapter tab's switch ("both", "prompt" or
    "adapter"), which the note reports."""
    kept = message if isinstance(message, str) else ""
    ctx = contexts_of(contexts)
    chat: list[Message] = []
    try:
        chat = plain(history)
        user = normalise_user(user_id)
        text = text_in(kept, "message")
        messages = request_messages(mode, text, chat)
        prep = _prepare(assistant, user, messages, adapter)
        context = messages[-1].text
        yield Turn([*chat, {"role": "user", "content": kept}], ctx, "", None, "Writing…")
        answer = ""
        try:
            for chunk in assistant.runnable.model.stream(
                prep.messages, config=prep.config, max_tokens=assistant.max_tokens, **prep.routed
            ):
                answer += as_text(chunk.content)
                if answer.strip():
                    out = [*chat, {"role": "user", "content": kept},
                           {"role": "assistant", "content": answer}]  # fmt: skip
                    yield Turn(out, ctx, "", None, "Writing…")
        except Exception as exc:
            raise _model_failed(exc) from exc
        if not answer.strip():
            raise ModelError("The model gave an empty answer; try again or rephrase.")
    except Exception as err:
        yield Turn(chat, ctx, kept, None, f"⚠️ {failed(err, notify)}")
        return
    note = why_note(prep.cond, mode=prep.mode, used=bool(prep.routed))
    chat += [{"role": "user", "content": kept}, {"role": "assistant", "content": answer.strip()}]
    ctx[len(chat) - 1] = context
    chat.append(note)
    n = len(prep.cond.preferences)
    shaped = f"with {n} preference(s) applied"
    if prep.routed:
        alone = prep.mode == "adapter"
        shaped = "by your adapter alone" if alone else f"{shaped} and your adapter"
    status = (
        f"Answered {shaped} (see “Why this answer”). Edit the answer to teach persona what "
        "you prefer, or accept it as it is."
    )
    yield Turn(chat, ctx, "", note["content"], status)


def send(*args: Any, **kwargs: Any) -> Turn:
    """:func:`stream_send` without the stream: its last step."""
    *_, last = stream_send(*args, **kwargs)
    return last


# -- learning jobs ---------------------------------------------------------------------------------
class Learned(NamedTuple):
    table: pd.DataFrame | None  # None: leave the table as it is
    status: str
    ok: bool = True


def _names(prefs: list[Any]) -> str:
    return ", ".join(f"**{escape_md(p.text)}** (#{p.id})" for p in prefs)


def run_job(layer: PreferenceLayer, job: Any, notify: Notify = warn) -> Learned:
    """Learn what ``job`` says (the slow part: LLM calls); the table and a status after it."""
    if not isinstance(job, dict) or not job.get("kind"):
        return Learned(None, "")
    try:
        user = normalise_user(job.get("user"))
        kind = job["kind"]
        if kind == "edit":
            learned = layer.learn_from_edit(user, job["context"], job["output"], job["edited"])
            status = (
                f"Learned from your edit: {_names(learned)}"
                if learned
                else "Your edit matches the answer and no learned preference was used: "
                "nothing to learn."
            )
        elif kind == "accept":
            learned = layer.learn_from_edit(user, job["context"], job["output"], job["output"])
            status = (
                f"Accepted: stored again {_names(learned)}"
                if learned
                else "Accepted. No learned preference shaped this answer, so nothing was stored."
            )
        elif kind == "feedback":
            pref = layer.learn_from_feedback(
                user, job["text"], job["in_scope"], job["out_of_scope"]
            )
            scope = escape_md(pref.scope or "everywhere")
            status = (
                f"Learned from your feedback: **{escape_md(pref.text)}** (#{pref.id}), "
                f"applied to {scope}. To check where it applies, pick it in Preferences and "
                "press “Suggest requests to check”."
            )
        elif kind == "label":
            label = layer.learn_from_labels(user, job["prompt"], job["chosen"], job["rejected"])
            status = (
                f"Learned from your pick (labeled pair #{label.id}); similar requests will "
                "show it as an example."
            )
        else:
            return Learned(None, "")
        return Learned(preference_table(layer, user), status)
    except Exception as err:
        what = {"accept": "accepted", "edit": "kept", "label": "kept"}.get(str(job.get("kind")), "")
        kept = (
            f"Your answer is {what}, but nothing was learned: " if what else "Nothing was learned: "
        )
        return Learned(None, f"⚠️ {kept}{failed(err, notify)}", ok=False)


def _learned(
    layer: PreferenceLayer, job: Job | None, learn: bool, notify: Notify, status: str
) -> tuple[Any, str, Job | None]:
    """Run ``job`` now (``learn=True``) or hand it back for the app's learning queue."""
    if job is None or not learn:
        return None, status, job
    done = run_job(layer, job, notify)
    return done.table, done.status, None


class Edited(NamedTuple):
    history: list[Message]
    table: pd.DataFrame | None  # None: leave the table as it is
    status: str
    job: Job | None = None  # what is left to learn (``learn=False``)


def edit_message(
    layer: PreferenceLayer,
    user_id: Any,
    history: Any,
    contexts: Any,
    index: Any,
    previous: Any,
    value: Any,
    notify: Notify = warn,
    *,
    learn: bool = True,
) -> Edited:
    """The person edited message ``index``: keep the new text; learn from an edited answer.

    An empty edit, or an edit of a "why" note, puts the previous text back.
    """
    try:
        chat = plain(history)
    except InvalidInputError as err:
        return Edited([], None, f"⚠️ {failed(err, notify)}")
    ctx = contexts_of(contexts)
    i, old, new = message_index(index), as_text(previous), as_text(value)
    if not 0 <= i < len(chat):
        notify("That message is not in this chat any more; send a message first.")
        return Edited(chat, None, "⚠️ That message is gone; nothing changed.")
    if is_note(chat[i]):
        chat[i] = {**chat[i], "content": old or chat[i]["content"]}
        return Edited(chat, None, "⚠️ The “why” notes are written by persona and cannot be edited.")
    if not new.strip():
        if old.strip():
            chat[i] = {**chat[i], "content": old}  # the bubble shows the previous text again
        notify(
            "The edited message is empty, so the previous text was kept. Type the text you want."
        )
        return Edited(chat, None, "⚠️ Empty edit ignored; the previous text was kept.")
    chat[i] = {**chat[i], "content": new}
    if chat[i]["role"] != "assistant":
        return Edited(chat, None, "Your message was edited (persona learns from answers only).")
    context = ctx.get(i)
    if context is None:
        return Edited(chat, None, "Answer edited; it has no recorded request, so nothing learned.")
    try:
        user = normalise_user(user_id)
        output = text_in(old, "previous answer")
    except Exception as err:
        return Edited(
            chat, None, f"⚠️ Your edit is kept, but nothing was learned: {failed(err, notify)}"
        )
    job: Job | None = {
        "kind": "edit",
        "user": user,
        "context": context,
        "output": output,
        "edited": new,
    }
    table, status, job = _learned(layer, job, learn, notify, "Learning from your edit…")
    return Edited(chat, table, status, job)


class Accepted(NamedTuple):
    table: pd.DataFrame | None
    status: str
    ok: bool = True
    accepted: list[int] = []  # noqa: RUF012 (a NamedTuple default is never mutated)
    job: Job | None = None


def accept_answer(
    layer: PreferenceLayer,
    user_id: Any,
    history: Any,
    contexts: Any,
    notify: Notify = warn,
    accepted: Any = None,
    *,
    learn: bool = True,
) -> Accepted:
    """The last answer is good as it is (CIPHER stores the preference it used again), once."""
    done = sorted(indexes_of(accepted))
    try:
        chat = plain(history)
        user = normalise_user(user_id)
    except Exception as err:
        return Accepted(None, f"⚠️ {failed(err, notify)}", False, done)
    ctx = contexts_of(contexts)
    answered = [i for i in ctx if 0 <= i < len(chat) and chat[i]["role"] == "assistant"]
    if not answered:
        notify("There is no answer to accept yet; send a message first.")
        return Accepted(None, "⚠️ No answer to accept yet.", False, done)
    i = max(answered)
    if i in done:
        return Accepted(
            None, "This answer already taught persona (accepted or edited); nothing more to store.",
            True, done,
        )  # fmt: skip
    text = chat[i]["content"]
    if not text.strip():
        notify("The last answer is empty; there is nothing to accept.")
        return Accepted(None, "⚠️ The last answer is empty; nothing to accept.", False, done)
    job: Job | None = {"kind": "accept", "user": user, "context": ctx[i], "output": text}
    table, status, job = _learned(layer, job, learn, notify, "Storing your acceptance…")
    ok = not status.startswith("⚠️")
    return Accepted(table, status, ok, sorted({*done, i}) if ok else done, job)


def give_feedback(
    layer: PreferenceLayer,
    user_id: Any,
    text: Any,
    in_scope: Any = None,
    out_of_scope: Any = None,
    notify: Notify = warn,
    *,
    learn: bool = True,
) -> Accepted:
    """Verbal feedback, with optional example requests (one a line) where it should and should
    not apply."""
    try:
        user = normalise_user(user_id)
        feedback = text_in(text, "feedback", limit=MAX_PREFERENCE_CHARS)
        job: Job | None = {
            "kind": "feedback",
            "user": user,
            "text": feedback,
            "in_scope": lines_in(in_scope, "example request"),
            "out_of_scope": lines_in(out_of_scope, "example request"),
        }
    except Exception as err:
        return Accepted(None, f"⚠️ {failed(err, notify)}", False)
    table, status, job = _learned(layer, job, learn, notify, "Learning from your feedback…")
    return Accepted(table, status, not status.startswith("⚠️"), [], job)
