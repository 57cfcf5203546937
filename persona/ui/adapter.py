"""The Adapter tab (issue 13, item 4) — a placeholder until the adapters work lands.

TODO(issue 13, item 4): show the signed-in person's adapter status, data version, staleness
and training metrics plot; a "train now" button with progress; and a switch: prompt, adapter,
or both. ``build_app`` calls :func:`adapter_tab` inside its ``gr.Tabs``; the function gets the
layer and ``who(request, name)``, which returns the current user id (the signed-in user in auth
mode), so the panel's handlers never take a user id from a form field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from persona.layer import PreferenceLayer

PLACEHOLDER = (
    "Per-person adapters (a small model fine-tuned on what you taught persona) will be "
    "managed here: their status, when they were last trained, and a switch between the "
    "prompt, the adapter, or both. Until then your preferences condition every answer "
    "through the prompt."
)


def adapter_tab(layer: PreferenceLayer, who: Callable[[Any, Any], str]) -> None:
    """The Adapter tab's contents (inside ``with gr.Tab("Adapter"):``)."""
    import gradio as gr

    gr.Markdown(PLACEHOLDER, elem_id="adapter-placeholder")
