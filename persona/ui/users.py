"""Who is using the app.

- **Signed in** (``persona ui --auth FILE`` or ``$PERSONA_AUTH``): Gradio's login page checks
  the name and password against FILE; every handler takes the user id from the request
  (``gr.Request.username``), never from a form field.
- **Local** (no auth): one person on their own machine, with a visible name they can switch;
  the last name used is saved under the persona home, so a reload or a restart keeps it.

The auth file has one ``name:password`` per line; blank lines and lines starting with ``#``
are ignored. Names are user ids (trimmed); a password may contain ``:``.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from persona.errors import InvalidInputError
from persona.ui.common import normalise_user

AUTH_ENV = "PERSONA_AUTH"
DEFAULT_USER = "me"
LAST_USER_FILE = Path("ui") / "last-user.txt"

log = logging.getLogger(__name__)


def read_auth(path: str | Path) -> dict[str, str]:
    """``{name: password}`` from an auth file (see the module docstring)."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            f"cannot read the auth file {str(file)!r} ({exc}); write one 'name:password' per line."
        ) from exc
    if os.name == "posix" and file.stat().st_mode & 0o077:
        log.warning("auth file %s is readable by other users; chmod 600 it", file)
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, password = line.partition(":")
        if not sep or not password:
            raise InvalidInputError(
                f"auth file {str(file)!r}, line {number}: expected 'name:password'."
            )
        try:
            user = normalise_user(name)
        except InvalidInputError as exc:
            raise InvalidInputError(f"auth file {str(file)!r}, line {number}: {exc}") from None
        if user in users:
            raise InvalidInputError(f"auth file {str(file)!r}, line {number}: {user!r} twice.")
        users[user] = password
    if not users:
        raise InvalidInputError(f"auth file {str(file)!r} names nobody; add 'name:password' lines.")
    return users


def auth_file(path: str | Path | None = None) -> Path | None:
    """The auth file given, else ``$PERSONA_AUTH``, else None (local mode)."""
    value = path if path is not None else os.environ.get(AUTH_ENV) or None
    return Path(value) if value else None


def checker(users: dict[str, str]) -> Callable[[str, str], bool]:
    """Gradio's ``auth=`` function: the name (trimmed) and password must match."""

    def check(name: str, password: str) -> bool:
        expected = users.get(" ".join(str(name).split()))
        ok = expected is not None and hmac.compare_digest(
            expected.encode("utf-8"), str(password).encode("utf-8")
        )
        return ok

    return check


def signed_in(request: Any) -> str | None:
    """The signed-in user of a Gradio request (None without auth)."""
    name = getattr(request, "username", None)
    return " ".join(name.split()) if isinstance(name, str) and name.strip() else None


def last_user(home: Path | None) -> str:
    """The name last used in local mode (``me`` the first time)."""
    if home is None:
        return DEFAULT_USER
    try:
        return normalise_user((home / LAST_USER_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, InvalidInputError):
        return DEFAULT_USER


def remember_user(home: Path | None, user: str) -> None:
    """Save the name for the next reload or restart (best effort)."""
    if home is None:
        return
    try:
        (home / LAST_USER_FILE).parent.mkdir(parents=True, exist_ok=True)
        (home / LAST_USER_FILE).write_text(user, encoding="utf-8")
    except OSError as exc:
        log.warning("cannot save the last user name: %s", exc)
