"""The Preferences tab: everything persona learned about the signed-in person, in words.

Each handler is a plain function of the layer (testable without a browser) that returns the
refreshed table and a status line; it never raises (errors become a plain-language status).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from persona.config import MAX_PREFERENCE_CHARS, safe_dir_name
from persona.errors import InvalidInputError, NotFoundError, UnknownUserError
from persona.types import Preference, ScopeQuestion
from persona.ui.common import (
    Notify,
    contexts_of,
    escape_md,
    failed,
    lines_in,
    normalise_user,
    pref_id,
    quiet,
    text_in,
)
from persona.ui.common import warn as _warn

if TYPE_CHECKING:
    import pandas as pd

    from persona.layer import PreferenceLayer

COLUMNS = ["id", "text", "source", "applies where", "enabled", "flagged", "created", "learned from"]
LABEL_COLUMNS = ["id", "request", "preferred", "not preferred", "created"]
SHOWN = 200  # characters of a long text shown in a table cell (the whole text: click the row)
FLAGGED = "yes: reads like an order to the assistant, so it is never used (delete or reword it)"


def short(text: str | None, limit: int = SHOWN) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else ""


def applies(p: Preference) -> str:
    """Where the preference applies, in words: its learned scope, its context, or everywhere."""
    if p.scope:
        return f"in scope: {short(p.scope, 120)}"
    if p.context:
        return f"requests like: {short(p.context, 120)}"
    return "everywhere"


def _events(data: dict[str, Any]) -> dict[str, str]:
    """``"edit:3"`` -> what that edit, feedback or label was, from the user's export."""
    out: dict[str, str] = {}
    for e in data.get("edits", ()):
        if e["output"] == e["edited"]:
            out[f"edit:{e['id']}"] = f"answer #{e['id']} you accepted: “{short(e['output'], 50)}”"
        else:
            out[f"edit:{e['id']}"] = (
                f"edit #{e['id']}: “{short(e['output'], 50)}” → “{short(e['edited'], 50)}”"
            )
    for f in data.get("feedback", ()):
        out[f"feedback:{f['id']}"] = f"feedback #{f['id']}: “{short(f['text'], 80)}”"
    for lab in data.get("labels", ()):
        out[f"label:{lab['id']}"] = f"labeled pair #{lab['id']}: “{short(lab['prompt'], 60)}”"
    return out


def provenance(p: Preference, events: dict[str, str]) -> str:
    words = {"manual:edit": "changed by you"}
    seen = [
        events.get(ref)
        or words.get(ref)
        or (f"preference #{ref[11:]}" if ref.startswith("preference:") else ref)
        for ref in p.provenance
    ]
    if not seen and p.source == "manual":
        return "added by you"
    return "; ".join(dict.fromkeys(seen))


def _user_data(layer: PreferenceLayer, user_id: str) -> dict[str, Any]:
    try:
        return layer.export_user(user_id)
    except UnknownUserError:
        return {}


def preference_table(layer: PreferenceLayer, user_id: str, search: Any = None) -> pd.DataFrame:
    """Everything stored for the user (rows matching ``search`` when given); empty, with
    headers, for a user with no data yet."""
    import pandas as pd

    try:
        prefs = layer.preferences(user_id)
    except UnknownUserError:
        return pd.DataFrame([], columns=COLUMNS)
    events = _events(_user_data(layer, user_id))
    rows = [
        [
            p.id,
            short(p.text),
            p.source,
            applies(p),
            "yes" if p.enabled else "no",
            FLAGGED if p.flagged else "no",
            when(p.created_at),
            provenance(p, events),
        ]
        for p in prefs
    ]
    words = search.lower().split() if isinstance(search, str) else []
    if words:
        rows = [r for r in rows if all(w in " ".join(map(str, r)).lower() for w in words)]
    return pd.DataFrame(rows, columns=COLUMNS)


def label_table(layer: PreferenceLayer, user_id: str) -> pd.DataFrame:
    import pandas as pd

    try:
        labels = layer.labels(user_id)
    except UnknownUserError:
        labels = []
    rows = [
        [lab.id, short(lab.prompt, 120), short(lab.chosen, 120), short(lab.rejected, 120),
         when(lab.created_at)]
        for lab in labels
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=LABEL_COLUMNS)


class Panel(NamedTuple):
    table: pd.DataFrame | None  # None: leave the table as it is
    status: str
    ok: bool = True


def load_user(
    layer: PreferenceLayer, user_id: Any, notify: Notify | None = None, search: Any = None
) -> Panel:
    """The user's table (on page load, on sign-in, when the name changes, when searching)."""
    try:
        user = normalise_user(user_id)
        table = preference_table(layer, user, search)
    except Exception as err:
        return Panel(None, f"⚠️ {failed(err, notify or quiet)}", ok=False)
    who = escape_md(user)
    if isinstance(search, str) and search.strip():
        return Panel(table, f"{len(table)} preference(s) of **{who}** match the search.")
    if table.empty:
        return Panel(table, f"No preferences stored for **{who}** yet.")
    return Panel(table, f"{len(table)} preference(s) stored for **{who}**.")


def _action(
    layer: PreferenceLayer, user_id: Any, action: Callable[[str], str], notify: Notify
) -> Panel:
    try:
        user = normalise_user(user_id)
        status = action(user)
        return Panel(preference_table(layer, user), status)
    except Exception as err:
        return Panel(None, f"⚠️ {failed(err, notify)}", ok=False)


def _existing(layer: PreferenceLayer, user: str, value: Any) -> Preference:
    pid = pref_id(value)
    try:
        found = next((p for p in layer.preferences(user) if p.id == pid), None)
    except UnknownUserError:
        found = None
    if found is None:
        raise NotFoundError(f"There is no preference #{pid} for you; pick a row of the table.")
    return found


def add_preference(
    layer: PreferenceLayer, user_id: Any, text: Any, notify: Notify = _warn
) -> Panel:
    def action(user: str) -> str:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("The new preference is empty; type what you prefer first.")
        pref = layer.add_preference(user, text_in(text, "preference", limit=MAX_PREFERENCE_CHARS))
        return f"Added preference #{pref.id}: {escape_md(pref.text)}"

    return _action(layer, user_id, action, notify)


def update_preference(
    layer: PreferenceLayer, user_id: Any, pid: Any, text: Any, notify: Notify = _warn
) -> Panel:
    """Replace a preference's text (the row picked in the table)."""

    def action(user: str) -> str:
        pref = _existing(layer, user, pid)
        new = text_in(text, "preference text", limit=MAX_PREFERENCE_CHARS)
        updated = layer.update_preference(user, pref.id, text=new)
        note = " It reads like an order to the assistant, so it is flagged and not used." * (
            updated.flagged
        )
        return f"Preference #{pref.id} now reads: {escape_md(updated.text)}.{note}"

    return _action(layer, user_id, action, notify)


def _scoped(layer: PreferenceLayer, user: str, pid: Any) -> Preference:
    """The picked row, which must have been learned from feedback (only those have a scope)."""
    pref = _existing(layer, user, pid)
    if not any(ref.startswith("feedback:") for ref in pref.provenance):
        raise InvalidInputError(
            f"Preference #{pref.id} was not learned from your feedback, so it has no scope "
            "to change. Pick a row whose “learned from” is a feedback."
        )
    return pref


def _ticked(value: Any) -> list[str]:
    """The requests ticked in a checkbox group (anything else: none)."""
    if not isinstance(value, list | tuple):
        return []
    return [v for v in value if isinstance(v, str) and v.strip()]


def edit_scope(
    layer: PreferenceLayer,
    user_id: Any,
    pid: Any,
    add_in: Any,
    add_out: Any,
    notify: Notify = _warn,
    *,
    ticked_in: Any = None,
    ticked_out: Any = None,
) -> Panel:
    """Widen or narrow where a feedback applies (the row picked in the table): requests where
    it should apply and where it should not, typed one per line or ticked among the
    suggested ones (:func:`scope_questions`). No LLM call."""

    def action(user: str) -> str:
        pref = _scoped(layer, user, pid)
        yes, no = _ticked(ticked_in), _ticked(ticked_out)
        both = [t for t in yes if t in set(no)]
        if both:
            raise InvalidInputError(
                f"You ticked “{escape_md(short(both[0], 80))}” both ways; untick one of them."
            )
        ins = [*(lines_in(add_in, "example request") or []), *yes]
        outs = [*(lines_in(add_out, "example request") or []), *no]
        if not ins and not outs:
            raise InvalidInputError(
                "Type at least one request, one per line, or tick a suggested one, where the "
                "feedback should or should not apply."
            )
        updated = layer.edit_scope(user, pref.id, add_in_scope=ins, add_out_of_scope=outs)
        return f"Preference #{pref.id} now applies {escape_md(applies(updated))}."

    return _action(layer, user_id, action, notify)


class Questions(NamedTuple):
    choices: list[tuple[str, str]]  # (label shown, request) for both checkbox groups
    status: str
    ok: bool = True


#: Requests suggested at a time: enough to move a scope, few enough to answer at a glance.
QUESTIONS = 4


#: The latest requests of this chat offered as questions (older ones are out of mind).
RECENT = 32


def recent_requests(contexts: Any) -> list[str]:
    """This chat's requests (the app's answer index -> request state), latest last, each
    once; the layer keeps no log of requests, so the app offers them itself."""
    by_turn = sorted(contexts_of(contexts).items())
    texts = [t.strip() for _, t in by_turn if t.strip()]
    return list(dict.fromkeys(reversed(texts)))[:RECENT][::-1]


def scope_questions(
    layer: PreferenceLayer, user_id: Any, pid: Any, notify: Notify = _warn, *, contexts: Any = None
) -> Questions:
    """Requests where persona is least sure whether the picked feedback applies: this chat's
    (``contexts``: the app's answer index -> request state), the user's stored ones (edited,
    labeled, given with other feedback) and everyday requests near it."""
    try:
        user = normalise_user(user_id)
        pref = _scoped(layer, user, pid)
        asked = layer.scope_questions(user, pref.id, k=QUESTIONS, recent=recent_requests(contexts))
    except Exception as err:
        return Questions([], f"⚠️ {failed(err, notify)}", ok=False)
    if not asked:
        return Questions([], "Nothing to ask: persona has no requests it is unsure about here.")

    def label(q: ScopeQuestion) -> str:
        today = "applies" if q.applies else "does not apply"
        mine = ", you asked this in the chat" if q.source == "your recent requests" else ""
        return f"{short(q.request, 160)} (today: {today}{mine})"

    return Questions(
        [(label(q), q.request) for q in asked],
        f"Persona is least sure about these requests for preference #{pref.id}. Tick where it "
        "should apply and where it should not, then press “Update where it applies”.",
    )


def toggle_preference(
    layer: PreferenceLayer, user_id: Any, pid: Any, notify: Notify = _warn
) -> Panel:
    def action(user: str) -> str:
        pref = _existing(layer, user, pid)
        now = layer.update_preference(user, pref.id, enabled=not pref.enabled)
        return f"Preference #{pref.id} {'enabled' if now.enabled else 'disabled'}."

    return _action(layer, user_id, action, notify)


def delete_preference(
    layer: PreferenceLayer, user_id: Any, pid: Any, notify: Notify = _warn
) -> Panel:
    def action(user: str) -> str:
        pref = _existing(layer, user, pid)
        layer.delete_preference(user, pref.id)
        return f"Deleted preference #{pref.id}."

    return _action(layer, user_id, action, notify)


class Labels(NamedTuple):
    table: pd.DataFrame | None
    status: str
    ok: bool = True


def load_labels(layer: PreferenceLayer, user_id: Any, notify: Notify = quiet) -> Labels:
    try:
        user = normalise_user(user_id)
        return Labels(label_table(layer, user), "")
    except Exception as err:
        return Labels(None, f"⚠️ {failed(err, notify)}", ok=False)


def delete_label(layer: PreferenceLayer, user_id: Any, lid: Any, notify: Notify = _warn) -> Labels:
    try:
        user = normalise_user(user_id)
        number = pref_id(lid, "labeled pair")
        try:
            known = any(lab.id == number for lab in layer.labels(user))
        except UnknownUserError:
            known = False
        if not known:
            raise NotFoundError(f"There is no labeled pair #{number} for you; pick a row.")
        layer.delete_label(user, number)
        return Labels(label_table(layer, user), f"Deleted labeled pair #{number}.")
    except Exception as err:
        return Labels(None, f"⚠️ {failed(err, notify)}", ok=False)


class Exported(NamedTuple):
    path: str | None  # the JSON file to download; None when nothing was exported
    status: str
    ok: bool = True


def export_data(layer: PreferenceLayer, user_id: Any, notify: Notify = _warn) -> Exported:
    """Everything stored about the person, as a JSON file to download."""
    try:
        user = normalise_user(user_id)
        try:
            data = layer.export_user(user)
        except UnknownUserError:
            raise InvalidInputError(
                "Nothing is stored about you yet, so there is nothing to export."
            ) from None
        folder = Path(tempfile.mkdtemp(prefix="persona-export-"))
        path = folder / f"persona-{safe_dir_name(user)}.json"
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        n = len(data.get("preferences", ()))
        return Exported(str(path), f"Exported your data ({n} preference(s)): download it below.")
    except Exception as err:
        return Exported(None, f"⚠️ {failed(err, notify)}", ok=False)


def delete_all(
    layer: PreferenceLayer, user_id: Any, confirmed: Any, notify: Notify = _warn
) -> Panel:
    """Delete everything stored about the person, once they ticked the confirmation."""

    def action(user: str) -> str:
        if confirmed is not True:
            raise InvalidInputError(
                "Tick “Yes, delete everything persona stored about me” first; nothing was deleted."
            )
        if user not in layer.users():
            return "Nothing was stored about you; there is nothing to delete."
        layer.delete_user(user)
        return (
            "Deleted everything persona stored about you: preferences, edits, feedback, "
            "labels and adapters."
        )

    return _action(layer, user_id, action, notify)
