"""A follow adapter's edit table against follow-data-1's, under today's scripted user.

For an adapter folder ``DIR`` (e.g. ``benchmarks/follow/data-6``) holding edit tables
``DIR/seed{N}/{task}.json`` (no-learning and oracle) and, optionally,
``DIR/cipher/seed{N}/{task}.json`` (CIPHER-5, the LLM aggregating) and
``DIR/cipher-vote/seed{N}/{task}.json`` (CIPHER-5 by vote, the layer's default), each also
with the edit's counted changes in the inference prompt (``cipher-facts``,
``cipher-vote-facts``; ``--edit-facts``), and CIPHER-5 keeping the best of 6 inferred
phrases (``cipher-candidates``; ``--infer-candidates 6``), and CIPHER-5 since session 31,
which drops a length limit the user's revision breaks (``cipher-limits``).

Per task: cumulative costs per seed and pooled, the oracle's cut against no-learning, the
paired per-round difference oracle - no-learning with its 95 % interval, the share of the
no-learning -> oracle gap each CIPHER-5 closes, and the share of the user's atoms the
answers meet (``scripted-user/atoms_kept.py``).

No-learning and oracle answers do not depend on earlier edits, so their stored answers are
scored again with today's user (``scripted-user/rescore.py``): follow-data-1's (shipped
until session 28) from the tables named in ``scripted-user/rescored.json`` (float32, seeds
2-5), and the adapter's own.
CIPHER-5 learns from the edits: its stored costs are used, and they are today's user's only
if the run was (its command and date are in its table).

Usage, from the repository root: ``python benchmarks/follow/edit_table.py DIR``
(writes ``DIR/summary.json``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from persona.bench.metrics import normal_interval

HERE = Path(__file__).parent
SHIPPED = HERE / "scripted-user" / "rescored.json"
TASKS = ("summarization", "email")
LEARNERS = ("no-learning", "oracle")
#: CIPHER rows (and the oracle with an option): name -> (the learner in the tables, their
#: folder under DIR).
CIPHERS = {
    "cipher-5": ("cipher-5", "cipher"),
    "cipher-5-vote": ("cipher-5-vote", "cipher-vote"),
    "cipher-5 + facts": ("cipher-5", "cipher-facts"),
    "cipher-5-vote + facts": ("cipher-5-vote", "cipher-vote-facts"),
    "cipher-5 + 6 candidates": ("cipher-5", "cipher-candidates"),
    "cipher-5, broken limits dropped": ("cipher-5", "cipher-limits"),
    "cipher-5, sentence-pooled contexts": ("cipher-5", "cipher-sentences"),
    "cipher-5-vote, contradicted features dropped": ("cipher-5-vote", "cipher-vote-features"),
    "cipher-5-vote, --cipher-infer facts": ("cipher-5-vote", "cipher-vote-wishes"),
    "cipher-5-vote, --cipher-infer both": ("cipher-5-vote", "cipher-vote-phrase-and-wishes"),
    "cipher-5, --cipher-infer facts": ("cipher-5", "cipher-wishes"),
    "cipher-5-vote, --cipher-infer facts, kept clauses": ("cipher-5-vote", "cipher-vote-wishes-kept"),
    "cipher-5, --cipher-infer facts --edit-facts": ("cipher-5", "cipher-wishes-edit-facts"),
    "oracle, --guidance 2": ("oracle", "oracle-guidance"),
    "cipher-5, --cipher-infer facts --edit-facts --guidance 2": (
        "cipher-5",
        "cipher-wishes-edit-facts-guidance",
    ),
    "oracle, --rerank 4": ("oracle", "oracle-rerank"),
    "cipher-5, --cipher-infer facts --edit-facts --rerank 4": (
        "cipher-5",
        "cipher-wishes-edit-facts-rerank",
    ),
}


def _script(name: str) -> ModuleType:
    path = HERE / "scripted-user" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _today(paths: list[Path]) -> dict[str, dict[int, list[int]]]:
    """learner -> seed -> per-round costs under today's user, for no-learning and oracle."""
    rescore = _script("rescore").rescore
    out: dict[str, dict[int, list[int]]] = {}
    for path in paths:
        row = rescore(path)
        for learner in LEARNERS:
            out.setdefault(learner, {})[row["seed"]] = row[learner]["today"]
    return out


def _stored(paths: list[Path], learner: str) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for path in paths:
        doc = json.loads(path.read_text())
        for res in doc["results"]:
            if res["learner"] == learner:
                out[doc["config"]["seed"]] = res["costs"]
    return out


def _row(costs: dict[str, dict[int, list[int]]], seeds: list[int]) -> dict[str, object]:
    pooled = {k: [c for s in seeds for c in v[s]] for k, v in costs.items()}
    row: dict[str, object] = {
        k: {str(s): sum(v[s]) for s in seeds} | {"pooled": sum(pooled[k])} for k, v in costs.items()
    }
    nl, orc = sum(pooled["no-learning"]), sum(pooled["oracle"])
    row["oracle cut"] = round(1 - orc / nl, 3)
    row["oracle - no-learning per round [low, mean, high]"] = normal_interval(
        [o - n for o, n in zip(pooled["oracle"], pooled["no-learning"], strict=True)]
    )
    for learner in CIPHERS:
        if learner in pooled:
            cost = sum(pooled[learner])
            row[f"{learner} cut"] = round(1 - cost / nl, 3)
            if CIPHERS[learner][0] != "oracle":  # a steered oracle has no gap of its own to close
                gap = round((nl - cost) / (nl - orc), 3) if nl != orc else None
                row[f"gap closed by {learner}"] = gap
    return row


def main() -> None:
    folder = Path(sys.argv[1])
    shipped_tables = [Path(k) for k in json.loads(SHIPPED.read_text()) if k != "pooled"]
    out: dict[str, object] = {"command": f"python benchmarks/follow/edit_table.py {folder}"}
    for task in TASKS:  # the seeds this task was run on
        seeds = sorted(int(p.parent.name[4:]) for p in folder.glob(f"seed*/{task}.json"))
        tables = [folder / f"seed{s}" / f"{task}.json" for s in seeds]
        costs = _today(tables)
        ciphers = {
            name: _stored(sorted((folder / sub).glob(f"seed*/{task}.json")), learner)
            for name, (learner, sub) in CIPHERS.items()
        }
        complete = {k: v for k, v in ciphers.items() if v and set(v) == set(seeds)}
        shipped = _today([p for p in shipped_tables if p.name == f"{task}.json"])
        row: dict[str, object] = {
            "seeds": seeds,
            "follow-data-1 (shipped until session 28)": _row(shipped, seeds),
            folder.name: _row(costs | complete, seeds),
        }
        for learner, cipher in ciphers.items():
            if cipher and set(cipher) < set(seeds):  # run on fewer seeds: its own row
                on = sorted(cipher)
                row[f"{folder.name}, {learner}, seeds {on}"] = _row(costs | {learner: cipher}, on)
        row[f"atoms kept ({folder.name})"] = _script("atoms_kept").kept(tables)[task]
        out[task] = row
    (folder / "summary.json").write_text(json.dumps(out, indent=1) + "\n")
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
