"""Store locations: telling a PostgreSQL URL from a path, and showing one without its password.

Kept free of psycopg so that ``PreferenceLayer.open`` and the CLI can branch on a location
without importing a database driver.
"""

from __future__ import annotations

import re

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_PASSWORD_IN_URL = re.compile(r"(://[^:/?#@]*):[^@/?#]*@")
_PASSWORD_PARAM = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


def is_postgres_url(location: object) -> bool:
    """True for ``postgresql://...`` and ``postgres://...`` (libpq's two URL schemes)."""
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def redact(url: str) -> str:
    """The URL as it may be shown in a message or a log: any password replaced by ``***``."""
    return _PASSWORD_PARAM.sub(r"\1***", _PASSWORD_IN_URL.sub(r"\1:***@", url))
