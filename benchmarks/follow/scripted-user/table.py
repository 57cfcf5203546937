"""The 4-seed edit table under the corrected scripted user (session 25).

No-learning and the oracle are the session-24 answers scored again (``rescored.json``, made by
``rescore.py``); CIPHER-5 was run again (``seed{N}-llm``: the model's phrase; ``seed{N}-facts``:
the wishes, what the local model's layer uses by default). SmolLM2-135M-Instruct in float32
with the shipped follow adapter, 24 rounds per seed and task, 96 tokens, MiniLM.

Writes ``summary.json``: per task the cumulative cost per seed and pooled, the oracle's cut,
the share of the no-learning -> oracle gap each CIPHER-5 closes (none when the oracle costs
more than no-learning), and each learner's paired
per-round difference from no-learning with its 95 % interval (96 rounds).

Usage, from the repository root: ``python benchmarks/follow/scripted-user/table.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from persona.bench.metrics import normal_interval

HERE = Path(__file__).parent
SEEDS = (2, 3, 4, 5)
TASKS = ("summarization", "email")
CIPHER = {"llm": "cipher-5 (model's phrase)", "facts": "cipher-5 (wishes)"}


def main() -> None:
    rescored = json.loads((HERE / "rescored.json").read_text())
    out: dict[str, object] = {"command": "python benchmarks/follow/scripted-user/table.py"}
    for task in TASKS:
        costs: dict[str, dict[int, list[int]]] = {}
        for row in rescored.values():
            if row.get("task") == task and row.get("seed") in SEEDS:
                for learner in ("no-learning", "oracle"):
                    costs.setdefault(learner, {})[row["seed"]] = row[learner]["today"]
        accuracy: dict[str, dict[int, float]] = {}
        for kind, label in CIPHER.items():
            for seed in SEEDS:
                path = HERE / f"seed{seed}-{kind}" / f"{task}.json"
                if path.is_file():
                    [res] = json.loads(path.read_text())["results"]
                    costs.setdefault(label, {})[seed] = res["costs"]
                    accuracy.setdefault(label, {})[seed] = round(res["preference_accuracy"], 3)
        seeds = [s for s in SEEDS if all(s in by_seed for by_seed in costs.values())]
        pooled = {k: sum(sum(v[s]) for s in seeds) for k, v in costs.items()}
        base = [c for s in seeds for c in costs["no-learning"][s]]
        gap = pooled["no-learning"] - pooled["oracle"]
        out[task] = {
            "seeds": seeds,
            "cumulative_cost": {k: {s: sum(v[s]) for s in seeds} for k, v in costs.items()},
            "pooled": pooled,
            "oracle_cut": round(gap / pooled["no-learning"], 3),
            "gap_closed": {
                k: round((pooled["no-learning"] - pooled[k]) / gap, 2) if gap > 0 else None
                for k in costs
                if k.startswith("cipher")
            },
            "minus_no_learning_per_round_95ci": {
                k: normal_interval([c - b for c, b in zip((c for s in seeds for c in v[s]), base, strict=True)])
                for k, v in costs.items()
                if k != "no-learning"
            },
            "preference_accuracy": accuracy,
        }
    (HERE / "summary.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
