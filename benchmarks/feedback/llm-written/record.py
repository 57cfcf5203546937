"""Turn the answers written for C3PO's dataset prompts into a replay file.

Helper agents (Claude, Anthropic) played the layer's LLM: for each benchmark feedback they
answered C3PO's four prompts (scope, categories, in-scope and near-scope requests per
category; `written-*.json`). They saw only the feedback texts and the prompts, never the
benchmark's held-out requests. This script runs persona's own dataset builder against those
answers, so the replay file holds exactly the prompts the builder sends, each with its answer:

    python benchmarks/feedback/llm-written/record.py
    persona bench feedback --llm replay:benchmarks/feedback/llm-written/replay.json --no-answers

Later helpers answered the same prompts for 4 more categories per feedback (`written8-*.json`:
4 new categories, each with 5 in-scope and 5 near-scope requests), so a dataset of 8
categories (`--categories 8`) replays too: its list of 8 categories is the first 4 and the 4
new ones, as one answer.
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


def _read(pattern: str) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    for path in sorted(HERE.glob(pattern)):
        for item in json.loads(path.read_text(encoding="utf-8")):
            items[item["feedback"]] = item
    return items


def _widened(first: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """One feedback's answers for 8 categories: the first 4, then the 4 written later."""
    return {
        **first,
        "categories": [*first["categories"], *more["categories"]],
        "in_scope": {**first["in_scope"], **more["in_scope"]},
        "near_scope": {**first["near_scope"], **more["near_scope"]},
    }


def _record(written: dict[str, dict[str, Any]], cfg: DatasetConfig) -> list[dict[str, str]]:
    model = Written(written=written, log=[])
    for feedback in written:
        _, cost = DatasetBuilder(model, cfg).build(feedback)
        if cost.failed_steps:
            sys.stdout.write(f"{feedback!r} ({cfg.categories} categories): {cost.failed_steps}\n")
    return model.log


def main() -> None:
    written = _read("written-*.json")
    more = _read("written8-*.json")
    wider = {f: _widened(item, more[f]) for f, item in written.items() if f in more}
    log = _record(written, DatasetConfig(categories=4, per_category=5))  # the defaults
    log += _record(wider, DatasetConfig(categories=8, per_category=5))
    unique = list({(a["prompt"], a["answer"]): a for a in log}.values())
    record = {"model": AUTHOR, "answers": unique}
    (HERE / "replay.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    sys.stdout.write(
        f"{len(unique)} prompts recorded for {len(written)} feedbacks ({len(wider)} with 8 "
        "categories)\n"
    )


if __name__ == "__main__":
    main()
