"""Export a user to plain JSON and import it back (all or nothing)."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from persona.config import MAX_PREFERENCE_CHARS, check_text, check_user_id
from persona.errors import InvalidInputError
from persona.store.base import Store
from persona.store.embed import Embedder
from persona.types import SOURCES

FORMAT = "persona.user/1"


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


def _rows(data: dict[str, Any], key: str, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = data.get(key, [])
    if not isinstance(rows, list):
        raise InvalidInputError(f"export field {key!r} must be a list, got {type(rows).__name__}.")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or any(f not in row for f in fields):
            raise InvalidInputError(
                f"{key}[{i}] = {row!r:.80} lacks one of {fields}; import a file made by "
                "layer.export_user()."
            )
    return rows


def import_user(store: Store, embedder: Embedder, data: dict[str, Any], *, replace: bool) -> str:
    """Validate everything first, embed, then write in one transaction; ids are re-assigned and
    provenance references are remapped to the new ids."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise InvalidInputError(
            f"not a persona export (format {got!r}); pass the dict from layer.export_user(), "
            f"whose 'format' is {FORMAT!r}."
        )
    user_id = check_user_id(data.get("user_id"))
    prefs = _rows(data, "preferences", ("id", "text", "source"))
    edits = _rows(data, "edits", ("id", "context", "output", "edited"))
    feedback = _rows(data, "feedback", ("id", "text"))
    labels = _rows(data, "labels", ("id", "prompt", "chosen", "rejected"))
    for p in prefs:
        check_text(p["text"], "preference text", limit=MAX_PREFERENCE_CHARS)
        if p["source"] not in SOURCES:
            raise InvalidInputError(f"preference source {p['source']!r} is not one of {SOURCES}.")
    for e in edits:
        for f in ("context", "output", "edited"):
            check_text(e[f], f"edit {f}")
    for fb in feedback:
        check_text(fb["text"], "feedback text", limit=MAX_PREFERENCE_CHARS)
    for lb in labels:
        for f in ("prompt", "chosen", "rejected"):
            check_text(lb[f], f"label {f}")
    if store.has_user(user_id) and not replace:
        raise InvalidInputError(
            f"user {user_id!r} already exists; delete it first or pass replace=True."
        )
    contexts = [p.get("context") for p in prefs]
    to_embed = [c for c in contexts if c]
    vectors = iter(embedder.embed(to_embed)) if to_embed else iter(())
    with store.transaction():
        if store.has_user(user_id):
            store.delete_user(user_id)
        store.ensure_user(user_id)
        remap: dict[str, str] = {}
        for e in edits:
            new = store.add_edit(user_id, e["context"], e["output"], e["edited"])
            remap[f"edit:{e['id']}"] = f"edit:{new.id}"
        for fb in feedback:
            new_fb = store.add_feedback(
                user_id, fb["text"], fb.get("in_scope", []), fb.get("out_of_scope", [])
            )
            remap[f"feedback:{fb['id']}"] = f"feedback:{new_fb.id}"
        for lb in labels:
            new_lb = store.add_label(user_id, lb["prompt"], lb["chosen"], lb["rejected"])
            remap[f"label:{lb['id']}"] = f"label:{new_lb.id}"
        for p, ctx in zip(prefs, contexts, strict=True):
            new_p = store.add_preference(
                user_id,
                p["text"],
                p["source"],
                context=ctx or None,
                embedding=next(vectors) if ctx else None,
                provenance=[remap.get(ref, ref) for ref in p.get("provenance", [])],
                scope=p.get("scope"),
                enabled=bool(p.get("enabled", True)),
                flagged=bool(p.get("flagged", False)),
            )
            remap[f"preference:{p['id']}"] = f"preference:{new_p.id}"
        # second pass: provenance that points at other preferences
        for new_p in store.list_preferences(user_id):
            fixed = [remap.get(ref, ref) for ref in new_p.provenance]
            if fixed != list(new_p.provenance):
                store.update_preference(user_id, new_p.id, provenance=fixed)
        adapter = data.get("adapter")
        if isinstance(adapter, dict) and {"name", "path"} <= set(adapter):
            store.set_adapter(user_id, adapter["name"], adapter["path"], adapter.get("meta", {}))
    return user_id
