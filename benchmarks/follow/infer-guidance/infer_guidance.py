"""Context-aware decoding for CIPHER's inference prompt, on the follow bench's edits (session 13).

Tried, not shipped (see the README, "The follow adapter"). CIPHER's inference prompt shows the
original answer, the user's revision and a word diff. The local model names "short sentences"
for almost any edit: its prior. Context-aware decoding (Shi et al. 2023) guides each token
away from a prompt without the evidence, with persona's guidance processor (scale, kept
plausible). Negatives tried:

- ``q``: the question alone;
- ``orig``: the original answer and the question, no revision;
- ``noedit``: the full prompt with the revision equal to the answer and no changes.

The configuration is chosen on the training atom types, then measured once on the held-out
ones. Usage, from the repository root (about 10 minutes per guided configuration on 2 cores)::

    python benchmarks/follow/infer-guidance/infer_guidance.py train plain q:2 orig:2 noedit:2
    python benchmarks/follow/infer-guidance/infer_guidance.py held_out plain noedit:2

It writes ``<split>.json`` beside itself. The edited answers are the base model's plain answers
to the 27 evaluation inputs (as in ``persona bench follow``); the inferring model is the
local SmolLM2-135M with the shipped follow adapter.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from persona.agents.models import LocalChatModel, ensure_local_model
from persona.bench.edits import model_label
from persona.bench.machine import machine_info
from persona.errors import LearningError
from persona.follow.evaluate import base_edits
from persona.follow.generate import generate
from persona.follow.phrases import atom_type
from persona.learn import prompts
from persona.learn.cipher_text import clean_phrase, infer_prompt
from persona.store.embed import embedder_id, load_embedder

HERE = Path(__file__).parent
QUESTION = "Based on the user's" + prompts.CIPHER_INFER.split("Based on the user's")[1]


def negative(kind: str, answer: str) -> str:
    if kind == "q":
        return QUESTION
    if kind == "orig":
        return f"Original answer:\n{answer}\n\n{QUESTION}"
    if kind == "noedit":
        return prompts.CIPHER_INFER.format(
            output=answer, edited=answer, diff="(no changes)", facts=""
        )
    raise SystemExit(f"unknown negative {kind!r}: use q, orig or noedit")


def main(split: str, configs: list[str]) -> None:
    torch.set_num_threads(2)
    folder = str(ensure_local_model())
    _, _, sets, every_pair = base_edits(folder)
    pairs = [p for p in every_pair if p[0] == split]
    base = LocalChatModel(model_dir=folder, follow_adapter=False)
    embedder = load_embedder()
    every = {atom_type(a): a.description for s in sets.values() for a in s}
    names, vecs = list(every), embedder.embed(list(every.values()))
    adapter = LocalChatModel(model_dir=folder, follow_adapter=True)
    model, tokenizer = adapter.load()
    asked = [
        infer_prompt(a, e, facts=False) for _, _, a, e in pairs
    ]
    results = {}
    for config in configs:
        start = time.perf_counter()
        if config == "plain":
            raws = generate(model, tokenizer, asked, max_new_tokens=40)
        else:
            kind, scale = config.split(":")
            negatives = [negative(kind, a) for _, _, a, _ in pairs]
            raws = generate(
                model,
                tokenizer,
                asked,
                max_new_tokens=40,
                negatives=negatives,
                guidance_scale=float(scale),
            )
        hits: dict[str, list[bool]] = {}
        samples = []
        for (_, atom, _, _), raw in zip(pairs, raws, strict=True):
            try:
                phrase = clean_phrase(raw)
            except LearningError:
                phrase = ""
            right = bool(phrase) and names[
                int(np.argmax(vecs @ embedder.embed([phrase])[0]))
            ] == atom_type(atom)
            hits.setdefault(atom.name, []).append(right)
            samples.append([atom.name, phrase or raw[:60]])
        every_hit = [h for v in hits.values() for h in v]
        results[config] = {
            "accuracy": round(float(np.mean(every_hit)), 3),
            "per_atom": {k: round(float(np.mean(v)), 3) for k, v in hits.items()},
            "seconds": round(time.perf_counter() - start, 1),
            "samples": samples,
        }
        print(config, results[config]["accuracy"], flush=True)  # noqa: T201
    doc = {
        "split": split,
        "pairs": len(pairs),
        "llm": model_label(adapter),
        "edited_answers_by": model_label(base),
        "embedder": embedder_id(embedder),
        "results": results,
        "machine": machine_info(),
        "command": "python benchmarks/follow/infer-guidance/infer_guidance.py "
        + " ".join(sys.argv[1:]),
    }
    (HERE / f"{split}.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or ["plain"])
