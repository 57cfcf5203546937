"""The "why" note under each answer: what persona applied, with scores and scope decisions.

Rendered from the :class:`~persona.types.Conditioning` the answer was generated with, so every
answer keeps its own note (not only the last one).
"""

from __future__ import annotations

from typing import Any

from persona.types import AppliedPreference, Conditioning
from persona.ui.common import WHY_TITLE, Message, escape_md

SHOWN = 160  # characters of a preference or example shown in the note


def _short(text: str, limit: int = SHOWN) -> str:
    text = " ".join(text.split())
    return escape_md(text if len(text) <= limit else text[: limit - 1] + "…")


def _reason(p: AppliedPreference) -> str:
    """The scope decision in words: where the preference applies and why it matched."""
    why = p.why
    parts = [escape_md(why.scope)]
    if why.similarity is not None:
        parts.append(f"similarity {why.similarity:.2f}")
    if why.sources:
        parts.append("learned from " + escape_md(", ".join(why.sources)))
    return "; ".join(parts)


def adapter_line(cond: Conditioning, mode: str = "both", used: bool | None = None) -> str:
    """Which adapter shaped the answer, and why none did (the Adapter tab's switch, no adapter
    trained yet, a chat model that cannot load one, or one trained for other weights)."""
    used = bool(cond.adapter) if used is None else used
    if cond.adapter and used:
        name = escape_md(cond.adapter)
        if mode == "adapter":
            return f"yours ({name}), alone: “Adapter only” is chosen in the Adapter tab"
        return f"yours ({name}), with your preferences in the prompt"
    if cond.adapter and mode == "prompt":
        return "not used: “Prompt only” is chosen in the Adapter tab"
    if cond.adapter:
        return (
            "not used: this chat model cannot load adapters, or yours was trained for another "
            "version of it (see the Adapter tab); preferences in the prompt"
        )
    if mode == "adapter":
        return "none: you have no trained adapter yet, so your preferences went in the prompt"
    return "none (preferences in the prompt)"


def why_markdown(
    cond: Conditioning,
    extra: dict[str, Any] | None = None,
    *,
    mode: str = "both",
    used: bool | None = None,
) -> str:
    """The note's body (Markdown): preferences applied and withheld, examples, adapter.

    ``mode``: the Adapter tab's switch the answer was made with; ``used``: whether the user's
    adapter reached the model (None: whenever the user has one)."""
    alone = mode == "adapter" and bool(cond.adapter) and used is not False
    lines: list[str] = []
    if cond.preferences and alone:
        lines.append("**Preferences that match** (not put in the prompt: the adapter alone):")
        lines += [f"- **#{p.id}** {_short(p.text)} · {_reason(p)}" for p in cond.preferences]
    elif cond.preferences:
        lines.append("**Preferences applied** (score · why):")
        lines += [
            f"- **#{p.id}** {_short(p.text)} — score {p.score:.2f} · {_reason(p)}"
            for p in cond.preferences
        ]
    else:
        lines.append("**Preferences applied:** none matched this request.")
    if cond.withheld:
        lines.append("\n**Considered, not applied here:**")
        lines += [f"- **#{p.id}** {_short(p.text)} · {_reason(p)}" for p in cond.withheld]
    if cond.examples:
        shown = "that match (not shown: the adapter alone)" if alone else "shown as examples"
        lines.append(f"\n**Your labeled pairs {shown}:**")
        lines += [
            f"- pair #{e.id}: for {_short(e.prompt, 60)}, you preferred {_short(e.chosen, 60)}"
            for e in cond.examples
        ]
    if cond.summary and cond.preferences and not alone:
        lines.append(f"\n**Conditioned as:** *{_short(cond.summary)}*")
    lines.append(f"\n**Adapter:** {adapter_line(cond, mode, used)}")
    for key, value in (extra or {}).items():
        lines.append(f"\n**{escape_md(key)}:** {escape_md(str(value))}")
    return "\n".join(lines)


def why_note(
    cond: Conditioning,
    extra: dict[str, Any] | None = None,
    *,
    mode: str = "both",
    used: bool | None = None,
) -> Message:
    """The collapsed chat message shown under an answer (``mode``, ``used``: as
    :func:`why_markdown`)."""
    n, k = len(cond.preferences), len(cond.examples)
    log = f"{n} preference{'s' * (n != 1)}, {k} example{'s' * (k != 1)}"
    if cond.adapter and used is not False:
        log = "adapter only" if mode == "adapter" else f"{log}, adapter"
    return {
        "role": "assistant",
        "content": why_markdown(cond, extra, mode=mode, used=used),
        "metadata": {"title": WHY_TITLE, "log": log, "status": "done"},
    }
