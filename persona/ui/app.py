"""The Gradio app: chat with the assistant and teach it, then see and change what it learned.

Tabs: **Chat** (streamed answers, each with a collapsed "why"; edit or accept an answer, give
feedback, pick between two candidates), **Preferences** (everything learned, editable; labeled
pairs; export or delete all your data) and **Adapter** (the person's adapter: status, training
curves, "Train now", and the prompt/adapter/both switch the chat reads).

The handlers live in ``chat.py``, ``pairs.py`` and ``prefs.py`` as plain functions of the
layer; :func:`build_app` only wires them to components. Learning runs in its own queue so the
chat never waits for it. With ``auth`` the user id is the signed-in name (``gr.Request``);
without, a local name box, applied on Enter or when it loses focus.
"""

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from persona.ui.chat import (
    HISTORY_TURNS,
    MODES,
    Accepted,
    Edited,
    Learned,
    Turn,
    accept_answer,
    edit_message,
    give_feedback,
    run_job,
    send,
    stream_send,
)
from persona.ui.common import (
    as_text,
    contexts_of,
    escape_md,
    example_boxes,
    message_index,
    plain,
    turns,
)
from persona.ui.common import warn as warn
from persona.ui.pairs import Candidates, Picked, candidates, pick
from persona.ui.prefs import (
    COLUMNS,
    LABEL_COLUMNS,
    QUESTIONS,
    Panel,
    Questions,
    add_preference,
    delete_all,
    delete_label,
    delete_preference,
    edit_scope,
    export_data,
    load_labels,
    load_user,
    preference_table,
    scope_questions,
    toggle_preference,
    update_preference,
)
from persona.ui.users import auth_file, checker, last_user, read_auth, remember_user, signed_in

if TYPE_CHECKING:
    import gradio as gr

    from persona.assistant import Assistant
    from persona.layer import PreferenceLayer

__all__ = [
    "COLUMNS", "HISTORY_TURNS", "LABEL_COLUMNS", "MODES", "QUESTIONS", "Accepted", "Candidates",
    "Edited", "Learned", "Panel", "Picked", "Questions", "Turn", "accept_answer",
    "add_preference", "as_text", "CSS", "build_app", "candidates", "delete_all", "delete_label",
    "delete_preference",
    "edit_message", "edit_scope", "export_data", "give_feedback", "load_labels", "load_user",
    "pick", "plain", "preference_table", "run_job", "scope_questions", "send", "serve",
    "stream_send", "toggle_preference", "turns", "update_preference",
]  # fmt: skip

PLACEHOLDERS = {
    "Chat": "Ask the assistant anything (Enter sends)",
    "Summarize": "Paste a document to summarize (Enter sends)",
    "Email": "Write the notes the email should say (Enter sends)",
}
CSS = """
#prefs th, #labels th, #prefs th *, #labels th * {
  white-space: nowrap !important; word-break: keep-all !important; overflow-wrap: normal !important;
  hyphens: none !important;
}
#prefs td, #labels td { overflow-wrap: anywhere; }
#title h2 { white-space: nowrap; }
#chat textarea.edit-textarea {
  width: 100% !important; min-width: min(70vw, 760px); min-height: 14em !important;
}
#chat .message-row:has(textarea.edit-textarea) .message { width: 100%; max-width: 100%; }
"""


def build_app(
    layer: "PreferenceLayer",
    assistant: "Assistant",
    *,
    auth: bool = False,
    warmup: Any = None,
    adapter_config: dict[str, Any] | None = None,
    cipher_aggregate: str = "sync",
) -> "gr.Blocks":
    """The app for ``layer`` and ``assistant``; launch it with ``.launch(css=CSS, ...)``
    (never share).

    ``auth=True``: launch with Gradio's ``auth=`` (see :func:`serve`); every handler then takes
    the user id from the signed-in request. ``warmup``: a started
    :class:`~persona.ui.warmup.Warmup` (one is started here when None). ``adapter_config``:
    options for :meth:`~persona.PreferenceLayer.train_adapter` ("Train now"; None: its defaults).
    """
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no telemetry, ever
    import gradio as gr

    from persona.ui.adapter_tab import adapter_tab
    from persona.ui.prefs_tab import preferences_tab
    from persona.ui.warmup import Warmup

    warm = warmup or Warmup(layer, assistant).start()

    def keep(value: Any) -> Any:
        return gr.skip() if value is None else value

    def who(request: Any, name: Any) -> Any:
        """The user id: the signed-in name with auth, else the applied local name."""
        return (signed_in(request) or "") if auth else name

    with gr.Blocks(title="persona", analytics_enabled=False) as demo:
        user = gr.State("")  # the applied local name (unused with auth)
        contexts, accepted, job = gr.State({}), gr.State([]), gr.State(None)
        request_of_pair = gr.State("")
        saved = gr.BrowserState({}, storage_key="persona-chat", secret=secrets.token_hex(16))
        with gr.Row(equal_height=True):
            gr.Markdown("## persona", elem_id="title")
            name: Any
            if auth:
                name = gr.Markdown("", elem_id="signed-in")
                gr.Button("Log out", link="/logout", size="sm", scale=0, elem_id="logout")
            else:
                name = gr.Textbox(
                    label="Your name (press Enter to switch)",
                    max_lines=1,
                    elem_id="user-id",
                    scale=1,
                )
            model_status = gr.Markdown("", elem_id="model-status")
        status = gr.Markdown("", elem_id="status")
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Chat", id="chat-tab", elem_id="chat-tab"):
                mode = gr.Radio(list(MODES), value="Chat", label="Mode", elem_id="mode")
                chat = gr.Chatbot(
                    label="Assistant — edit any answer to teach persona",
                    editable="all",
                    group_consecutive_messages=False,  # one Edit button per message
                    buttons=["copy", "copy_all"],  # no "share": it posts to Hugging Face
                    elem_id="chat",
                    height=520,
                )
                msg = gr.Textbox(
                    label="Message",
                    placeholder=PLACEHOLDERS["Chat"],
                    lines=1,  # Enter sends; pasted text grows the box
                    max_lines=12,
                    elem_id="msg",
                )
                with gr.Row():
                    send_btn = gr.Button("Send", variant="primary", elem_id="send")
                    pair_btn = gr.Button("Two candidates", elem_id="two")
                    accept_btn = gr.Button("Accept answer", elem_id="accept")
                with gr.Accordion("Two candidates: pick the better one", open=False,
                                  elem_id="pairs") as pairs_box:  # fmt: skip
                    with gr.Row():
                        cand_a = gr.Textbox(label="Candidate A", lines=6, elem_id="cand-a")
                        cand_b = gr.Textbox(label="Candidate B", lines=6, elem_id="cand-b")
                    with gr.Row():
                        pick_a = gr.Button("A is better", elem_id="pick-a")
                        pick_b = gr.Button("B is better", elem_id="pick-b")
                with gr.Accordion("Feedback in your words", open=False, elem_id="feedback-box"):
                    feedback = gr.Textbox(
                        label="Feedback",
                        placeholder="e.g. no emojis in emails to my boss",
                        elem_id="feedback",
                    )
                    in_scope, out_scope = example_boxes(
                        "Where it applies (optional, one example request a line)",
                        "Where it must not apply (optional, one a line)",
                        ("in-scope", "out-scope"),
                        lines=2,
                    )
                    feedback_btn = gr.Button("Teach this feedback", elem_id="feedback-send")
            with gr.Tab("Preferences", id="prefs-tab", elem_id="prefs-tab"):
                tab = preferences_tab(layer, who, user, status, contexts)
                prefs, labels = tab.prefs, tab.labels
            with gr.Tab("Adapter", id="adapter-tab", elem_id="adapter-tab") as adapter_page:
                use = adapter_tab(layer, who, user, adapter_page, adapter_config)

        # -- who is here -----------------------------------------------------------------------
        def tables(uid: str) -> tuple[Any, Any, str]:
            panel = load_user(layer, uid)
            return keep(panel.table), keep(load_labels(layer, uid).table), panel.status

        def restored(uid: str, store: Any) -> tuple[Any, Any]:
            """The chat saved in this browser, when it belongs to ``uid``."""
            if isinstance(store, dict) and store.get("user") == uid:
                try:
                    return plain(store.get("chat")), contexts_of(store.get("contexts"))
                except Exception:
                    pass
            return [], {}

        def on_load(store: Any, request: gr.Request) -> tuple[Any, ...]:
            uid = signed_in(request) or "" if auth else last_user(layer.home)
            shown = f"Signed in as **{escape_md(uid)}**" if auth else uid
            history, ctx = restored(uid, store)
            return (uid, shown, *tables(uid), history, ctx, [])

        def on_name(typed: Any, current: str, request: gr.Request) -> tuple[Any, ...]:
            panel = load_user(layer, typed)
            if not panel.ok:
                return (gr.skip(), gr.skip(), gr.skip(), gr.skip(), panel.status,
                        gr.skip(), gr.skip(), gr.skip())  # fmt: skip
            uid = " ".join(str(typed).split())
            if uid == current:
                return (gr.skip(),) * 8
            remember_user(layer.home, uid)
            return (uid, uid, *tables(uid), [], {}, [])

        def on_warm() -> Any:
            import time

            while not warm.done.is_set():
                yield warm.status()
                time.sleep(0.5)
            yield warm.status()

        on_load_out = [user, name, prefs, labels, status, chat, contexts, accepted]
        demo.load(on_load, saved, on_load_out, concurrency_id="user", concurrency_limit=1)
        demo.load(on_warm, None, model_status, show_progress="hidden")
        if not auth:
            name.submit(on_name, [name, user], on_load_out, concurrency_id="user")
            name.blur(on_name, [name, user], on_load_out, concurrency_id="user")

        # -- chat ------------------------------------------------------------------------------
        def on_send(uid: str, m: str, text: str, history: list, ctx: dict, how: str,
                    request: gr.Request):  # fmt: skip
            for turn in stream_send(layer, assistant, who(request, uid), m, text, history, ctx,
                                    adapter=how):  # fmt: skip
                yield turn.history, turn.contexts, turn.message, turn.status

        def on_saved(uid: str, history: list, ctx: dict, request: gr.Request) -> dict:
            ctx = {str(k): v for k, v in contexts_of(ctx).items()}  # JSON keys are strings
            return {"user": who(request, uid), "chat": history, "contexts": ctx}

        def on_edit(data: gr.EditData, uid: str, history: list, ctx: dict, done: list,
                    request: gr.Request):  # fmt: skip
            out = edit_message(layer, who(request, uid), history, ctx, data.index,
                               data.previous_value, data.value, learn=False)  # fmt: skip
            if out.job:  # an edited answer has taught persona: accepting it adds nothing
                done = [*done, message_index(data.index)]
            return out.history, out.status, out.job, done

        def on_accept(uid: str, history: list, ctx: dict, done: list, request: gr.Request):
            out = accept_answer(layer, who(request, uid), history, ctx, warn, done, learn=False)
            return out.status, out.accepted, out.job

        def on_feedback(uid: str, text: str, ins: str, outs: str, request: gr.Request):
            out = give_feedback(layer, who(request, uid), text, ins, outs, learn=False)
            clear = ("",) * 3 if out.ok else (gr.skip(),) * 3
            return out.status, out.job, *clear

        def on_two(uid: str, m: str, text: str, history: list, how: str, request: gr.Request):
            out = candidates(layer, assistant, who(request, uid), m, text, history, adapter=how)
            if not out.ok:
                return gr.skip(), gr.skip(), gr.skip(), out.status, gr.skip()
            return out.a, out.b, out.request, out.status, gr.Accordion(open=True)

        def on_pick(choice: str):
            def handler(uid: str, req: str, text: str, a: str, b: str, history: list, ctx: dict,
                        how: str, request: gr.Request):  # fmt: skip
                out = pick(layer, who(request, uid), choice, req, text, a, b, history, ctx,
                           learn=False, adapter=how)  # fmt: skip
                if not out.ok:
                    return (gr.skip(),) * 3 + (out.status, gr.skip(), gr.skip(), gr.skip())
                return (
                    out.history,
                    out.contexts,
                    "",
                    out.status,
                    out.job,
                    "",
                    gr.Accordion(open=False),
                )

            return handler

        def on_job(uid: str, todo: Any, request: gr.Request) -> tuple[Any, ...]:
            out = run_job(layer, todo)
            if not out.status:
                return gr.skip(), gr.skip(), gr.skip(), None
            mine = isinstance(todo, dict) and todo.get("user") == who(request, uid)
            table = keep(out.table) if mine else gr.skip()
            lab = keep(load_labels(layer, todo["user"]).table) if mine else gr.skip()
            return table, lab, out.status, None

        learn: dict[str, Any] = {"concurrency_id": "learn", "concurrency_limit": 1,
                                 "show_progress": "hidden"}  # fmt: skip
        llm: dict[str, Any] = {"concurrency_id": "llm", "concurrency_limit": 1}

        def then_learn(event: Any) -> None:
            event.then(on_job, [user, job], [prefs, labels, status, job], **learn)

        def then_save(event: Any) -> Any:
            return event.then(on_saved, [user, chat, contexts], saved, show_progress="hidden")

        chat_in = [user, mode, msg, chat, contexts, use]  # ``use``: the Adapter tab's switch
        chat_out = [chat, contexts, msg, status]
        for trigger, api in ((send_btn.click, "chat"), (msg.submit, None)):
            then_save(trigger(on_send, chat_in, chat_out, show_progress="minimal", api_name=api,
                              **llm))  # fmt: skip
        then_learn(
            then_save(
                chat.edit(on_edit, [user, chat, contexts, accepted], [chat, status, job, accepted])
            )
        )
        then_learn(accept_btn.click(on_accept, [user, chat, contexts, accepted],
                                    [status, accepted, job]))  # fmt: skip
        then_learn(feedback_btn.click(on_feedback, [user, feedback, in_scope, out_scope],
                                      [status, job, feedback, in_scope, out_scope]))  # fmt: skip
        pair_btn.click(on_two, [user, mode, msg, chat, use],
                       [cand_a, cand_b, request_of_pair, status, pairs_box], **llm)  # fmt: skip
        for button, choice in ((pick_a, "A"), (pick_b, "B")):
            then_learn(then_save(button.click(
                on_pick(choice), [user, request_of_pair, msg, cand_a, cand_b, chat, contexts, use],
                [chat, contexts, msg, status, job, request_of_pair, pairs_box])))  # fmt: skip
        mode.change(lambda m: gr.Textbox(placeholder=PLACEHOLDERS.get(m, "")), mode, msg)
        then_save(chat.clear(lambda: ({}, [], ""), None, [contexts, accepted, status]))

        # -- all my data -----------------------------------------------------------------------
        def on_wipe(uid: str, yes: bool, request: gr.Request):
            panel = delete_all(layer, who(request, uid), yes)
            if not panel.ok:
                return (gr.skip(),) * 2 + (panel.status,) + (gr.skip(),) * 5
            empty = load_labels(layer, who(request, uid)).table
            return keep(panel.table), keep(empty), panel.status, False, [], {}, [], None

        wiped = [prefs, labels, status, tab.confirm, chat, contexts, accepted, tab.export_file]
        then_save(tab.wipe.click(on_wipe, [user, tab.confirm], wiped))
    return demo


def serve(
    path: "str | Path | None" = None,
    llm: str = "local",
    embedder: Any = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    block: bool = True,
    follow_adapter: bool | str = True,
    guidance_scale: float | None = None,
    auth: "str | Path | None" = None,
    rerank: int | None = None,
    adapter_config: dict[str, Any] | None = None,
    cipher_aggregate: str = "sync",
) -> "gr.Blocks":
    """Open the layer at ``path`` with ``llm`` and serve the app on ``host:port`` (no share link).

    ``auth``: an auth file (``name:password`` lines; default ``$PERSONA_AUTH``) turns on
    Gradio's login. ``adapter_config``: options for the Adapter tab's "Train now" (the fields
    of :class:`~persona.adapters.train.AdapterConfig`). ``block=True`` serves until
    interrupted, then closes the layer.
    ``block=False`` returns the running app at once (``app.close()`` stops it).
    ``cipher_aggregate``: how CIPHER's retrieved preferences become one description; the app
    has the LLM aggregate them before answering ("sync", the paper's CIPHER), since it waits
    on the LLM for the answer anyway and that is what cost fewest edits in the edit benchmark
    (the library's default, "vote", keeps ``condition()`` free of LLM calls).
    """
    from persona.assistant import Assistant
    from persona.layer import PreferenceLayer

    file = auth_file(auth)
    users = read_auth(file) if file is not None else None
    layer = PreferenceLayer.open(
        path,
        llm=llm,
        embedder=embedder,
        follow_adapter=follow_adapter,
        guidance_scale=guidance_scale,
        rerank=rerank,
        cipher_aggregate=cipher_aggregate,
    )
    try:
        app = build_app(
            layer, Assistant(layer), auth=users is not None, adapter_config=adapter_config
        )
        app.queue()
        app.launch(
            server_name=host,
            server_port=port,
            share=False,
            prevent_thread_lock=not block,
            css=CSS,
            auth=checker(users) if users else None,
            auth_message="Sign in with the name and password you were given." if users else None,
        )
    except BaseException:
        layer.close()
        raise
    if block:
        layer.close()
    return app
