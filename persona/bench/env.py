"""The PRELUDE environment: two writing tasks, their document sources and latent preferences.

As in PRELUDE (Gao et al. 2024), each round draws a document source uniformly, then a document
of that source; the user asks the agent to summarize it (``summarization``) or to write an
email from it (``email``). The user's latent preference depends on the source, and is made of
a few executable :mod:`~persona.bench.atoms`, so a simulated user can check and edit answers.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cache
from importlib import resources

from persona.bench import atoms as A
from persona.errors import InvalidInputError
from persona.learn import prompts

#: The request the assistant sees for a summarization round (the assistant's own template).
SUMMARIZE_TEMPLATE = prompts.SUMMARIZE.replace("{document}", "{text}")
#: The request the assistant sees for an email round.
EMAIL_TEMPLATE = prompts.EMAIL.replace("{notes}", "{text}")
TEMPLATES: dict[str, str] = {"summarization": SUMMARIZE_TEMPLATE, "email": EMAIL_TEMPLATE}
TASKS: tuple[str, ...] = tuple(TEMPLATES)


@dataclass(frozen=True)
class Context:
    """One round's input: the task, the document's source and the document itself."""

    task: str
    source: str
    text: str
    doc_id: str = ""


@dataclass(frozen=True)
class Source:
    """A kind of document, and the latent preference of the user for answers about it."""

    name: str
    kind: str  # what the documents are, in words ("news article")
    atoms: tuple[A.Atom, ...]  # applied in this order by a scripted user

    @property
    def latent(self) -> str:
        """The preference in words: the atoms' descriptions, joined."""
        return "; ".join(atom.description for atom in self.atoms)


def _sources(*sources: Source) -> dict[str, Source]:
    return {s.name: s for s in sources}


#: task -> source name -> Source. Atoms are distinct across the sources of a task; their order
#: makes them compose (headers and endings before the word limit, which keeps the last sentence).
SOURCES: dict[str, dict[str, Source]] = {
    "summarization": _sources(
        Source("news", "news article", (A.ATOMS["short_sentences_10"], A.QUESTION_END)),
        Source("forum", "forum post", (A.LOWERCASE, A.ENDS_WITH_EMOJI, A.ATOMS["max_words_50"])),
        Source("encyclopedia", "encyclopedia entry", (A.TITLE, A.BULLETS, A.ATOMS["max_words_60"])),
        Source("abstract", "paper abstract", (A.TLDR, A.SINGLE_PARAGRAPH, A.HASHTAG)),
    ),
    "email": _sources(
        Source("notes", "personal notes", (A.CASUAL_GREETING, A.NO_CLOSING, A.ENDS_WITH_EMOJI)),
        Source("review", "paper review", (A.FORMAL, A.NUMBERED, A.NO_EXCLAMATION)),
        Source(
            "announcement",
            "event announcement",
            (A.SUBJECT, A.NO_EMOJI, A.CALL_TO_ACTION_END, A.ATOMS["max_words_80"]),
        ),
        Source("meeting", "meeting notes", (A.TLDR, A.BULLETS, A.ATOMS["short_sentences_12"])),
    ),
}


def _check_task(task: object) -> str:
    if task not in SOURCES:
        raise InvalidInputError(
            f"unknown task {task!r}; use one of {', '.join(repr(t) for t in TASKS)}."
        )
    return str(task)


def get_source(task: str, source: str) -> Source:
    """The :class:`Source` ``source`` of ``task``; InvalidInputError names the valid ones."""
    sources = SOURCES[_check_task(task)]
    if source not in sources:
        raise InvalidInputError(
            f"unknown source {source!r} for task {task!r}; "
            f"use one of {', '.join(repr(s) for s in sources)}."
        )
    return sources[source]


def latent_preferences(task: str) -> dict[str, str]:
    """source -> the latent preference in words, for ``task``."""
    return {name: s.latent for name, s in SOURCES[_check_task(task)].items()}


def latent(context: Context) -> str:
    """The latent preference that applies to ``context``."""
    return get_source(context.task, context.source).latent


@cache
def _corpus(task: str) -> tuple[Context, ...]:
    path = resources.files("persona.bench").joinpath("corpus", f"{task}.json")
    rows = json.loads(path.read_text(encoding="utf-8"))
    return tuple(Context(task, r["source"], r["text"], r["id"]) for r in rows)


def load_corpus(task: str) -> list[Context]:
    """Every document of ``task``'s packaged corpus, in file order."""
    return list(_corpus(_check_task(task)))


def sample_rounds(task: str, rounds: int, seed: int = 0) -> list[Context]:
    """``rounds`` contexts: each draws a source uniformly, then one of its documents."""
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
        raise InvalidInputError(f"rounds must be a non-negative int, got {rounds!r}.")
    by_source: dict[str, list[Context]] = {name: [] for name in SOURCES[_check_task(task)]}
    for ctx in _corpus(task):
        by_source[ctx.source].append(ctx)
    names = sorted(name for name, docs in by_source.items() if docs)
    rng = random.Random(seed)
    out: list[Context] = []
    for _ in range(rounds):
        out.append(rng.choice(by_source[rng.choice(names)]))
    return out


def instruction(context: Context) -> str:
    """The user's request, as the assistant sees it."""
    return TEMPLATES[_check_task(context.task)].format(text=context.text)
