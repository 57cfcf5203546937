"""CIPHER-5 with the model's phrase against CIPHER-5 with the edit's wishes, over seeds
(session 24).

Reads the edit tables under ``seeds/`` (``seed{N}-llm``: no-learning, oracle and CIPHER-5 with
the model's phrase; ``seed{N}-facts``: CIPHER-5 with ``--cipher-infer facts``, wishes v2;
``seed{N}-facts-v3``: the same with wishes v3) and seed 2's (``edits-shipped/`` and
``edits-wishes-v2/``), and writes ``seeds/summary.json``: per task the
cumulative costs per seed and pooled, the share of the no-learning -> oracle gap each CIPHER
closes, and the paired per-round difference wishes - llm with its 95 % interval (rounds of all
seeds pooled; the same rounds, so the pairing is exact).

Usage, from the repository root: ``python benchmarks/follow/edit-facts/wishes_table.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from persona.bench.metrics import normal_interval

HERE = Path(__file__).parent
TASKS = ("summarization", "email")


def _load(folder: Path, task: str, label: str) -> dict[str, dict]:
    doc = json.loads((folder / f"{task}.json").read_text())
    return {(label if r["learner"] == "cipher-5" else r["learner"]): r for r in doc["results"]}


#: A run's folder -> the name its CIPHER-5 gets in the table.
LABELS = {
    "llm": "cipher-5 (llm)",
    "facts": "cipher-5 (wishes v2)",
    "facts-v3": "cipher-5 (wishes v3)",
}


def _runs(task: str) -> dict[int, dict[str, dict]]:
    seeds: dict[int, dict[str, dict]] = {2: {}}
    seeds[2].update(_load(HERE / "edits-shipped", task, LABELS["llm"]))
    v2 = _load(HERE / "edits-wishes-v2", task, LABELS["facts"])
    seeds[2][LABELS["facts"]] = v2[LABELS["facts"]]
    for folder in sorted((HERE / "seeds").glob("seed*-*")):
        seed, _, kind = folder.name[4:].partition("-")
        if (folder / f"{task}.json").is_file():
            seeds.setdefault(int(seed), {}).update(_load(folder, task, LABELS[kind]))
    return seeds


def main() -> None:
    out: dict[str, object] = {"command": "python benchmarks/follow/edit-facts/wishes_table.py"}
    for task in TASKS:
        seeds = _runs(task)
        names = ["no-learning", "oracle", *LABELS.values()]
        names = [n for n in names if all(n in r for r in seeds.values())]
        pooled = {n: sum(r[n]["cumulative_cost"] for r in seeds.values()) for n in names}
        gap = pooled["no-learning"] - pooled["oracle"]
        learners = [n for n in names if n.startswith("cipher")]
        out[task] = {
            "seeds": sorted(seeds),
            "cumulative_cost": {
                s: {n: r[n]["cumulative_cost"] for n in names} for s, r in seeds.items()
            },
            "preference_accuracy": {
                s: {n: round(r[n]["preference_accuracy"], 3) for n in learners}
                for s, r in seeds.items()
            },
            "learner_prompt_tokens": {
                s: {n: r[n]["tokens"]["learner_in"] for n in learners} for s, r in seeds.items()
            },
            "pooled": pooled,
            "oracle_cut": round(1 - pooled["oracle"] / pooled["no-learning"], 3),
            "gap_closed": {
                n: round((pooled["no-learning"] - pooled[n]) / gap, 3) for n in learners
            },
            "minus_llm_per_round_95ci": {
                n: normal_interval(
                    [
                        f - m
                        for r in seeds.values()
                        for f, m in zip(r[n]["costs"], r[LABELS["llm"]]["costs"], strict=True)
                    ]
                )
                for n in learners[1:]
            },
        }
    path = HERE / "seeds" / "summary.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))  # noqa: T201


if __name__ == "__main__":
    main()
