"""Simulated users: they hold a latent preference per context and edit answers towards it.

:class:`ScriptedUser` edits with the source's executable atoms (deterministic, free, exact),
after writing the content itself when the answer says almost nothing or has no body;
:class:`LLMUser` follows PRELUDE's protocol with a chat model: ask whether the answer suits
the latent preference, and if not, ask for a revision that does.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Protocol, runtime_checkable

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage

from persona.bench.atoms import apply_atoms
from persona.bench.env import Context, get_source, instruction
from persona.bench.metrics import is_short
from persona.bench.text import has_body, with_body

log = logging.getLogger(__name__)

#: Asked first: does the answer already suit the user? (PRELUDE's satisfaction check.)
JUDGE_PROMPT = (
    "Task: {task}\n\n"
    "Instruction given to the assistant:\n{instruction}\n\n"
    "Answer:\n{answer}\n\n"
    "Is the above answer good for a user who prefers: {latent}? "
    "Check every part of the preference. Answer yes or no."
)
#: Asked when it does not: the user's edit, as a revision that fits the preference.
REVISE_PROMPT = (
    "Task: {task}\n\n"
    "Instruction given to the assistant:\n{instruction}\n\n"
    "Answer:\n{answer}\n\n"
    "A user who prefers: {latent} edits the answer above so that it fits this preference. "
    "Keep the content; change only what the preference requires. "
    "Return only the revised answer, with no explanation."
)
#: Task names as the prompts spell them.
TASK_NAMES: dict[str, str] = {"summarization": "summarize a document", "email": "write an email"}

_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_PREAMBLE = re.compile(
    r"^\s*(?:(?:sure|certainly|okay|ok)[,.!]?\s*)?(?:here(?:'s| is)|below is)[^\n]*?:\s*",
    re.IGNORECASE,
)
_FENCE = re.compile(r"^```[a-z]*\n(.*?)\n?```$", re.DOTALL)
_QUOTES = {'"': '"', "'": "'", "“": "”", "«": "»"}
_SENTENCE = re.compile(r"(?<=[.!?])\s+")

#: When an answer says almost nothing, the scripted user writes the content: the document's
#: leading sentences, at least this many words.
OWN_TEXT_WORDS = 40


@runtime_checkable
class SimulatedUser(Protocol):
    """A user with a latent preference per context, who edits answers towards it."""

    def latent(self, context: Context) -> str: ...  # the true preference, for oracle and accuracy

    def edit(self, context: Context, output: str) -> str: ...  # unchanged if satisfied


def own_text(context: Context, words: int = OWN_TEXT_WORDS) -> str:
    """What a user writes in place of an answer that does not do the task: the document's
    leading sentences, whole, until they hold at least ``words`` words (the whole document
    when it is shorter)."""
    taken: list[str] = []
    count = 0
    for sentence in _SENTENCE.split(context.text.strip()):
        taken.append(sentence)
        count += len(sentence.split())
        if count >= words:
            break
    return " ".join(taken)


class ScriptedUser:
    """Applies the context source's atoms; returns the answer unchanged when it satisfies them.

    An answer under :data:`~persona.bench.metrics.SHORT_WORDS` words (a title line, ``"# # #"``)
    does not do the task, however well it fits the preference: the user writes the content
    (:func:`own_text`) and applies the atoms to that, so the edit costs about as much as
    writing the answer. Without this, the cheapest answer is the emptiest one, and a learner
    that makes the agent say less looks like one that learned the preference.

    An answer that is all frame and no body (a TL;DR line and a title, a subject, greeting
    and sign-off with nothing between) does not do the task either, and would pass every
    body preference (bullets, short sentences) vacuously: the user keeps the frame and writes
    the body (:func:`own_text`) before applying the atoms (session 27).
    ``rewrite_short=False`` is the user of the tables before session 18 (atoms only).
    """

    def __init__(self, *, rewrite_short: bool = True) -> None:
        self.rewrite_short = rewrite_short
        self.rewritten = 0  # answers the user wrote in place of the agent's

    def latent(self, context: Context) -> str:
        return get_source(context.task, context.source).latent

    def edit(self, context: Context, output: str) -> str:
        atoms = get_source(context.task, context.source).atoms
        if self.rewrite_short and is_short(output):
            self.rewritten += 1
            return apply_atoms(atoms, own_text(context))
        if self.rewrite_short and not has_body(output):
            self.rewritten += 1
            return apply_atoms(atoms, with_body(output, own_text(context)))
        return apply_atoms(atoms, output)


def clean_revision(text: str) -> str:
    """The revised answer alone: no code fence, no 'Here is …:' preamble, no wrapping quotes."""
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    text = _PREAMBLE.sub("", text, count=1).strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    return text


class LLMUser:
    """PRELUDE's LLM user: judge the answer against the latent preference; revise if not good.

    A failed call or an empty revision leaves the answer unchanged and counts in ``failures``;
    ``tokens_in`` / ``tokens_out`` sum the model's reported usage.
    """

    def __init__(self, chat_model: BaseChatModel) -> None:
        self.chat_model = chat_model
        self.failures = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.calls = 0

    def latent(self, context: Context) -> str:
        return get_source(context.task, context.source).latent

    def _ask(self, prompt: str) -> str:
        self.calls += 1
        message: BaseMessage = self.chat_model.invoke([HumanMessage(content=prompt)])
        usage: Any = getattr(message, "usage_metadata", None)
        if usage:
            self.tokens_in += int(usage.get("input_tokens", 0) or 0)
            self.tokens_out += int(usage.get("output_tokens", 0) or 0)
        content = message.content
        return content if isinstance(content, str) else str(content)

    def edit(self, context: Context, output: str) -> str:
        fields = {
            "task": TASK_NAMES.get(context.task, context.task),
            "instruction": instruction(context),
            "answer": output,
            "latent": self.latent(context),
        }
        try:
            verdict = _YES_NO.search(self._ask(JUDGE_PROMPT.format(**fields)))
            if verdict and verdict.group(1).lower() == "yes":
                return output
            revised = clean_revision(self._ask(REVISE_PROMPT.format(**fields)))
        except Exception as exc:  # any model failure: the user leaves the answer as it is
            log.warning(
                "simulated LLM user failed (%s: %s); answer left unchanged", type(exc).__name__, exc
            )
            self.failures += 1
            return output
        if not revised:
            self.failures += 1
            return output
        return revised
