"""CIPHER-5 with the model's phrase against CIPHER-5 with the edit's wishes, over seeds
(session 24).

Reads the edit tables under ``seeds/`` (``seed{N}-llm``: no-learning, oracle and CIPHER-5 with
the model's phrase; ``seed{N}-facts``: CIPHER-5 with ``--cipher-infer facts``) and seed 2's
(``edits-shipped/`` and ``edits-wishes-v2/``), and writes ``seeds/summary.json``: per task the
cumulative costs per seed and pooled, the share of the no-learning -> oracle gap each CIPHER
closes, and the paired per-round difference facts - llm with its 95 % interval (rounds of all
seeds pooled; the same rounds, so the pairing is exact).

Usage, from the repository root: ``python benchmarks/follow/edit-facts/wishes_table.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

HERE = Path(__file__).parent
TASKS = ("summarization", "email")


def _load(folder: Path, task: str) -> dict[str, dict]:
    doc = json.loads((folder / f"{task}.json").read_text())
    infer = doc["config"].get("cipher_infer", "llm")
    return {
        (r["learner"] if r["learner"] != "cipher-5" else f"cipher-5 ({infer})"): r
        for r in doc["results"]
    }


def _runs(task: str) -> dict[int, dict[str, dict]]:
    seeds: dict[int, dict[str, dict]] = {2: {}}
    seeds[2].update(_load(HERE / "edits-shipped", task))
    seeds[2].update(
        {k: v for k, v in _load(HERE / "edits-wishes-v2", task).items() if k != "cipher-5-vote"}
    )
    for folder in sorted((HERE / "seeds").glob("seed*-*")):
        seed = int(folder.name[4:].split("-")[0])
        seeds.setdefault(seed, {}).update(_load(folder, task))
    return seeds


def _interval(diffs: list[float]) -> list[float]:
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = 1.96 * sd / math.sqrt(n)
    return [round(mean - half, 2), round(mean, 2), round(mean + half, 2)]


def main() -> None:
    out: dict[str, object] = {"command": "python benchmarks/follow/edit-facts/wishes_table.py"}
    for task in TASKS:
        seeds = _runs(task)
        names = ["no-learning", "oracle", "cipher-5 (llm)", "cipher-5 (facts)"]
        complete = {s: r for s, r in seeds.items() if all(n in r for n in names)}
        pooled = {n: sum(r[n]["cumulative_cost"] for r in complete.values()) for n in names}
        gap = pooled["no-learning"] - pooled["oracle"]
        diffs = [
            f - m
            for r in complete.values()
            for f, m in zip(
                r["cipher-5 (facts)"]["costs"], r["cipher-5 (llm)"]["costs"], strict=True
            )
        ]
        out[task] = {
            "seeds": sorted(complete),
            "cumulative_cost": {
                s: {n: r[n]["cumulative_cost"] for n in names} for s, r in complete.items()
            },
            "preference_accuracy": {
                s: {n: round(r[n]["preference_accuracy"], 3) for n in names[2:]}
                for s, r in complete.items()
            },
            "pooled": pooled,
            "oracle_cut": round(1 - pooled["oracle"] / pooled["no-learning"], 3),
            "gap_closed": {
                n: round((pooled["no-learning"] - pooled[n]) / gap, 3) for n in names[2:]
            },
            "facts_minus_llm_per_round_95ci": _interval(diffs),
        }
    path = HERE / "seeds" / "summary.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))  # noqa: T201


if __name__ == "__main__":
    main()
