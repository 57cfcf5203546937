"""CIPHER's two prompts under the old and the new no-repeat rule (session 18).

Run from a checkout: ``PERSONA_DTYPE=float32 .venv/bin/python benchmarks/edits/no-repeat/ngram.py``.
Writes ``ngram.json`` beside this file: each prompt's greedy answer from SmolLM2-135M + the
shipped follow adapter with transformers' ``no_repeat_ngram_size=6`` (the prompt's n-grams
count: the rule until session 18), with the answer-only rule that replaced it, and with none.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from langchain_core.messages import HumanMessage

from persona.agents.models import LocalChatModel
from persona.bench.machine import machine_info
from persona.learn import prompts
from persona.learn.cipher_text import infer_prompt

PREFERENCES = [
    "start with a one-line TL;DR; bullet points; short sentences (at most 12 words each)",
    "start with a one-line TL;DR; bullet points",
    "a one-line TL;DR first; short sentences (at most 12 words each)",
]
OUTPUT = (
    "The team met on Monday to plan the launch. We agreed to move the date to May 3 "
    "because testing is late."
)
EDITED = (
    "TL;DR: launch moves to May 3.\n\n- The team met on Monday to plan the launch.\n"
    "- We moved the date to May 3.\n- Testing is late."
)
PROMPTS = {
    "aggregate": prompts.CIPHER_AGGREGATE.format(
        preferences="\n".join(f"- {p}" for p in PREFERENCES)
    ),
    "infer": infer_prompt(OUTPUT, EDITED, facts=False),
}


def answer(model: LocalChatModel, prompt: str, rule: str) -> str:
    net, tokenizer, gen, n_in, _ = model._prepare([HumanMessage(prompt)], [], max_tokens=50)
    if rule != "answer only":
        gen.pop("logits_processor", None)
    if rule == "prompt included":
        gen["no_repeat_ngram_size"] = 6
    out = net.generate(**gen)[0, n_in:]
    return str(tokenizer.decode(out, skip_special_tokens=True)).strip()


def main() -> None:
    model = LocalChatModel()
    rules = ("prompt included", "answer only", "none")
    doc = {
        "llm": "SmolLM2-135M-Instruct + follow adapter, " + model.resolved_dtype(),
        "answers": {
            name: {rule: answer(model, prompt, rule) for rule in rules}
            for name, prompt in PROMPTS.items()
        },
        "machine": machine_info(),
    }
    out = Path(__file__).with_name("ngram.json")
    out.write_text(json.dumps(doc, indent=1))
    sys.stdout.write(json.dumps(doc["answers"], indent=1) + "\n")


if __name__ == "__main__":
    main()
