"""What every ``persona`` command shares: the consoles and the PersonaError → exit-1 rule."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from persona.errors import InvalidInputError, PersonaError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


# Options of the local model that `persona ui` and `persona bench edits` share.
FOLLOW_ADAPTER_DIR = typer.Option(
    None,
    help="A follow adapter folder (from `persona train follow`) instead of the shipped one.",
)
GUIDANCE = typer.Option(
    None,
    help="The local model's classifier-free guidance toward the preferences (1: off; "
    "default: the model's own).",
)
RERANK = typer.Option(
    None,
    help="The local model writes N answers to a stated preference and keeps the one the "
    "preference explains best (1: off; default: the model's own).",
)


def fail(message: str) -> typer.Exit:
    """Print ``message`` as one red line on stderr; return the Exit(1) to raise."""
    err.print(f"error: {' '.join(message.splitlines())}", style="red", markup=False, soft_wrap=True)
    return typer.Exit(1)


@contextmanager
def errors() -> Iterator[None]:
    """Turn a PersonaError into a red one-line message and exit status 1 (no traceback)."""
    try:
        yield
    except PersonaError as exc:
        raise fail(str(exc)) from None


def follow_choice(enabled: bool, folder: Path | None) -> bool | str:
    """The local model's ``follow_adapter`` from ``--[no-]follow-adapter`` and
    ``--follow-adapter-dir`` (a folder written by ``persona train follow``)."""
    if folder is None:
        return enabled
    if not enabled:
        raise InvalidInputError(
            f"--follow-adapter-dir {folder} and --no-follow-adapter contradict each other; "
            "drop one of them."
        )
    return str(folder)
