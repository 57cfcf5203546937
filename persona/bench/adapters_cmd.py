"""``persona bench adapters`` (registered by :mod:`persona.cli`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from persona.cli_common import err, errors, out


def bench_adapters(
    users: int = typer.Option(3, help="Synthetic users (labels benchmark, held out) to train."),
    shots: int = typer.Option(8, help="Labeled pairs each user gives."),
    test_pairs: int = typer.Option(12, help="Held-out pairs measured per user."),
    max_steps: int = typer.Option(-1, help="> 0: optimizer steps per adapter (else epochs)."),
    epochs: float = typer.Option(3.0, help="Passes over a user's pairs."),
    constraint_prompts: int = typer.Option(4, help="Pool requests kept as SFT constraint."),
    answer_tokens: int = typer.Option(96, help="Tokens per generated constraint answer."),
    edits_rounds: int = typer.Option(0, help="Rounds of the edits benchmark per task (0: skip)."),
    every: int = typer.Option(5, help="The adapter learners retrain every R rounds."),
    max_tokens: int = typer.Option(96, help="Answer budget of the edits rounds."),
    tasks: str = typer.Option("summarization,email", help="Edits benchmark tasks."),
    learners: str = typer.Option(
        "no-learning,oracle,cipher-5,adapter-R,cipher-5+adapter-R",
        help="Edits learners (R is replaced by --every).",
    ),
    skip_train: bool = typer.Option(False, "--skip-train", help="No training part."),
    feedbacks: int = typer.Option(
        0, help="Quantitative feedbacks of the feedback benchmark to train and check (0: skip)."
    ),
    dtype: str = typer.Option(
        "auto",
        help="The served local model's dtype: auto | bfloat16 | float32 (bf16 collapses "
        "on a busy CPU).",
    ),
    out_dir: Path = typer.Option(Path("benchmarks/adapters"), "--out", help="Output folder."),
) -> None:
    """Per-user adapters on the local model: training cost, held-out pair accuracy with vs
    without the adapter, serving latencies, and the edits benchmark with adapter learners."""
    from rich.progress import Progress

    from persona.adapters.batch import _quiet
    from persona.adapters.train import AdapterConfig
    from persona.bench.adapters import TrainBenchConfig, run_adapters_bench

    command = "persona " + " ".join(sys.argv[1:])
    _quiet()
    with errors():
        adapter = AdapterConfig(
            max_steps=max_steps,
            epochs=epochs,
            constraint_prompts=constraint_prompts,
            answer_tokens=answer_tokens,
            test_share=0.0,
        ).check()
        names = [n.strip().replace("-R", f"-{every}") for n in learners.split(",") if n.strip()]
        task_list = [t.strip() for t in tasks.split(",") if t.strip()]
        edits = (
            {
                "tasks": task_list,
                "learners": names,
                "rounds": edits_rounds,
                "max_tokens": max_tokens,
            }
            if edits_rounds > 0
            else None
        )
        train = None if skip_train else TrainBenchConfig(users, shots, test_pairs)
        total = (
            (0 if train is None else users)
            + feedbacks
            + (edits_rounds * len(names) * len(task_list) if edits else 0)
        )
        with Progress(console=err) as progress:
            bar = progress.add_task("users trained, edit rounds", total=total)
            doc = run_adapters_bench(
                train=train,
                adapter=adapter,
                edits=edits,
                tick=lambda _: progress.advance(bar),
                dtype=dtype,
                feedbacks=feedbacks,
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "adapters.json"
    doc = _merge(path, doc, command)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    _plot(doc, out_dir)
    _show(doc)
    out.print(f"wrote {path}", markup=False)


def _merge(path: Path, doc: dict[str, Any], command: str) -> dict[str, Any]:
    """The parts this run measured replace those of the file; the others are kept, each
    with the command that measured it."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        old = {}
    commands = dict(old.get("commands") or {})
    for part in ("train", "serving", "edits", "feedback"):
        if part in doc:
            commands[part] = command
    return {**old, **doc, "commands": commands}


def _show(doc: dict[str, Any]) -> None:
    if doc.get("train"):
        s = doc["train"]["summary"]
        out.print(
            f"held-out pair accuracy: plain {s['accuracy_plain']} -> adapter "
            f"{s['accuracy_adapter']}; {s['seconds_per_user']} s/user, {s['seconds_per_step']} "
            f"s/step, peak {s['peak_memory_mb']} MB, {s['adapter_bytes'] / 1e6:.1f} MB/adapter",
            markup=False,
        )
    if doc.get("serving"):
        sv = doc["serving"]
        out.print(
            f"serving: load {sv['load_ms']['mean']} ms, switch p50 {sv['switch_ms']['p50']} ms, "
            f"{sv['ms_per_token']['base']} -> {sv['ms_per_token']['with_adapter']} ms/token, "
            f"mixed batch of {sv['mixed_batch']['rows']} x{sv['mixed_batch']['speedup']}",
            markup=False,
        )
    for row in doc.get("feedback") or []:
        if "error" in row:
            out.print(f"feedback {row['feedback']}: {row['error']}", markup=False)
            continue
        parts = [
            f"{g}: plain breaks {row[g]['plain_breaks']}/{row[g]['prompts']}, adapter fixes "
            f"{sum(bool(x) for x in row[g]['adapter_follows'])}"
            for g in ("in_scope", "out_of_scope")
        ]
        out.print(f"feedback {row['feedback']}: " + "; ".join(parts), markup=False)
    for task in doc.get("edits") or []:
        costs = ", ".join(f"{r['learner']} {r['cumulative_cost']}" for r in task["results"])
        rounds = task["config"]["rounds"]
        out.print(f"edits {task['task']} ({rounds} rounds): {costs}", markup=False)


def _plot(doc: dict[str, Any], out_dir: Path) -> None:
    """Loss curves per user and the edits benchmark's cumulative cost per learner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edits = doc.get("edits") or []
    panels = (1 if doc.get("train") else 0) + len(edits)
    if not panels:
        return
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6), squeeze=False)
    ax_iter = iter(axes[0])
    if doc.get("train"):
        ax = next(ax_iter)
        for row in doc["train"]["users"]:
            ax.plot(range(1, len(row["losses"]) + 1), row["losses"], label=row["user"])
        ax.set(title="per-user adapter: training loss", xlabel="step", ylabel="DPO + SFT terms")
        ax.legend(fontsize=7)
    for task in edits:
        ax = next(ax_iter)
        for r in task["results"]:
            total, curve = 0, []
            for c in r["costs"]:
                total += c
                curve.append(total)
            ax.plot(range(1, len(curve) + 1), curve, label=r["learner"])
        ax.set(title=f"edits: {task['task']}", xlabel="round", ylabel="cumulative edit cost")
        ax.legend(fontsize=7)
    fig.suptitle(doc["llm"], fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "adapters.png", dpi=110)
    plt.close(fig)
