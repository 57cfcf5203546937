"""Score stored answers again with today's scripted user (session 25).

The scripted user is stateless: its edit of an answer depends on the round's context and the
answer alone. So for learners whose answers do not depend on the user's earlier edits
(no-learning and the oracle), the cost of every stored round can be computed again, exactly,
after the user changes. A learner that learns from the edits (CIPHER) must be run again.

For each edit table given, the script rebuilds its rounds (task, seed, rounds from the
table's config), checks that the stored contexts' sources match, and writes the cost of each
stored answer under today's user beside the cost stored. Before a change to the user, run it
to check that it reproduces the stored costs (``--check``).

Usage, from the repository root:
``python benchmarks/follow/scripted-user/rescore.py --out OUT.json TABLE.json ...``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from persona.bench.env import sample_rounds
from persona.bench.metrics import edit_distance
from persona.bench.users import ScriptedUser

LEARNERS = ("no-learning", "oracle")


def rescore(path: Path) -> dict[str, object]:
    doc = json.loads(path.read_text())
    config = doc["config"]
    rounds = sample_rounds(config["task"], config["rounds"], config["seed"])
    if [c.source for c in rounds] != doc["rounds_sources"]:
        raise SystemExit(f"{path}: its rounds are not those of seed {config['seed']}")
    user = ScriptedUser()
    out: dict[str, object] = {"task": config["task"], "seed": config["seed"]}
    for res in doc["results"]:
        if res["learner"] not in LEARNERS:
            continue
        costs = [
            edit_distance(answer, user.edit(ctx, answer))
            for ctx, answer in zip(rounds, res["answers"], strict=True)
        ]
        out[res["learner"]] = {
            "stored": res["costs"],
            "today": costs,
            "stored_total": sum(res["costs"]),
            "today_total": sum(costs),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tables", nargs="+", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--check", action="store_true", help="fail unless costs reproduce")
    args = parser.parse_args()
    tables = [p for p in args.tables if json.loads(p.read_text()).get("benchmark") == "edits"]
    rows = {str(path): rescore(path) for path in tables}
    if args.check:
        for name, row in rows.items():
            for learner in LEARNERS:
                r = row.get(learner)
                if isinstance(r, dict) and r["stored"] != r["today"]:
                    raise SystemExit(f"{name} {learner}: costs differ from the stored ones")
        print(f"{len(rows)} tables: every stored cost reproduces")
    if args.out:
        args.out.write_text(json.dumps({**rows, "pooled": pooled(rows)}, indent=1) + "\n")


def pooled(rows: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    """Per task, the stored and today's totals summed over the tables, and the oracle's cut
    against no-learning under each user."""
    out: dict[str, dict[str, object]] = {}
    for row in rows.values():
        task = out.setdefault(str(row["task"]), {"tables": 0})
        task["tables"] = int(task["tables"]) + 1  # type: ignore[call-overload]
        for learner in LEARNERS:
            r = row.get(learner)
            if isinstance(r, dict):
                for when in ("stored", "today"):
                    key = f"{learner} {when}"
                    task[key] = int(task.get(key, 0)) + r[f"{when}_total"]  # type: ignore[call-overload]
    for task in out.values():
        for when in ("stored", "today"):
            if f"oracle {when}" in task and f"no-learning {when}" in task:
                cut = 1 - int(task[f"oracle {when}"]) / int(task[f"no-learning {when}"])  # type: ignore[call-overload]
                task[f"oracle cut {when}"] = round(cut, 3)
    return out


if __name__ == "__main__":
    main()
