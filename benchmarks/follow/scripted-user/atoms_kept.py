"""Which of the user's atoms the stored answers satisfy, per atom (session 26).

For every stored edit table given, the rounds are rebuilt (task, seed and rounds from the
table's config) and each answer of no-learning and the oracle is checked against every atom of
its round's latent preference, with the checkers the scripted user edits by. The share of
answers that pass, per task, atom and learner, says which parts of a stated preference the
model applies (the oracle) beyond what it writes anyway (no-learning).

Usage, from the repository root:
``python benchmarks/follow/scripted-user/atoms_kept.py --out OUT.json TABLE.json ...``
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from persona.bench.env import get_source, sample_rounds

LEARNERS = ("no-learning", "oracle")


def kept(paths: list[Path]) -> dict[str, dict[str, dict[str, object]]]:
    # task -> atom -> learner -> [passed, answers]
    counts: dict[str, dict[str, dict[str, list[int]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: [0, 0]))
    )
    for path in paths:
        doc = json.loads(path.read_text())
        if doc.get("benchmark") != "edits":
            continue
        config = doc["config"]
        rounds = sample_rounds(config["task"], config["rounds"], config["seed"])
        if [c.source for c in rounds] != doc["rounds_sources"]:
            raise SystemExit(f"{path}: its rounds are not those of seed {config['seed']}")
        for res in doc["results"]:
            if res["learner"] not in LEARNERS:
                continue
            for ctx, answer in zip(rounds, res["answers"], strict=True):
                for atom in get_source(ctx.task, ctx.source).atoms:
                    row = counts[ctx.task][atom.name][res["learner"]]
                    row[0] += int(atom.check(answer))
                    row[1] += 1
    return {
        task: {
            atom: {
                learner: {"passed": p, "answers": n, "share": round(p / n, 3)}
                for learner, (p, n) in by_learner.items()
            }
            for atom, by_learner in sorted(atoms.items())
        }
        for task, atoms in sorted(counts.items())
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tables", nargs="+", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    table = kept(args.tables)
    for task, atoms in table.items():
        print(task)
        for atom, row in atoms.items():
            cells = "  ".join(
                f"{learner} {r['passed']}/{r['answers']}"  # type: ignore[index]
                for learner, r in row.items()
            )
            print(f"  {atom:<20} {cells}")
    if args.out:
        args.out.write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()
