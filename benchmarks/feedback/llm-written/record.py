"""Turn the answers written for C3PO's dataset prompts into a replay file.

Helper agents (Claude, Anthropic) played the layer's LLM: for each benchmark feedback they
answered C3PO's four prompts (scope, categories, in-scope and near-scope requests per
category; `written-*.json`). They saw only the feedback texts and the prompts, never the
benchmark's held-out requests. This script runs persona's own dataset builder against those
answers, so the replay file holds exactly the prompts the builder sends, each with its answer:

    python benchmarks/feedback/llm-written/record.py
    persona bench feedback --llm replay:benchmarks/feedback/llm-written/replay.json --no-answers
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage

from persona.agents.fakes import ReplyChatModel
from persona.learn.c3po_data import DatasetBuilder, DatasetConfig

HERE = Path(__file__).parent
AUTHOR = (
    "Claude (Anthropic), as this project's helper agents, answering C3PO's dataset prompts "
    "(2026-11-30)"
)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


class Written(ReplyChatModel):
    """Answers a dataset prompt from the written answers, and records the pair."""

    written: dict[str, dict[str, Any]]
    log: list[dict[str, str]] = []

    @property
    def _llm_type(self) -> str:
        return "written-answers"

    def _reply(self, messages: list[BaseMessage]) -> str:
        prompt = messages[-1].text
        feedback = re.search(r'^"(.*)"$', prompt, re.MULTILINE)
        assert feedback, prompt
        item = self.written[feedback.group(1)]
        cat = re.search(r'category "(.*?)"(?:, to which| but to which)', prompt)
        if "In a short phrase" in prompt:
            answer = item["scope"]
        elif "categories of requests" in prompt:
            answer = "\n".join(item["categories"])
        else:
            assert cat, prompt
            side = "in_scope" if ", to which this feedback applies" in prompt else "near_scope"
            by_norm = {_norm(k): v for k, v in item[side].items()}
            answer = "\n".join(by_norm[_norm(cat.group(1))])
        self.log.append({"prompt": prompt, "answer": answer})
        return answer


def main() -> None:
    written: dict[str, dict[str, Any]] = {}
    for path in sorted(HERE.glob("written-*.json")):
        for item in json.loads(path.read_text(encoding="utf-8")):
            written[item["feedback"]] = item
    model = Written(written=written)
    cfg = DatasetConfig(categories=4, per_category=5)  # the benchmark's defaults
    for feedback in written:
        _, cost = DatasetBuilder(model, cfg).build(feedback)
        if cost.failed_steps:
            sys.stdout.write(f"{feedback!r}: {cost.failed_steps}\n")
    record = {"model": AUTHOR, "answers": model.log}
    (HERE / "replay.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    sys.stdout.write(f"{len(model.log)} prompts recorded for {len(written)} feedbacks\n")


if __name__ == "__main__":
    main()
