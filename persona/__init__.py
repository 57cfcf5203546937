"""persona: a per-user preference layer for LLM agents.

It learns how each user wants things done from their edits (CIPHER), verbal feedback (C3PO)
and labeled pairs (FSPO), keeps it in a per-user store, and conditions any agent with what
applies to the current request. Heavy libraries (torch, faiss, gradio) load only when used.
"""

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
from persona.layer import PreferenceLayer
from persona.types import (
    AppliedPreference,
    Conditioning,
    Edit,
    Feedback,
    Label,
    Preference,
    ScopeQuestion,
    Why,
)

__all__ = [
    "AppliedPreference",
    "Conditioning",
    "ConflictError",
    "Edit",
    "Feedback",
    "InvalidInputError",
    "Label",
    "LearningError",
    "ModelError",
    "NotFoundError",
    "PersonaError",
    "Preference",
    "PreferenceLayer",
    "SchemaError",
    "ScopeQuestion",
    "StorageError",
    "UnknownUserError",
    "Why",
]
__version__ = "0.1.0"
