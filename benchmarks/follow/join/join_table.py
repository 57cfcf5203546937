"""The oracle before and after a separator change that was tried and reverted (session 25).

The hypothesis: the local model opened meeting emails with "TL;DR;" because the oracle's text
read "start with a one-line TL;DR; bullet points". The change (commit 177fb0b, reverted in the
next commit) joined such preferences with ", " instead. It made "TL;DR;" openings more frequent,
not less (8 of 14 meeting answers against 2, seeds 2-3), and the email oracle dearer: so the
layer still joins preferences with "; ".

Before: the oracle's preference was its atoms' descriptions joined with "; ", so a source whose
first atom is "start with a one-line TL;DR" was told "start with a one-line TL;DR; bullet
points; ...". After: joined as the layer now joins preferences
(:func:`persona.learn.guard.join_preferences`), with ", " when a description ends in a word
holding a semicolon. Both runs are SmolLM2-135M-Instruct in float32 with the shipped follow
adapter, 24 rounds per seed and task, 96 tokens, the scripted user.

Reads ``seed{N}/{task}.json`` here (no-learning and oracle, after) and the session-24 runs
(``../edit-facts/edits-shipped`` for seed 2, ``../edit-facts/seeds/seed{N}-llm`` for 3-5;
before), and writes ``summary.json``: per task and seed the cumulative costs, whether
no-learning reproduced round for round (the separator does not reach it), the pooled oracle
cut, and the paired per-round difference after - before of the oracle with its 95 % interval.

Usage, from the repository root: ``python benchmarks/follow/join/join_table.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from persona.bench.metrics import normal_interval

HERE = Path(__file__).parent
BEFORE = HERE.parent / "edit-facts"
TASKS = ("summarization", "email")
SEEDS = (2, 3, 4, 5)


def _results(path: Path) -> dict[str, dict]:
    doc = json.loads(path.read_text())
    return {r["learner"]: r | {"sources": doc["rounds_sources"]} for r in doc["results"]}


def _before(seed: int, task: str) -> dict[str, dict]:
    folder = BEFORE / "edits-shipped" if seed == 2 else BEFORE / "seeds" / f"seed{seed}-llm"
    return _results(folder / f"{task}.json")


def main() -> None:
    out: dict[str, object] = {
        "command": "python benchmarks/follow/join/join_table.py",
        "llm": "SmolLM2-135M-Instruct, float32, shipped follow adapter (both runs)",
    }
    for task in TASKS:
        per_seed: dict[int, dict[str, object]] = {}
        diffs: list[float] = []
        by_source: dict[str, list[int]] = {}
        pooled = {"no-learning": 0, "oracle before": 0, "oracle after": 0}
        for seed in SEEDS:
            path = HERE / f"seed{seed}" / f"{task}.json"
            if not path.is_file():
                continue
            after, before = _results(path), _before(seed, task)
            nl, old, new = after["no-learning"], before["oracle"], after["oracle"]
            per_seed[seed] = {
                "no-learning": nl["cumulative_cost"],
                "no-learning reproduced": nl["costs"] == before["no-learning"]["costs"],
                "oracle before": old["cumulative_cost"],
                "oracle after": new["cumulative_cost"],
                "rounds changed": sum(a != b for a, b in zip(old["answers"], new["answers"], strict=True)),
            }
            pooled["no-learning"] += nl["cumulative_cost"]
            pooled["oracle before"] += old["cumulative_cost"]
            pooled["oracle after"] += new["cumulative_cost"]
            for src, a, b in zip(nl["sources"], old["costs"], new["costs"], strict=True):
                diffs.append(b - a)
                by_source.setdefault(src, [0, 0])
                by_source[src][0] += a
                by_source[src][1] += b
        if not per_seed:
            continue
        out[task] = {
            "seeds": per_seed,
            "pooled": pooled,
            "oracle_cut_before": round(1 - pooled["oracle before"] / pooled["no-learning"], 3),
            "oracle_cut_after": round(1 - pooled["oracle after"] / pooled["no-learning"], 3),
            "after_minus_before_per_round_95ci": normal_interval(diffs),
            "oracle_cost_by_source_before_after": by_source,
        }
    (HERE / "summary.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
