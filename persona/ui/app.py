"""The Gradio app: chat, summarize or draft emails; edit answers to teach persona; manage prefs.

Every answer is conditioned on the user's preferences (the :class:`Assistant` does that). When
the user edits an answer, the app hands the edit and the request it answered back to the layer
(``learn_from_edit``, CIPHER); "Accept answer" records it as accepted unedited. The panel on the
right lists everything stored for the user, and adds, disables and deletes preferences.

The handlers are plain functions of the layer (testable without a browser); :func:`build_app`
only wires them to components. Errors never crash the app: each :class:`PersonaError` is shown
to the user (``gr.Warning`` and the status line) and whatever they typed is kept.
"""

import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from persona.config import MAX_ROW_ID, check_user_id
from persona.errors import InvalidInputError, NotFoundError, PersonaError, UnknownUserError
from persona.ui.messages import for_person

if TYPE_CHECKING:
    from pathlib import Path

    import gradio as gr
    import pandas as pd

    from persona.assistant import Assistant, Reply
    from persona.layer import PreferenceLayer

MODES = ("Chat", "Summarize", "Email")
PLACEHOLDERS = {
    "Chat": "Ask the assistant anything...",
    "Summarize": "Paste a document to summarize...",
    "Email": "Write the notes the email should say...",
}
COLUMNS = ["id", "text", "source", "enabled", "flagged", "provenance"]
# Earlier (user, assistant) turns sent with a chat message: the local model has an 8k-token
# context and reads ~100 tokens/s, and older turns rarely change the answer.
HISTORY_TURNS = 4

Notify = Callable[[str], None]
Message = dict[str, Any]  # {"role": "user" | "assistant", "content": str}

log = logging.getLogger(__name__)


def warn(message: str) -> None:
    """Show ``message`` as a Gradio warning toast (a ``UserWarning`` outside an event)."""
    import gradio as gr

    gr.Warning(message)


def _failed(err: BaseException, notify: Notify) -> str:
    """Tell the person what went wrong (a toast) and return it as Markdown for the status."""
    if not isinstance(err, PersonaError):
        log.exception("persona app: unexpected error", exc_info=err)
    message = for_person(err)
    notify(message)
    return escape_md(message)


def _user(user_id: Any) -> str:
    """The user id typed in the app, or :class:`InvalidInputError` with a plain message."""
    if not isinstance(user_id, str) or not user_id.strip():
        raise InvalidInputError("Type a user id first, such as alice.")
    try:
        return check_user_id(user_id)
    except InvalidInputError:
        raise InvalidInputError(
            "That user id cannot be used: use letters, digits, "
            "dots, dashes or spaces inside (no slashes, no '..', no control characters), "
            "at most 128 characters, such as alice."
        ) from None


# -- helpers ---------------------------------------------------------------------------------------
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
    """Chatbot messages as ``{"role", "content": str}`` dicts (Gradio hands content as parts)."""
    if not history:
        return []
    if not isinstance(history, list | tuple):
        raise InvalidInputError("The chat could not be read; clear the chat and start again.")
    out: list[Message] = []
    for m in history:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise InvalidInputError("The chat could not be read; clear the chat and start again.")
        out.append({"role": m["role"], "content": as_text(m.get("content"))})
    return out


def _contexts(contexts: Any) -> dict[int, str]:
    """The app's own state (message index -> request); entries of another shape are dropped."""
    if not isinstance(contexts, dict):
        return {}
    return {
        k: v
        for k, v in contexts.items()
        if isinstance(k, int) and not isinstance(k, bool) and isinstance(v, str)
    }


def turns(history: Sequence[Message]) -> list[tuple[str, str]]:
    """(user, assistant) pairs from a message list, for :meth:`Assistant.chat`."""
    pairs: list[tuple[str, str]] = []
    for prev, msg in zip(history, history[1:], strict=False):
        if prev["role"] == "user" and msg["role"] == "assistant":
            pairs.append((prev["content"], msg["content"]))
    return pairs


def escape_md(text: str) -> str:
    """Show ``text`` literally in Markdown (learned preferences are data, not markup)."""
    return re.sub(r"([\\`*_{}\[\]<>()#+\-.!|~])", r"\\\1", " ".join(text.split()))


def _index(index: Any) -> int:
    """``EditData.index`` is an int for messages (a pair for the old tuple format); -1 when it
    is neither."""
    if isinstance(index, list | tuple) and index:
        index = index[0]
    if isinstance(index, int) and not isinstance(index, bool):
        return index
    return -1


def _pref_id(value: Any) -> int:
    """The id typed (or picked) in the id box: a whole number from the table's id column."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInputError(
            "No preference id given; type one from the table's id column (or click its row)."
        )
    shown = str(value)[:20] if isinstance(value, str | int | float) else "that"
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdecimal():
        number = int(value.strip()[:20])
    if number is None:
        raise InvalidInputError(
            f"The preference id {shown!r} is not a whole number; use the table's id column."
        )
    if not 1 <= number <= MAX_ROW_ID:
        raise InvalidInputError(
            "There is no preference with that id; use an id from the table's id column."
        )
    return number


# -- the preferences panel -------------------------------------------------------------------------
def preference_table(layer: "PreferenceLayer", user_id: str) -> "pd.DataFrame":
    """Everything stored for the user; empty (with headers) for a user with no data yet."""
    import pandas as pd

    try:
        prefs = layer.preferences(user_id)
    except UnknownUserError:
        prefs = []
    rows = [
        [
            p.id,
            p.text,
            p.source,
            "yes" if p.enabled else "no",
            "yes" if p.flagged else "no",
            ", ".join(p.provenance),
        ]
        for p in prefs
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


class Panel(NamedTuple):
    table: "pd.DataFrame | None"  # None: leave the table as it is
    status: str
    ok: bool = True


def load_user(layer: "PreferenceLayer", user_id: Any, notify: Notify | None = None) -> Panel:
    """The user's table (on page load and whenever the user id changes).

    No toast by default: the user id box changes on every keystroke.
    """
    try:
        user_id = _user(user_id)
        table = preference_table(layer, user_id)
    except Exception as err:
        return Panel(None, f"⚠️ {_failed(err, notify or (lambda _: None))}", ok=False)
    if table.empty:
        return Panel(table, f"No preferences stored for **{escape_md(user_id)}** yet.")
    return Panel(table, f"{len(table)} preference(s) stored for **{escape_md(user_id)}**.")


def _panel_action(
    layer: "PreferenceLayer", user_id: Any, action: Callable[[str], str], notify: Notify
) -> Panel:
    try:
        user_id = _user(user_id)
        status = action(user_id)
        return Panel(preference_table(layer, user_id), status)
    except Exception as err:
        return Panel(None, f"⚠️ {_failed(err, notify)}", ok=False)


def add_preference(
    layer: "PreferenceLayer", user_id: Any, text: Any, notify: Notify = warn
) -> Panel:
    def action(user: str) -> str:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("The new preference is empty; type what you prefer first.")
        pref = layer.add_preference(user, text)
        return f"Added preference #{pref.id}: {escape_md(pref.text)}"

    return _panel_action(layer, user_id, action, notify)


def toggle_preference(
    layer: "PreferenceLayer", user_id: Any, pref_id: Any, notify: Notify = warn
) -> Panel:
    def action(user: str) -> str:
        pid = _pref_id(pref_id)
        current = next((p for p in layer.preferences(user) if p.id == pid), None)
        if current is None:
            raise NotFoundError(
                f"There is no preference #{pid} for this user; pick an id from the table."
            )
        pref = layer.update_preference(user, pid, enabled=not current.enabled)
        return f"Preference #{pid} {'enabled' if pref.enabled else 'disabled'}."

    return _panel_action(layer, user_id, action, notify)


def delete_preference(
    layer: "PreferenceLayer", user_id: Any, pref_id: Any, notify: Notify = warn
) -> Panel:
    def action(user: str) -> str:
        pid = _pref_id(pref_id)
        layer.delete_preference(user, pid)
        return f"Deleted preference #{pid}."

    return _panel_action(layer, user_id, action, notify)


# -- the chat --------------------------------------------------------------------------------------
class Turn(NamedTuple):
    history: list[Message]
    contexts: dict[int, str]  # message index -> the request that assistant message answered
    message: str  # what stays in the message box ("" once answered; kept on error)
    applied: str | None  # the "What applied" Markdown; None: leave it as it is
    status: str


def applied_markdown(layer: "PreferenceLayer", user_id: str, reply: "Reply") -> str:
    """What conditioned ``reply``: each applied preference with its score and why."""
    ids = [i for i in reply.applied.get("preference_ids") or () if isinstance(i, int)]
    if not ids:
        return "**What applied:** no stored preference matched this request."
    try:  # the same retrieval again: an embedding, a FAISS search and a cached aggregate
        wanted = set(ids)
        items = [p for p in layer.condition(user_id, reply.context).preferences if p.id in wanted]
    except Exception as err:
        if not isinstance(err, PersonaError):
            log.exception("persona app: unexpected error", exc_info=err)
        items = []
    lines = [
        f"- **#{p.id}** {escape_md(p.text)} — score {p.score:.2f}; {escape_md(str(p.why))}"
        for p in items
    ] or [f"- **#{i}**" for i in ids]
    summary = reply.applied.get("summary")
    if summary:
        lines.append(f"\nConditioned as: *{escape_md(str(summary))}*")
    return "**What applied to the last answer:**\n\n" + "\n".join(lines)


def send(
    layer: "PreferenceLayer",
    assistant: "Assistant",
    user_id: Any,
    mode: Any,
    message: Any,
    history: Any,
    contexts: Any,
    notify: Notify = warn,
) -> Turn:
    """Answer ``message`` in ``mode`` (Chat, Summarize or Email), conditioned on the user."""
    kept = message if isinstance(message, str) else ""
    ctx = _contexts(contexts)
    chat: list[Message] = []
    try:
        chat = plain(history)
        user = _user(user_id)
        if not kept.strip():
            raise InvalidInputError("The message is empty; type something to send first.")
        if mode == "Summarize":
            reply = assistant.summarize(user, kept)
        elif mode == "Email":
            reply = assistant.email(user, kept)
        else:
            reply = assistant.chat(user, kept, turns(chat)[-HISTORY_TURNS:])
        applied = applied_markdown(layer, user, reply)
    except Exception as err:
        return Turn(chat, ctx, kept, None, f"⚠️ {_failed(err, notify)}")
    chat += [{"role": "user", "content": kept}, {"role": "assistant", "content": reply.text}]
    ctx[len(chat) - 1] = reply.context
    n = len(reply.applied.get("preference_ids") or ())
    status = (
        f"Answered with {n} preference(s) applied. Edit the answer to teach persona what you "
        "prefer, or accept it as it is."
    )
    return Turn(chat, ctx, "", applied, status)


class Edited(NamedTuple):
    history: list[Message]
    table: "pd.DataFrame | None"  # None: leave the table as it is
    status: str


def edit_message(
    layer: "PreferenceLayer",
    user_id: Any,
    history: Any,
    contexts: Any,
    index: Any,
    previous: Any,
    value: Any,
    notify: Notify = warn,
) -> Edited:
    """The user edited message ``index``: keep the new text; learn from an assistant answer."""
    try:
        chat = plain(history)
    except InvalidInputError as err:
        return Edited([], None, f"⚠️ {_failed(err, notify)}")
    ctx = _contexts(contexts)
    i, old, new = _index(index), as_text(previous), as_text(value)
    if not 0 <= i < len(chat):
        notify("That message is not in this chat any more; send a message first.")
        return Edited(chat, None, "⚠️ That message is gone; nothing changed.")
    if not new.strip():
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
        user = _user(user_id)
        learned = layer.learn_from_edit(user, context, old, new)
    except Exception as err:
        why = _failed(err, notify)
        return Edited(chat, None, f"⚠️ Your edit is kept, but nothing was learned: {why}")
    try:
        table = preference_table(layer, user)
    except Exception as err:  # learned, but the table could not be read back
        _failed(err, notify)
        table = None
    if not learned:
        status = (
            "Your edit matches the answer and no learned preference was used: nothing to learn."
        )
    else:
        status = "Learned from your edit: " + ", ".join(
            f"**{escape_md(p.text)}** (#{p.id})" for p in learned
        )
    return Edited(chat, table, status)


def accept_answer(
    layer: "PreferenceLayer",
    user_id: Any,
    history: Any,
    contexts: Any,
    notify: Notify = warn,
) -> Panel:
    """The last answer is good as it is (CIPHER stores the preference it used again)."""
    try:
        chat = plain(history)
    except InvalidInputError as err:
        return Panel(None, f"⚠️ {_failed(err, notify)}", ok=False)
    ctx = _contexts(contexts)
    answered = [i for i in ctx if 0 <= i < len(chat) and chat[i]["role"] == "assistant"]
    if not answered:
        notify("There is no answer to accept yet; send a message first.")
        return Panel(None, "⚠️ No answer to accept yet.", ok=False)
    i = max(answered)
    text = chat[i]["content"]

    def action(user: str) -> str:
        if not text.strip():
            raise InvalidInputError("The last answer is empty; there is nothing to accept.")
        learned = layer.learn_from_edit(user, ctx[i], text, text)
        if not learned:
            return "Accepted. No learned preference shaped this answer, so nothing was stored."
        return "Accepted: stored again " + ", ".join(
            f"**{escape_md(p.text)}** (#{p.id})" for p in learned
        )

    return _panel_action(layer, user_id, action, notify)


# -- the app ---------------------------------------------------------------------------------------
def build_app(layer: "PreferenceLayer", assistant: "Assistant") -> "gr.Blocks":
    """The app for ``layer`` and ``assistant``; launch it with ``.launch(...)`` (never share)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no telemetry, ever
    import gradio as gr

    def keep(value: Any) -> Any:
        return gr.skip() if value is None else value

    with gr.Blocks(title="persona", analytics_enabled=False) as demo:
        gr.Markdown(
            "## persona\nChat with the assistant. **Edit** an answer to teach it what you "
            "prefer; everything it learned is on the right, where you can change it."
        )
        contexts = gr.State({})
        with gr.Row():
            user = gr.Textbox("demo", label="User id", elem_id="user-id", scale=1)
            mode = gr.Radio(list(MODES), value="Chat", label="Mode", elem_id="mode", scale=2)
        with gr.Row():
            with gr.Column(scale=1):
                chat = gr.Chatbot(
                    label="Assistant",
                    editable="all",
                    buttons=["copy", "copy_all"],  # no "share": it posts to Hugging Face
                    elem_id="chat",
                    height=420,
                )
                msg = gr.Textbox(
                    label="Message",
                    placeholder=PLACEHOLDERS["Chat"],
                    lines=2,
                    elem_id="msg",
                )
                with gr.Row():
                    send_btn = gr.Button("Send", variant="primary", elem_id="send")
                    accept_btn = gr.Button("Accept answer", elem_id="accept")
                status = gr.Markdown("", elem_id="status")
                applied = gr.Markdown("", elem_id="applied")
            with gr.Column(scale=1):
                prefs = gr.Dataframe(
                    headers=COLUMNS,
                    datatype=["number", "str", "str", "str", "str", "str"],
                    interactive=False,
                    wrap=True,
                    column_widths=["7%", "36%", "12%", "13%", "13%", "19%"],
                    label="Preferences (click a row to pick its id)",
                    elem_id="prefs",
                )
                pref_text = gr.Textbox(
                    label="New preference",
                    placeholder="e.g. answer in bullet points",
                    elem_id="pref-text",
                )
                add_btn = gr.Button("Add", elem_id="pref-add")
                with gr.Row(equal_height=True):
                    pref_id = gr.Textbox(  # a Number box would show 0 while empty
                        label="Preference id",
                        placeholder="id",
                        lines=1,
                        max_lines=1,
                        elem_id="pref-id",
                        min_width=90,
                    )
                    toggle_btn = gr.Button("Disable/Enable", elem_id="pref-toggle", min_width=90)
                    delete_btn = gr.Button(
                        "Delete", variant="stop", elem_id="pref-delete", min_width=90
                    )

        def on_user(user_id: str) -> tuple[Any, ...]:
            panel = load_user(layer, user_id)
            return keep(panel.table), panel.status, [], {}, ""

        def on_load(user_id: str) -> tuple[Any, ...]:
            panel = load_user(layer, user_id)
            return keep(panel.table), panel.status

        def on_mode(name: str) -> Any:
            return gr.Textbox(placeholder=PLACEHOLDERS.get(name, ""))

        def on_send(
            user_id: str, name: str, message: str, history: list, ctx: dict
        ) -> tuple[Any, ...]:
            turn = send(layer, assistant, user_id, name, message, history, ctx)
            return turn.history, turn.contexts, turn.message, keep(turn.applied), turn.status

        def on_edit(data: gr.EditData, user_id: str, history: list, ctx: dict) -> tuple[Any, ...]:
            out = edit_message(
                layer, user_id, history, ctx, data.index, data.previous_value, data.value
            )
            return out.history, keep(out.table), out.status

        def on_accept(user_id: str, history: list, ctx: dict) -> tuple[Any, ...]:
            panel = accept_answer(layer, user_id, history, ctx)
            return keep(panel.table), panel.status

        def on_add(user_id: str, text: str) -> tuple[Any, ...]:
            panel = add_preference(layer, user_id, text)
            return keep(panel.table), panel.status, "" if panel.ok else gr.skip()

        def on_toggle(user_id: str, pid: Any) -> tuple[Any, ...]:
            panel = toggle_preference(layer, user_id, pid)
            return keep(panel.table), panel.status

        def on_delete(user_id: str, pid: Any) -> tuple[Any, ...]:
            panel = delete_preference(layer, user_id, pid)
            return keep(panel.table), panel.status

        def on_select(evt: gr.SelectData) -> Any:
            row = evt.row_value or []
            return str(row[0]) if row else gr.skip()

        llm: dict[str, Any] = {
            "concurrency_id": "llm",
            "concurrency_limit": 1,
        }  # one generation at a time
        # Queued in order, so a page's first load never lands after the user's first change.
        ordered: dict[str, Any] = {"concurrency_id": "user", "concurrency_limit": 1}
        demo.load(on_load, user, [prefs, status], **ordered)
        user.change(on_user, user, [prefs, status, chat, contexts, applied], **ordered)
        mode.change(on_mode, mode, msg)
        chat.clear(lambda: ({}, ""), None, [contexts, applied])
        chat_io = ([user, mode, msg, chat, contexts], [chat, contexts, msg, applied, status])
        send_btn.click(on_send, *chat_io, **llm)
        msg.submit(on_send, *chat_io, **llm)
        chat.edit(on_edit, [user, chat, contexts], [chat, prefs, status], **llm)
        accept_btn.click(on_accept, [user, chat, contexts], [prefs, status], **llm)
        add_btn.click(on_add, [user, pref_text], [prefs, status, pref_text])
        pref_text.submit(on_add, [user, pref_text], [prefs, status, pref_text])
        toggle_btn.click(on_toggle, [user, pref_id], [prefs, status])
        delete_btn.click(on_delete, [user, pref_id], [prefs, status])
        prefs.select(on_select, None, pref_id)
    return demo


def serve(
    path: "str | Path | None" = None,
    llm: str = "local",
    embedder: Any = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    block: bool = True,
    follow_adapter: bool = True,
) -> "gr.Blocks":
    """Open the layer at ``path`` with ``llm`` and serve the app on ``host:port`` (no share link).

    ``block=True`` serves until interrupted, then closes the layer. ``block=False`` returns the
    running app at once (``app.close()`` stops it; the layer stays open for the process).
    """
    from persona.assistant import Assistant
    from persona.layer import PreferenceLayer

    layer = PreferenceLayer.open(path, llm=llm, embedder=embedder, follow_adapter=follow_adapter)
    try:
        app = build_app(layer, Assistant(layer))
        app.queue()
        app.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block)
    except BaseException:
        layer.close()
        raise
    if block:
        layer.close()
    return app
