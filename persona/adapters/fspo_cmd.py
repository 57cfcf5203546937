"""``persona train fspo`` (registered by :mod:`persona.cli`)."""

from __future__ import annotations

from pathlib import Path

import typer

from persona.cli_common import err, errors, out
from persona.config import default_home


def train_fspo_cmd(
    users: int = typer.Option(64, help="Synthetic users (persona bench labels' users)."),
    heldout: int = typer.Option(24, help="Of them, held out: never trained on, measured."),
    shots: int = typer.Option(4, help="Pairs of the same user in each context (FSPO: 4 or 8)."),
    contexts: int = typer.Option(8, help="Contexts per meta-train user."),
    sft_steps: int = typer.Option(-1, help="SFT optimizer steps (-1: one epoch)."),
    ipo_steps: int = typer.Option(-1, help="IPO optimizer steps (-1: one epoch)."),
    batch_size: int = typer.Option(4, help="Rows per SFT step, pairs per IPO step."),
    eval_pairs: int = typer.Option(8, help="Test pairs measured per held-out user."),
    out_dir: Path | None = typer.Option(
        None,
        "--out",
        help="Adapter folder (with fspo.json). Default: <persona home>/adapters/fspo.",
    ),
    base: Path | None = typer.Option(
        None,
        help="A transformers model folder. Default: the local model (SmolLM2-135M-Instruct "
        "with the follow adapter merged).",
    ),
    seed: int = typer.Option(0, help="Seed of the users, the rows and training."),
    torch_threads: int | None = typer.Option(None, help="torch.set_num_threads for the run."),
) -> None:
    """Meta-train one shared FSPO LoRA on synthetic users (SFT then IPO, beta 0.01, users as
    tasks) and measure it on held-out users."""
    from rich.progress import Progress

    from persona.adapters.fspo import FSPOTrainConfig, train_fspo
    from persona.bench.labels import LabelsConfig, make_users

    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()  # the Rich bar below is the progress
    hf_logging.disable_progress_bar()
    target = out_dir or default_home() / "adapters" / "fspo"
    cfg = FSPOTrainConfig(
        shots=shots,
        contexts=contexts,
        sft_steps=sft_steps,
        ipo_steps=ipo_steps,
        batch_size=batch_size,
        eval_pairs=eval_pairs,
        seed=seed,
    )
    with errors():
        cfg.check()
        with Progress(console=err) as progress:
            bar = progress.add_task("synthetic users", total=users)
            labelled = make_users(
                LabelsConfig(users=users, heldout=heldout, seed=seed),
                tick=lambda n: progress.advance(bar, n),
            )
            steps = sft_steps + ipo_steps if sft_steps > 0 and ipo_steps > 0 else None
            measured = 2 * sum(min(eval_pairs, len(u.test)) for u in labelled)
            total = steps + measured if steps is not None else None
            bar = progress.add_task("SFT, IPO, held-out pairs", total=total)
            record = train_fspo(
                labelled,
                target,
                cfg,
                base=base,
                tick=lambda n: progress.advance(bar, n),
            )
    acc = record["heldout_implicit_accuracy"]
    per_step = record["seconds_per_step"]
    out.print(
        f"wrote {target} ({record['files_bytes'] / 1e6:.1f} MB; SFT {record['steps']['sft']} "
        f"steps at {per_step['sft']} s, IPO {record['steps']['ipo']} steps at "
        f"{per_step['ipo']} s)",
        markup=False,
    )
    out.print(
        f"held-out implicit accuracy ({record['heldout_pairs']} pairs of "
        f"{record['users']['heldout']} users): {acc['after_sft']} after SFT -> "
        f"{acc['after_ipo']} after IPO",
        markup=False,
    )
