"""A chat model that answers from a recording: each prompt gets the answer recorded for it.

For benchmarks that need an LLM this machine cannot run: another model's answers to the exact
prompts a pipeline sends are recorded once, then replayed, so that the figures can be
reproduced and are named by the model that wrote the answers (``load_chat_model("replay:
FILE")``). The file is JSON::

    {"model": "who wrote the answers", "answers": [{"prompt": "...", "answer": "..."}]}

A call's prompt is the text of its messages, one per line, compared with runs of whitespace
collapsed. A prompt that was never recorded raises :class:`ConnectionError`, as a server that
is down would, so the caller's own failure handling runs (C3PO's dataset builder counts a
failed step) and nothing is made up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage
from pydantic import Field, PrivateAttr

from persona.agents.fakes import ReplyChatModel
from persona.errors import InvalidInputError


def prompt_key(text: str) -> str:
    """How a prompt is compared: its words, single-spaced."""
    return " ".join(text.split())


def load_recording(path: str | Path) -> tuple[str, dict[str, str]]:
    """``(who answered, {prompt key: answer})`` of a recording file, checked."""
    where = Path(path)
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidInputError(
            f"replay file {str(where)!r} does not exist; give the path of a recording "
            '({"model": ..., "answers": [{"prompt": ..., "answer": ...}]}).'
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(
            f"replay file {str(where)!r} is not readable JSON ({exc}); give a recording file."
        ) from exc
    model = data.get("model") if isinstance(data, dict) else None
    answers = data.get("answers") if isinstance(data, dict) else None
    if not isinstance(model, str) or not model.strip() or not isinstance(answers, list):
        raise InvalidInputError(
            f"replay file {str(where)!r} needs a 'model' (who answered) and a list of "
            "'answers'; each answer is {'prompt': ..., 'answer': ...}."
        )
    recorded: dict[str, str] = {}
    for i, item in enumerate(answers):
        if not (
            isinstance(item, dict)
            and isinstance(item.get("prompt"), str)
            and isinstance(item.get("answer"), str)
        ):
            raise InvalidInputError(
                f"answers[{i}] of replay file {str(where)!r} is not "
                "{'prompt': text, 'answer': text}; fix or drop that entry."
            )
        recorded[prompt_key(item["prompt"])] = item["answer"]
    return model.strip(), recorded


class ReplayChatModel(ReplyChatModel):
    """Replies with the answer recorded for the prompt (see the module docstring)."""

    path: str
    #: The prompts asked that had no recorded answer, in order (for reports and tests).
    missed: list[str] = Field(default_factory=list)
    _answers: dict[str, str] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any) -> None:
        author, self._answers = load_recording(self.path)
        if self.model_name is None:
            self.model_name = f"{author} (recorded answers, replayed from {self.path})"

    @property
    def _llm_type(self) -> str:
        return "persona-replay"

    def _reply(self, messages: list[BaseMessage]) -> str:
        key = prompt_key("\n".join(m.text for m in messages))
        answer = self._answers.get(key)
        if answer is None:
            self.missed.append(key)
            raise ConnectionError(
                f"no answer recorded for this prompt in {self.path} ({key[:80]!r}...)"
            )
        return answer
