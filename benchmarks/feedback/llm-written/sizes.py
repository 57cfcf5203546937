"""How scope accuracy grows with the number of example requests an LLM writes.

Each feedback's dataset is built from the recorded answers (4 categories, and 8: see
``record.py``), then its in-scope and near-scope training prompts are subsampled to N each
(three seeds below the full set), and the scope model, with the shipped combiners and threshold,
decides every held-out request of the benchmark set:

    python benchmarks/feedback/llm-written/sizes.py [dev test fresh]

Writes ``sizes.json`` beside this file (MiniLM; the machine and the command are recorded).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

from persona.agents.models import load_chat_model
from persona.bench.feedback import GROUPS
from persona.bench.feedback_checks import load_feedback_set
from persona.bench.machine import machine_info
from persona.learn.c3po import scope_model_for
from persona.learn.c3po_data import DatasetBuilder, DatasetConfig
from persona.learn.request_words import request_words
from persona.store.embed import embedder_id, load_embedder

HERE = Path(__file__).parent
#: (categories the LLM wrote, examples kept per side; None = all of them)
POINTS = [(4, 0), (4, 2), (4, 4), (4, 8), (4, 12), (4, None), (8, 24), (8, None)]
SEEDS = 3


def _kept(data: dict[str, Any], n: int | None, seed: int) -> dict[str, Any]:
    if n is None:
        return data
    rng = random.Random(seed)
    out = json.loads(json.dumps(data))
    for side in ("in_scope", "near_scope"):
        train = out[side]["train"]
        out[side]["train"] = rng.sample(train, min(n, len(train)))
    return out


def main(splits: list[str]) -> None:
    emb = load_embedder("minilm")
    llm = load_chat_model(f"replay:{HERE / 'replay.json'}")
    result: dict[str, Any] = {"embedder": embedder_id(emb), "llm": llm.model_name, "splits": {}}
    for split in splits:
        right = [0] * len(POINTS)
        total = [0] * len(POINTS)
        kept = [0] * len(POINTS)
        feedbacks = load_feedback_set(split)
        for fb in feedbacks:
            held = [(t, g == "in_scope") for g in GROUPS for t in fb[g]]
            vecs = emb.embed([t for t, _ in held])
            words = [emb.embed(request_words(t)) for t, _ in held]
            datasets = {
                c: DatasetBuilder(llm, DatasetConfig(categories=c)).build(fb["text"])[0]
                for c in (4, 8)
            }
            for i, (categories, n) in enumerate(POINTS):
                for seed in range(SEEDS if n else 1):
                    data = _kept(datasets[categories], n, seed)
                    model = scope_model_for(data, emb)
                    kept[i] += len(data["in_scope"]["train"])
                    for (_, applies), vec, w in zip(held, vecs, words, strict=True):
                        right[i] += model.decide(vec, w).applies == applies
                        total[i] += 1
        runs = [SEEDS if n else 1 for _, n in POINTS]
        result["splits"][split] = [
            {
                "categories": c,
                "kept_per_side": n if n is not None else "all",
                "mean_in_scope_examples": round(kept[i] / (runs[i] * len(feedbacks)), 1),
                "scope_accuracy": round(right[i] / total[i], 3),
            }
            for i, (c, n) in enumerate(POINTS)
        ]
        sys.stdout.write(f"{split}: {[p['scope_accuracy'] for p in result['splits'][split]]}\n")
    result |= {"machine": machine_info(), "command": "python " + " ".join(sys.argv)}
    (HERE / "sizes.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:] or ["dev", "test", "fresh"])
