"""Every error persona raises is a :class:`PersonaError`.

Messages name the bad value and say how to fix it. Subclasses also derive from the builtin
whose meaning fits, so ``except ValueError`` keeps working for callers who expect it.
"""

from __future__ import annotations


class PersonaError(Exception):
    """Base class of every error raised by persona."""


class InvalidInputError(PersonaError, ValueError):
    """An argument is empty, too large, malformed or of the wrong type."""


class NotFoundError(PersonaError, LookupError):
    """A user, preference or event does not exist (or belongs to another user)."""


class UnknownUserError(NotFoundError):
    """The user id has no data in this store."""


class ConflictError(PersonaError):
    """Another writer changed the same row since it was read; nothing was written."""


class SchemaError(PersonaError):
    """The database was written by a newer persona, or is not a persona database."""


class ModelError(PersonaError, RuntimeError):
    """A chat model or embedder could not be loaded or did not answer."""


class LearningError(PersonaError):
    """A learner could not turn an event into a usable preference (e.g. the LLM answered junk).

    The raw event is still stored; nothing else was written.
    """


class StorageError(PersonaError, OSError):
    """The database could not be read or written: damaged, locked too long, or out of space.

    Nothing half-written is left: the call that raised it changed nothing.
    """
