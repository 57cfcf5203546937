"""Value objects shared by every part of persona. All frozen; all JSON-friendly via ``asdict``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Source = Literal["edit", "feedback", "label", "manual"]
SOURCES: tuple[str, ...] = ("edit", "feedback", "label", "manual")


@dataclass(frozen=True)
class Preference:
    """One thing persona learned (or was told) about how a user wants things done."""

    id: int
    user_id: str
    text: str
    source: Source
    enabled: bool = True
    # Where it applies. None: learned per context (retrieved by similarity to `context`) or,
    # for a manual preference without a context, everywhere. C3PO fills this with its scope.
    scope: str | None = None
    # The events it was learned from, as "kind:id" references ("edit:12", "feedback:3").
    provenance: tuple[str, ...] = ()
    # The context it was learned in (CIPHER) or that it is tied to; its embedding is indexed.
    context: str | None = None
    # True when the text looks like an attempt to override the system prompt; flagged
    # preferences are kept (the user can see and delete them) but never rendered into prompts.
    flagged: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def is_global(self) -> bool:
        """A manual preference with no context applies to every request."""
        return self.context is None and self.scope is None


@dataclass(frozen=True)
class Edit:
    """The user changed an answer: CIPHER's signal."""

    id: int
    user_id: str
    context: str
    output: str
    edited: str
    created_at: float = 0.0


@dataclass(frozen=True)
class Feedback:
    """Verbal feedback ("no emojis in emails to my boss"): C3PO's signal."""

    id: int
    user_id: str
    text: str
    in_scope: tuple[str, ...] = ()
    out_of_scope: tuple[str, ...] = ()
    created_at: float = 0.0
    # C3PO's synthetic dataset (scope phrases, in/near/out-of-scope prompts with their
    # train/test split, answers once an adapter was trained); None for feedback stored before.
    dataset: dict[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Label:
    """The user preferred ``chosen`` over ``rejected`` for ``prompt``: FSPO's signal."""

    id: int
    user_id: str
    prompt: str
    chosen: str
    rejected: str
    created_at: float = 0.0


@dataclass(frozen=True)
class Why:
    """Why a preference was applied to a context."""

    similarity: float | None  # cosine between this context and the preference's context
    scope: str  # the scope decision, e.g. "global", "retrieved (top-5, >= 0.30)"
    sources: tuple[str, ...] = ()  # the events it was learned from

    def __str__(self) -> str:
        sim = "" if self.similarity is None else f"similarity {self.similarity:.2f}; "
        src = f"; from {', '.join(self.sources)}" if self.sources else ""
        return f"{sim}{self.scope}{src}"


@dataclass(frozen=True)
class ScopeQuestion:
    """A request the layer would like the user to judge: should this feedback apply to it?

    Asked where the feedback's scope model is least sure (``probability`` nearest the
    threshold); the user's answer goes back through ``edit_scope`` (``add_in_scope`` or
    ``add_out_of_scope``)."""

    request: str
    probability: float  # the scope model's belief that the feedback applies here
    applies: bool  # what the layer decides today, without an answer
    source: str  # where the request came from: "given", "your edits", "general requests", ...


@dataclass(frozen=True)
class AppliedPreference:
    """A preference as applied to one context, with its score and the reason."""

    id: int
    text: str
    score: float
    why: Why


@dataclass(frozen=True)
class Conditioning:
    """What to condition an agent with for one user and one context."""

    preferences: tuple[AppliedPreference, ...] = ()
    examples: tuple[Label, ...] = ()
    system_prompt: str = ""
    adapter: str | None = None
    # The single description that conditions generation (CIPHER's aggregate), if any.
    summary: str | None = None
    timings: dict[str, float] = field(default_factory=dict, compare=False)
    # Preferences considered and not applied here (a feedback outside its learned scope),
    # each with the reason: what the app shows under "why not".
    withheld: tuple[AppliedPreference, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.preferences and not self.examples
