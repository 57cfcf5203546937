"""Where persona keeps its data, and the limits every public entry point enforces."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from persona.errors import InvalidInputError

#: The one environment variable persona reads for its data directory.
HOME_ENV = "PERSONA_HOME"

#: Longest text accepted for a preference, a context, an answer or a feedback (characters).
#: Long enough for a full document to summarize; short enough to embed and store quickly.
MAX_TEXT_CHARS = 20_000
#: Longest preference text (characters): a preference is a short description, not a document.
MAX_PREFERENCE_CHARS = 1_000
#: Longest user id (characters).
MAX_USER_ID_CHARS = 128

_SAFE_DIR = re.compile(r"[^A-Za-z0-9_.-]+")


def default_home() -> Path:
    """``$PERSONA_HOME``, else ``~/.local/share/persona``."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "persona"


def set_offline() -> None:
    """Never let transformers / sentence-transformers reach for a model hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def check_user_id(user_id: object) -> str:
    """Validate a user id. Any printable text works; it never becomes a raw path."""
    if not isinstance(user_id, str):
        raise InvalidInputError(
            f"user_id must be a string, got {type(user_id).__name__} {user_id!r}; "
            "pass the user's id as text, e.g. 'alice'."
        )
    if not user_id.strip():
        raise InvalidInputError(
            f"user_id {user_id!r} is empty; pass a non-empty id such as 'alice'."
        )
    if len(user_id) > MAX_USER_ID_CHARS:
        raise InvalidInputError(
            f"user_id {user_id[:40]!r}... is {len(user_id)} characters; "
            f"use at most {MAX_USER_ID_CHARS}."
        )
    if "\x00" in user_id or any(ord(c) < 32 for c in user_id):
        raise InvalidInputError(
            f"user_id {user_id!r} contains a NUL or control character; "
            "remove control characters from the id."
        )
    if "/" in user_id or "\\" in user_id or user_id.strip() in {".", ".."} or ".." in user_id:
        raise InvalidInputError(
            f"user_id {user_id!r} contains '/', '\\\\' or '..'; "
            "user ids must not look like paths — use e.g. 'alice' or 'team-a.alice'."
        )
    return user_id


def safe_dir_name(user_id: str) -> str:
    """A file-system-safe, collision-free folder name for a user id (never the raw id)."""
    digest = hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:16]
    readable = _SAFE_DIR.sub("_", user_id)[:40].strip("._") or "user"
    return f"{readable}-{digest}"


def check_text(value: object, name: str, *, limit: int = MAX_TEXT_CHARS) -> str:
    """Validate a text argument: a non-empty string within ``limit`` characters, no NUL."""
    if not isinstance(value, str):
        raise InvalidInputError(
            f"{name} must be a string, got {type(value).__name__} {value!r:.60}; pass text."
        )
    if not value.strip():
        raise InvalidInputError(f"{name} {value!r} is empty or whitespace; pass some text.")
    if len(value) > limit:
        raise InvalidInputError(
            f"{name} is {len(value):,} characters ({value[:40]!r}...); the limit is "
            f"{limit:,}: shorten it or split it into several calls."
        )
    if "\x00" in value:
        raise InvalidInputError(f"{name} {value[:40]!r} contains a NUL character; remove it.")
    return value
