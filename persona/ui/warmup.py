"""Load the models in the background when the app starts, and say how far along it is.

The local model's first start converts and loads its weights (up to a minute or two on a small
CPU); the embedder takes ~10 s. Without this the first answer just hangs.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from persona.ui.messages import for_person

if TYPE_CHECKING:
    from persona.assistant import Assistant
    from persona.layer import PreferenceLayer


class Warmup:
    """A background thread that loads the embedder and the chat model once."""

    def __init__(self, layer: PreferenceLayer, assistant: Assistant) -> None:
        self.layer, self.assistant = layer, assistant
        self.step = "starting"
        self.error: str | None = None
        self.started = time.monotonic()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="persona-warmup", daemon=True)

    def start(self) -> Warmup:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.step = "loading the embedder"
            self.layer.embedder.embed(["warm up"])
            self.step = "loading the chat model"
            self.assistant.runnable.model.invoke("Hi", max_tokens=1)
        except Exception as err:  # the chat will say it again, with the same words
            self.error = for_person(err)
        finally:
            self.step = "ready"
            self.done.set()

    def status(self) -> str:
        """One line for the page: progress while loading, then ready (or why not)."""
        if self.error:
            return f"⚠️ The model could not be loaded: {self.error}"
        if self.done.is_set():
            return "Model ready."
        seconds = time.monotonic() - self.started
        return f"Starting up: {self.step} ({seconds:.0f} s; the first start takes longest)…"
