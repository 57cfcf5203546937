"""The Preferences tab's layout and wiring (its handlers are in ``prefs.py``)."""

from collections.abc import Callable
from typing import Any, NamedTuple

from persona.ui.common import example_boxes, quiet
from persona.ui.prefs import (
    COLUMNS,
    LABEL_COLUMNS,
    Panel,
    add_preference,
    delete_label,
    delete_preference,
    edit_scope,
    export_data,
    load_user,
    scope_questions,
    toggle_preference,
    update_preference,
)


class PrefsTab(NamedTuple):
    prefs: Any  # the preferences table
    labels: Any  # the labeled pairs table
    confirm: Any  # the "delete everything" checkbox
    wipe: Any  # the "Delete all my data" button
    export_file: Any


def preferences_tab(
    layer: Any, who: Callable[[Any, Any], Any], user: Any, status: Any, contexts: Any = None
) -> PrefsTab:
    """Build the tab's components (inside ``with gr.Tab(...)``) and wire their events.

    ``who(request, name)`` gives the user id (the signed-in one with auth); ``user`` is the
    app's applied-name state; ``status`` the shared status line; ``contexts`` the chat's
    answer index -> request state (its requests are offered as scope questions).
    """
    import gradio as gr

    def keep(value: Any) -> Any:
        return gr.skip() if value is None else value

    search = gr.Textbox(label="Search", max_lines=1, elem_id="search")
    prefs = gr.Dataframe(
        headers=COLUMNS,
        datatype=["number", "str", "str", "str", "str", "str", "str", "str"],
        interactive=False,
        wrap=True,
        pinned_columns=1,
        column_widths=[
            "60px",
            "260px",
            "90px",
            "200px",
            "90px",
            "120px",
            "150px",
            "260px",
        ],  # fmt: skip
        label="What persona learned (click a row to pick it)",
        elem_id="prefs",
    )
    with gr.Row(equal_height=True):
        pref_id = gr.Textbox(label="Id", max_lines=1, elem_id="pref-id", scale=0,
                             min_width=90)  # fmt: skip
        pref_text = gr.Textbox(
            label="Text (a new preference, or the picked one's new wording)",
            max_lines=6,
            elem_id="pref-text",
            scale=4,
        )
    with gr.Row():
        add_btn = gr.Button("Add as new", elem_id="pref-add")
        save_btn = gr.Button("Save text", elem_id="pref-save")
        toggle_btn = gr.Button("Disable/Enable", elem_id="pref-toggle")
        delete_btn = gr.Button("Delete", variant="stop", elem_id="pref-delete")
    with gr.Accordion("Where a feedback applies (pick its row first)", open=False,
                      elem_id="scope-box"):  # fmt: skip
        ask_btn = gr.Button("Suggest requests to check", elem_id="scope-ask")
        with gr.Row(equal_height=True):
            ticked_in = gr.CheckboxGroup(
                [], label="It should apply to", elem_id="scope-yes", visible=False
            )
            ticked_out = gr.CheckboxGroup(
                [], label="It should not apply to", elem_id="scope-no", visible=False
            )
        scope_in, scope_out = example_boxes(
            "It should also apply to requests like these (one per line)",
            "It should not apply to requests like these (one per line)",
            ("scope-in", "scope-out"),
            lines=3,
        )
        scope_btn = gr.Button("Update where it applies", elem_id="scope-save")
    labels = gr.Dataframe(
        headers=LABEL_COLUMNS,
        interactive=False,
        wrap=True,
        pinned_columns=1,
        label="Your labeled pairs (click a row to pick it)",
        elem_id="labels",
    )
    with gr.Row(equal_height=True):
        label_id = gr.Textbox(label="Pair id", max_lines=1, elem_id="label-id")
        label_del = gr.Button("Delete pair", elem_id="label-delete")
    with gr.Accordion("Your data", open=True, elem_id="data-box"):
        with gr.Row():
            export_btn = gr.Button("Export my data (JSON)", elem_id="export")
            export_file = gr.File(label="Download", elem_id="export-file",
                                  interactive=False, height=90)  # fmt: skip
        with gr.Row(equal_height=True):
            confirm = gr.Checkbox(
                label="Yes, delete everything persona stored about me",
                elem_id="confirm-delete",
            )
            wipe_btn = gr.Button("Delete all my data", variant="stop",
                                 elem_id="delete-all")  # fmt: skip

    def panel_out(panel: Panel) -> tuple[Any, Any]:
        return keep(panel.table), panel.status

    def on_search(uid: str, q: str, request: gr.Request):
        return panel_out(load_user(layer, who(request, uid), quiet, q))

    def on_add(uid: str, text: str, request: gr.Request):
        panel = add_preference(layer, who(request, uid), text)
        return *panel_out(panel), "" if panel.ok else gr.skip()

    def on_save(uid: str, pid: Any, text: str, request: gr.Request):
        return panel_out(update_preference(layer, who(request, uid), pid, text))

    def on_scope(
        uid: str,
        pid: Any,
        add_in: str,
        add_out: str,
        yes: list[str],
        no: list[str],
        request: gr.Request,
    ):
        panel = edit_scope(
            layer, who(request, uid), pid, add_in, add_out, ticked_in=yes, ticked_out=no
        )
        if not panel.ok:
            return *panel_out(panel), *(gr.skip(),) * 4
        hidden = gr.CheckboxGroup(choices=[], value=[], visible=False)
        return *panel_out(panel), "", "", hidden, hidden

    def on_ask(uid: str, pid: Any, ctx: Any, request: gr.Request):
        asked = scope_questions(layer, who(request, uid), pid, contexts=ctx)
        if not asked.ok:
            return asked.status, gr.skip(), gr.skip()
        shown = bool(asked.choices)
        group = gr.CheckboxGroup(choices=asked.choices, value=[], visible=shown)
        return asked.status, group, group

    def on_toggle(uid: str, pid: Any, request: gr.Request):
        return panel_out(toggle_preference(layer, who(request, uid), pid))

    def on_delete(uid: str, pid: Any, request: gr.Request):
        panel = delete_preference(layer, who(request, uid), pid)
        return *panel_out(panel), "" if panel.ok else gr.skip()

    def on_select(uid: str, evt: gr.SelectData, request: gr.Request):
        row = evt.row_value or []
        if not row:
            return gr.skip(), gr.skip()
        full = next((p.text for p in _prefs(who(request, uid)) if p.id == row[0]), row[1])
        return str(row[0]), full

    def _prefs(uid: Any) -> list[Any]:
        try:
            return layer.preferences(uid)
        except Exception:
            return []

    def on_label_select(evt: gr.SelectData):
        row = evt.row_value or []
        return str(row[0]) if row else gr.skip()

    def on_label_delete(uid: str, lid: Any, request: gr.Request):
        out = delete_label(layer, who(request, uid), lid)
        return keep(out.table), out.status, "" if out.ok else gr.skip()

    def on_export(uid: str, request: gr.Request):
        out = export_data(layer, who(request, uid))
        return keep(out.path), out.status

    search.submit(on_search, [user, search], [prefs, status], api_name="search")
    search.change(on_search, [user, search], [prefs, status], show_progress="hidden")
    add_btn.click(on_add, [user, pref_text], [prefs, status, pref_text], api_name="add_preference")
    save_btn.click(on_save, [user, pref_id, pref_text], [prefs, status])
    scope_btn.click(
        on_scope,
        [user, pref_id, scope_in, scope_out, ticked_in, ticked_out],
        [prefs, status, scope_in, scope_out, ticked_in, ticked_out],
        api_name="edit_scope",
    )
    ask_btn.click(
        on_ask,
        [user, pref_id, contexts if contexts is not None else gr.State({})],
        [status, ticked_in, ticked_out],
        api_name="scope_questions",
    )
    toggle_btn.click(on_toggle, [user, pref_id], [prefs, status], api_name="toggle_preference")
    delete_btn.click(
        on_delete, [user, pref_id], [prefs, status, pref_id], api_name="delete_preference"
    )
    prefs.select(on_select, [user], [pref_id, pref_text])
    labels.select(on_label_select, None, label_id)
    label_del.click(on_label_delete, [user, label_id], [labels, status, label_id])
    export_btn.click(on_export, [user], [export_file, status], api_name="export")
    return PrefsTab(prefs, labels, confirm, wipe_btn, export_file)
