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


def why_markdown(cond: Conditioning, extra: dict[str, Any] | None = None) -> str:
    """The note's body (Markdown): preferences applied and withheld, examples, adapter."""
    lines: list[str] = []
    if cond.preferences:
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
        lines.append("\n**Your labeled pairs shown as examples:**")
        lines += [
            f"- pair #{e.id}: for {_short(e.prompt, 60)}, you preferred {_short(e.chosen, 60)}"
            for e in cond.examples
        ]
    if cond.summary and cond.preferences:
        lines.append(f"\n**Conditioned as:** *{_short(cond.summary)}*")
    adapter = escape_md(cond.adapter) if cond.adapter else "none (preferences in the prompt)"
    lines.append(f"\n**Adapter:** {adapter}")
    for key, value in (extra or {}).items():
        lines.append(f"\n**{escape_md(key)}:** {escape_md(str(value))}")
    return "\n".join(lines)


def why_note(cond: Conditioning, extra: dict[str, Any] | None = None) -> Message:
    """The collapsed chat message shown under an answer."""
    n, k = len(cond.preferences), len(cond.examples)
    log = f"{n} preference{'s' * (n != 1)}, {k} example{'s' * (k != 1)}"
    if cond.adapter:
        log += ", adapter"
    return {
        "role": "assistant",
        "content": why_markdown(cond, extra),
        "metadata": {"title": WHY_TITLE, "log": log, "status": "done"},
    }
