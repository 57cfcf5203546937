"""The follow adapter trained on follow-data-6 against the shipped one, in the edit table
(session 26).

Both: SmolLM2-135M-Instruct in float32, 24 rounds per seed and task, 96 tokens, MiniLM, the
corrected scripted user. The shipped adapter's no-learning and oracle costs are the stored
answers scored again (``../scripted-user/rescored.json``); the data-6 adapter's were run
(``seed{N}/``). Per task: cumulative costs per seed and pooled, the oracle's cut against
no-learning, the paired per-round difference oracle - no-learning with its 95 % interval, and
the share of the user's atoms the answers meet (``atoms_kept.py``).

Usage, from the repository root: ``python benchmarks/follow/data-6/table.py``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from persona.bench.metrics import normal_interval

HERE = Path(__file__).parent
RESCORED = HERE.parent / "scripted-user" / "rescored.json"
TASKS = ("summarization", "email")
LEARNERS = ("no-learning", "oracle")


def _atoms_kept() -> object:
    path = HERE.parent / "scripted-user" / "atoms_kept.py"
    spec = importlib.util.spec_from_file_location("atoms_kept", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    seeds = sorted(int(p.name[4:]) for p in HERE.glob("seed*") if p.is_dir())
    rescored = json.loads(RESCORED.read_text())
    kept = _atoms_kept()
    out: dict[str, object] = {"command": "python benchmarks/follow/data-6/table.py"}
    for task in TASKS:
        shipped: dict[str, dict[int, list[int]]] = {}
        for row in rescored.values():
            if row.get("task") == task and row.get("seed") in seeds:
                for learner in LEARNERS:
                    shipped.setdefault(learner, {})[row["seed"]] = row[learner]["today"]
        data6: dict[str, dict[int, list[int]]] = {}
        tables = [HERE / f"seed{s}" / f"{task}.json" for s in seeds]
        for path in tables:
            doc = json.loads(path.read_text())
            for res in doc["results"]:
                data6.setdefault(res["learner"], {})[doc["config"]["seed"]] = res["costs"]
        row: dict[str, object] = {"seeds": seeds}
        for name, costs in (("shipped adapter (follow-data-1)", shipped), ("data-6", data6)):
            nl = [c for s in seeds for c in costs["no-learning"][s]]
            orc = [c for s in seeds for c in costs["oracle"][s]]
            row[name] = {
                "no-learning": {str(s): sum(costs["no-learning"][s]) for s in seeds}
                | {"pooled": sum(nl)},
                "oracle": {str(s): sum(costs["oracle"][s]) for s in seeds} | {"pooled": sum(orc)},
                "oracle cut": round(1 - sum(orc) / sum(nl), 3),
                "oracle - no-learning per round [low, mean, high]": normal_interval(
                    [o - n for o, n in zip(orc, nl, strict=True)]
                ),
            }
        row["atoms kept (data-6)"] = kept.kept(tables)[task]  # type: ignore[attr-defined]
        out[task] = row
    (HERE / "summary.json").write_text(json.dumps(out, indent=1) + "\n")
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
