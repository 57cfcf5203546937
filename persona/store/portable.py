"""Export a user to plain JSON and import it back (all or nothing).

An export is data from outside: :func:`import_user` checks every field of every row before it
embeds or writes anything, and it never takes a security-relevant value from the file
(whether a preference is flagged as an injection, where an adapter's files are).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from persona.config import (
    MAX_PREFERENCE_CHARS,
    MAX_TEXT_CHARS,
    check_dataset,
    check_optional_text,
    check_pref_id,
    check_prompts,
    check_text,
    check_user_id,
    safe_dir_name,
)
from persona.errors import InvalidInputError
from persona.store.base import Store
from persona.store.embed import Embedder
from persona.types import SOURCES

FORMAT = "persona.user/1"

#: Most rows one list of an import (preferences, edits, feedback, labels) may hold.
MAX_IMPORT_ROWS = 10_000
#: Most characters of text an import may carry in all (about 20 MB of JSON text).
MAX_IMPORT_CHARS = 20_000_000
#: Deepest nesting accepted anywhere in an import (an export is 4 levels deep).
MAX_IMPORT_DEPTH = 16
#: Longest adapter name (characters).
MAX_ADAPTER_NAME_CHARS = 200

#: The top-level keys :func:`export_user` writes; any other key is refused.
TOP_KEYS = frozenset(
    {"format", "user_id", "exported_at", "preferences", "edits", "feedback", "labels", "adapter"}
)
_ADAPTER_KEYS = frozenset({"name", "path", "meta", "created_at"})

#: A provenance reference: an event or preference id, or the mark of a manual edit.
_REF = re.compile(r"(edit|feedback|label|preference):([1-9][0-9]{0,18})|manual:edit")

_FIX = "fix the file or export the user again"


def export_user(store: Store, user_id: str) -> dict[str, Any]:
    prefs = []
    for p in store.list_preferences(user_id):
        row = asdict(p)
        row["provenance"] = list(p.provenance)
        prefs.append(row)
    return {
        "format": FORMAT,
        "user_id": user_id,
        "exported_at": time.time(),
        "preferences": prefs,
        "edits": [asdict(e) for e in store.list_edits(user_id)],
        "feedback": [
            {**asdict(f), "in_scope": list(f.in_scope), "out_of_scope": list(f.out_of_scope)}
            for f in store.list_feedback(user_id)
        ],
        "labels": [asdict(label) for label in store.list_labels(user_id)],
        "adapter": store.get_adapter(user_id),
    }


# -- validation ----------------------------------------------------------------------------------
def _bad(where: str, problem: str, fix: str = _FIX) -> InvalidInputError:
    return InvalidInputError(f"import: {where} {problem}; {fix}.")


def _kind(value: object) -> str:
    return f"{type(value).__name__} {value!r:.60}"


def _timestamp(row: dict[str, Any], key: str, where: str) -> None:
    if key not in row:
        return
    value = row[key]
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise _bad(
            f"{where}.{key}",
            f"must be a time in seconds since 1970 (a number), got {_kind(value)}",
            f"write a number such as {time.time():.0f}, or drop the field",
        )


def _text(value: object, where: str, *, limit: int = MAX_TEXT_CHARS) -> str:
    try:
        return check_text(value, where, limit=limit)
    except InvalidInputError as exc:
        raise InvalidInputError(f"import: {exc} ({_FIX})") from None


def _optional_text(value: object, where: str, *, limit: int = MAX_TEXT_CHARS) -> str | None:
    try:
        return check_optional_text(value, where, limit=limit)
    except InvalidInputError as exc:
        raise InvalidInputError(f"import: {exc} ({where} may also be null; {_FIX})") from None


def _bool(row: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = row.get(key, default)
    if not isinstance(value, bool):
        raise _bad(
            f"{where}.{key}",
            f"must be true or false, got {_kind(value)}",
            "write a JSON boolean (true or false, without quotes)",
        )
    return value


@dataclass(frozen=True)
class _Spec:
    """One list of an export: its required and optional fields."""

    key: str
    required: tuple[str, ...]
    optional: tuple[str, ...]


_PREFS = _Spec(
    "preferences",
    ("id", "text", "source"),
    ("user_id", "enabled", "scope", "provenance", "context", "flagged", "created_at", "updated_at"),
)
_EDITS = _Spec("edits", ("id", "context", "output", "edited"), ("user_id", "created_at"))
_FEEDBACK = _Spec(
    "feedback", ("id", "text"), ("user_id", "in_scope", "out_of_scope", "created_at", "dataset")
)
_LABELS = _Spec("labels", ("id", "prompt", "chosen", "rejected"), ("user_id", "created_at"))


def _rows(data: dict[str, Any], spec: _Spec, user_id: str) -> list[dict[str, Any]]:
    """The list ``spec.key`` with each row's shape, id, owner and timestamps checked."""
    rows = data.get(spec.key, [])
    if not isinstance(rows, list):
        raise _bad(spec.key, f"must be a list of rows, got {_kind(rows)}")
    if len(rows) > MAX_IMPORT_ROWS:
        raise _bad(
            spec.key,
            f"has {len(rows):,} rows; an import takes at most {MAX_IMPORT_ROWS:,}",
            f"split the file into several imports of at most {MAX_IMPORT_ROWS:,} rows each "
            "(import the first with replace=False, then add the rest through the API)",
        )
    allowed = set(spec.required) | set(spec.optional)
    seen: set[int] = set()
    for i, row in enumerate(rows):
        where = f"{spec.key}[{i}]"
        if not isinstance(row, dict):
            raise _bad(where, f"must be an object with fields {spec.required}, got {_kind(row)}")
        missing = [f for f in spec.required if f not in row]
        if missing:
            raise _bad(where, f"lacks the field(s) {missing}")
        unknown = sorted(str(k) for k in row if k not in allowed)
        if unknown:
            raise _bad(
                where,
                f"has unknown field(s) {unknown[:5]}; the fields are {sorted(allowed)}",
                "remove them",
            )
        try:
            rid = check_pref_id(row["id"], f"{where}.id")
        except InvalidInputError as exc:
            raise InvalidInputError(f"import: {exc}") from None
        if rid in seen:
            raise _bad(f"{where}.id", f"repeats id {rid}", "give every row its own id")
        seen.add(rid)
        if "user_id" in row and row["user_id"] != user_id:
            raise _bad(
                f"{where}.user_id",
                f"is {_kind(row['user_id'])}, not the file's user_id {user_id!r}",
                "make it equal to the top-level user_id, or drop it",
            )
        for key in ("created_at", "updated_at"):
            _timestamp(row, key, where)
    return rows


def _provenance(value: object, where: str) -> list[str]:
    if not isinstance(value, list):
        raise _bad(
            where,
            f"must be a list of references, got {_kind(value)}",
            'write e.g. ["edit:3"]',
        )
    for j, ref in enumerate(value):
        if not isinstance(ref, str) or not _REF.fullmatch(ref):
            raise _bad(
                f"{where}[{j}]",
                f"is {_kind(ref)}, not a reference",
                "use 'edit:N', 'feedback:N', 'label:N', 'preference:N' or 'manual:edit'",
            )
    return list(value)


@dataclass(frozen=True)
class _Pref:
    old_id: int
    text: str
    source: str
    enabled: bool
    flagged: bool
    scope: str | None
    context: str | None
    provenance: tuple[str, ...]


def _preference(row: dict[str, Any], i: int) -> _Pref:
    where = f"preferences[{i}]"
    text = _text(row["text"], f"{where}.text", limit=MAX_PREFERENCE_CHARS)
    source = row["source"]
    if not isinstance(source, str) or source not in SOURCES:
        raise _bad(f"{where}.source", f"is {_kind(source)}", f"use one of {list(SOURCES)}")
    enabled = _bool(row, "enabled", where, True)
    # Never trusted alone: import_user() ORs it with its own check of the text.
    flagged = _bool(row, "flagged", where, False)
    return _Pref(
        old_id=row["id"],
        text=text,
        source=source,
        enabled=enabled,
        flagged=flagged,
        scope=_optional_text(row.get("scope"), f"{where}.scope"),
        context=_optional_text(row.get("context"), f"{where}.context"),
        provenance=tuple(_provenance(row.get("provenance", []), f"{where}.provenance")),
    )


def _prompts(row: dict[str, Any], key: str, where: str) -> list[str]:
    value = row.get(key, [])
    try:
        return check_prompts(value, f"{where}.{key}")
    except InvalidInputError as exc:
        raise InvalidInputError(f"import: {exc}") from None


def _adapter(value: object) -> tuple[str, dict[str, Any]] | None:
    """``(name, meta)`` of the exported adapter; its path is never taken from the file."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("adapter", f"must be null or an object, got {_kind(value)}")
    unknown = sorted(str(k) for k in value if k not in _ADAPTER_KEYS)
    if unknown:
        raise _bad("adapter", f"has unknown field(s) {unknown[:5]}", "remove them")
    if "name" not in value:
        raise _bad("adapter", "lacks its 'name'", "add the adapter's name, or write null")
    name = _text(value["name"], "adapter.name", limit=MAX_ADAPTER_NAME_CHARS)
    path = value.get("path")
    if path is not None and not isinstance(path, str):
        raise _bad("adapter.path", f"must be text or null, got {_kind(path)}")
    meta = value.get("meta", {})
    if meta is None:
        meta = {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise _bad("adapter.meta", f"must be an object with text keys, got {_kind(meta)}")
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _bad("adapter.meta", f"is not plain JSON ({exc})") from None
    _timestamp(value, "created_at", "adapter")
    return name, meta


def _texts(value: Any) -> Iterator[tuple[int, Any]]:
    """(depth, item) of everything inside ``value``, iteratively (no recursion limit)."""
    stack: list[tuple[int, Any]] = [(0, value)]
    while stack:
        depth, item = stack.pop()
        yield depth, item
        if isinstance(item, dict):
            stack.extend((depth + 1, k) for k in item)
            stack.extend((depth + 1, v) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((depth + 1, v) for v in item)


def _check_size(data: dict[str, Any]) -> None:
    chars = items = 0
    for depth, item in _texts(data):
        items += 1
        if depth > MAX_IMPORT_DEPTH:
            raise _bad("the file", f"nests deeper than {MAX_IMPORT_DEPTH} levels")
        if isinstance(item, str | bytes):
            chars += len(item)
        if chars > MAX_IMPORT_CHARS or items > 40 * MAX_IMPORT_ROWS:
            raise _bad(
                "the file",
                f"holds more than {MAX_IMPORT_CHARS:,} characters of text or "
                f"{40 * MAX_IMPORT_ROWS:,} values",
                "split it: import a file under the limit (e.g. the preferences with fewer of "
                "the raw edits and labels), then add the rest through the API",
            )


@dataclass(frozen=True)
class _Checked:
    user_id: str
    prefs: list[_Pref]
    edits: list[tuple[int, str, str, str]]
    feedback: list[tuple[int, str, list[str], list[str], dict[str, Any] | None]]
    labels: list[tuple[int, str, str, str]]
    adapter: tuple[str, dict[str, Any]] | None


def check_export(data: object) -> _Checked:
    """Every field of an export, checked; raises :class:`InvalidInputError` naming the first
    bad one (list, row index, field) and the fix."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise InvalidInputError(
            f"not a persona export (format {got!r:.60}); pass the dict that export_user() "
            f"returned, whose 'format' is {FORMAT!r}."
        )
    unknown = sorted(str(k) for k in data if k not in TOP_KEYS)
    if unknown:
        raise _bad(
            "the file",
            f"has unknown top-level key(s) {unknown[:5]}; an export has {sorted(TOP_KEYS)}",
            "remove them",
        )
    _check_size(data)
    try:
        user_id = check_user_id(data.get("user_id"))
    except InvalidInputError as exc:
        raise InvalidInputError(f"import: {exc}") from None
    _timestamp(data, "exported_at", "the file")
    prefs = [_preference(r, i) for i, r in enumerate(_rows(data, _PREFS, user_id))]
    edits = []
    for i, r in enumerate(_rows(data, _EDITS, user_id)):
        texts = [_text(r[f], f"edits[{i}].{f}") for f in ("context", "output", "edited")]
        edits.append((r["id"], texts[0], texts[1], texts[2]))
    feedback = []
    for i, r in enumerate(_rows(data, _FEEDBACK, user_id)):
        where = f"feedback[{i}]"
        text = _text(r["text"], f"{where}.text", limit=MAX_PREFERENCE_CHARS)
        ins, outs = _prompts(r, "in_scope", where), _prompts(r, "out_of_scope", where)
        dataset = check_dataset(r.get("dataset"), f"{where}.dataset")
        feedback.append((r["id"], text, ins, outs, dataset))
    labels = []
    for i, r in enumerate(_rows(data, _LABELS, user_id)):
        texts = [_text(r[f], f"labels[{i}].{f}") for f in ("prompt", "chosen", "rejected")]
        labels.append((r["id"], texts[0], texts[1], texts[2]))
    return _Checked(user_id, prefs, edits, feedback, labels, _adapter(data.get("adapter")))


# -- import --------------------------------------------------------------------------------------
def import_user(
    store: Store,
    embedder: Embedder,
    data: dict[str, Any],
    *,
    replace: bool,
    flag: Callable[[str], bool],
) -> str:
    """Load a user from :func:`export_user`'s dict; returns the user id.

    Everything is checked first (:func:`check_export`), contexts are embedded, and only then is
    anything written, in one transaction: a bad file or a failed write leaves the store as it
    was. Row ids are re-assigned and provenance references remapped to the new ids (a
    reference to a row that is not in the file is dropped).

    What the file is *not* trusted with:

    * ``flagged``: recomputed from each preference's text with ``flag`` (the layer passes its
      injection check); an injected text stays flagged even if the file says ``false`` (a
      ``true`` in the file is kept).
    * the adapter's ``path``: ignored. The adapter's files do not travel with an export, so
      the name and meta are recorded with the user's own adapter folder
      (``adapters/<safe user dir>``, relative to the persona home); copy the files there.
    * unknown keys, at the top level or in a row, are refused (not ignored), so that a typo
      or a file from a newer persona is noticed rather than silently half-imported.

    Limits: at most :data:`MAX_IMPORT_ROWS` rows per list and :data:`MAX_IMPORT_CHARS`
    characters of text in all (an import at the cap holds the write lock well under a
    second); for a bigger user, import part of it and add the rest through the API.
    """
    if not isinstance(replace, bool):
        raise InvalidInputError(f"replace={replace!r:.40} must be True or False.")
    checked = check_export(data)
    user_id = checked.user_id
    if store.has_user(user_id) and not replace:
        raise InvalidInputError(
            f"user {user_id!r} already exists; delete it first or pass replace=True."
        )
    contexts = [p.context for p in checked.prefs if p.context is not None]
    vectors = iter(embedder.embed(contexts)) if contexts else iter(())
    questions = [prompt for _, prompt, _, _ in checked.labels]
    label_vecs = iter(embedder.embed(questions)) if questions else iter(())
    with store.transaction():
        if store.has_user(user_id):
            store.delete_user(user_id)
        store.ensure_user(user_id)
        remap: dict[str, str] = {"manual:edit": "manual:edit"}
        for eid, context, output, edited in checked.edits:
            new = store.add_edit(user_id, context, output, edited)
            remap[f"edit:{eid}"] = f"edit:{new.id}"
        for fid, text, ins, outs, dataset in checked.feedback:
            # the scope model is refitted from the dataset on first use, with this embedder
            new_fb = store.add_feedback(user_id, text, ins, outs, dataset=dataset)
            remap[f"feedback:{fid}"] = f"feedback:{new_fb.id}"
        for lid, prompt, chosen, rejected in checked.labels:
            new_lb = store.add_label(user_id, prompt, chosen, rejected, next(label_vecs))
            remap[f"label:{lid}"] = f"label:{new_lb.id}"
        # Events first; references to preferences once every preference has its new id.
        new_ids: list[int] = []
        for p in checked.prefs:
            new_p = store.add_preference(
                user_id,
                p.text,
                p.source,
                context=p.context,
                embedding=next(vectors) if p.context is not None else None,
                provenance=[remap[r] for r in p.provenance if r in remap],
                scope=p.scope,
                enabled=p.enabled,
                flagged=p.flagged or flag(p.text),
            )
            new_ids.append(new_p.id)
        for p, new_id in zip(checked.prefs, new_ids, strict=True):
            remap[f"preference:{p.old_id}"] = f"preference:{new_id}"
        for p, new_id in zip(checked.prefs, new_ids, strict=True):
            if any(r.startswith("preference:") for r in p.provenance):
                fixed = [remap[r] for r in p.provenance if r in remap]
                store.update_preference(user_id, new_id, provenance=fixed)
        if checked.adapter is not None:
            name, meta = checked.adapter
            store.set_adapter(user_id, name, f"adapters/{safe_dir_name(user_id)}", meta)
    return user_id
