"""An LLM judge for the qualitative feedbacks of ``persona bench feedback``.

A quantitative feedback ("at most five sentences") has a programmatic checker; a qualitative
one ("keep bedtime stories calm at the end") needs a reader. As in C3PO's evaluation, an LLM
reads each answer and says whether it does what the feedback asks, whether or not the
feedback was meant for that request (on near- and out-of-scope requests, a "yes" is
over-generalization). The judge sees the feedback, the request and the answer, never which
method produced it. A reply that is neither yes nor no is no verdict (``None``: the answer is
not counted) and is counted in :attr:`LLMJudge.unparsed`.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage

from persona.llm import complete

JUDGE_PROMPT = """\
A user gave an assistant this feedback:
"{feedback}"

The user then sent this request:
{request}

The assistant answered:
{answer}

Does the answer do what the feedback asks? Judge that alone, whether or not the feedback was \
meant for this request. Reply with one word: yes or no."""

_VERDICT = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


class LLMJudge:
    """Says whether an answer follows a feedback; each distinct question is asked once."""

    def __init__(self, llm: BaseChatModel, max_tokens: int = 8) -> None:
        self.llm = llm
        self.max_tokens = max_tokens
        self.calls = 0
        self.unparsed = 0
        self._verdicts: dict[tuple[str, str, str], bool | None] = {}
        self._lock = threading.Lock()

    def __call__(self, feedback: dict[str, Any], request: str, answer: str) -> bool | None:
        key = (str(feedback["text"]), request, answer)
        with self._lock:
            if key in self._verdicts:
                return self._verdicts[key]
        prompt = JUDGE_PROMPT.format(
            feedback=key[0].strip(), request=request.strip(), answer=answer.strip() or "(empty)"
        )
        reply = complete(self.llm, [HumanMessage(prompt)], max_tokens=self.max_tokens).text
        found = _VERDICT.match(reply)
        verdict = None if found is None else found.group(1).lower() == "yes"
        with self._lock:
            self.calls += 1
            self.unparsed += verdict is None
            self._verdicts[key] = verdict
        return verdict
