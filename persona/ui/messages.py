"""Messages for the person using the app: plain language, no code, one fix.

Library messages are written for programmers ("pass pref_id=3", "layer.preferences(...)"); the
app shows one only when it reads as plain language, else the plain message of its kind.
"""

import re

from persona.errors import (
    ConflictError,
    InvalidInputError,
    LearningError,
    ModelError,
    NotFoundError,
    PersonaError,
    SchemaError,
    StorageError,
    UnknownUserError,
)

_CODE = re.compile(
    r"\w\(|\(\)|\blayer\.|\bpersona\.|\w=|`|<class|\b[A-Z]\w*Error\b|\bNoneType\b"
    r"|\bgot (?:int|float|str|bytes|list|dict|tuple|bool|set)\b|\b(?:pref|user)_id\b"
    # argument names (snake_case, or a bare parameter name before its quoted value), powers,
    # escaped backslashes and advice for callers ("split it into several calls")
    r"|\b[a-z]+_[a-z_]+\b|\b(?:output|edited|context|prompt|chosen|rejected|text|feedback)"
    r" '|\*\*|\\\\|\bcalls?\b"
)
_FOR_PEOPLE: tuple[tuple[type[PersonaError], str], ...] = (
    (UnknownUserError, "Nothing is stored for this user yet."),
    (NotFoundError, "That preference does not exist for this user; pick an id from the table."),
    (
        ModelError,
        "The model did not answer, so nothing was learned or changed. Check that it is "
        "running, then try again.",
    ),
    (
        LearningError,
        "The model's answer was not a usable preference, so nothing was learned. Try again, "
        "or add the preference yourself on the right.",
    ),
    (
        StorageError,
        "The preference store could not be read or written, so nothing was changed. Try "
        "again; if it keeps failing, ask whoever runs this app to restore its database.",
    ),
    (
        SchemaError,
        "The preference store cannot be opened by this version of the app; ask whoever runs "
        "it to upgrade it or to point it at another store.",
    ),
    (
        ConflictError,
        "This was being changed somewhere else at the same moment, so your change was not "
        "saved; try it again.",
    ),
    (InvalidInputError, "That input was not accepted; check it and try again."),
)
INTERNAL = (
    "Something went wrong inside the app (the details are in its log). What you typed is "
    "kept; try again."
)


def for_person(err: BaseException) -> str:
    """A message for the person using the app: no code, no Python names, one fix."""
    if not isinstance(err, PersonaError):
        return INTERNAL
    text = " ".join(str(err).split())
    if text and not _CODE.search(text):
        return text[0].upper() + text[1:]
    kept = [part for part in re.split(r";\s+", text) if part and not _CODE.search(part)]
    if kept and isinstance(err, InvalidInputError | NotFoundError):
        text = "; ".join(kept)
        return text[0].upper() + text[1:].rstrip(".") + "."
    return next((msg for kind, msg in _FOR_PEOPLE if isinstance(err, kind)), INTERNAL)
