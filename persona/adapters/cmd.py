"""``persona train-adapters`` and ``persona serve-config`` (registered by :mod:`persona.cli`)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import typer

from persona.cli_common import FOLLOW_ADAPTER_DIR, err, errors, fail, follow_choice, out


def _location(ctx: typer.Context, store: str | None) -> str | None:
    """``--store`` if given, else the global ``--path`` (None: $PERSONA_HOME)."""
    if store is not None:
        return store
    path = getattr(ctx.obj, "path", None)
    return None if path is None else str(path)


def train_adapters_cmd(
    ctx: typer.Context,
    users: list[str] = typer.Option(
        [], "--users", "-u", help="A user to train (repeat the option for several)."
    ),
    all_users: bool = typer.Option(False, "--all", help="Every user in the store."),
    min_signals: int = typer.Option(
        1, help="Skip users with fewer edits + feedback + labels than this."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show who would be trained and why."),
    resume: bool = typer.Option(
        False, "--resume", help="Skip users whose adapter is up to date (continue a killed run)."
    ),
    workers: int = typer.Option(1, help="Users trained at once (processes, or Ray tasks)."),
    ray: str | None = typer.Option(
        None, "--ray", help="Run each user as a Ray task: 'local', 'auto' or a cluster address."
    ),
    store: str | None = typer.Option(
        None, "--store", help="A data directory, .db file or postgresql:// URL (default --path)."
    ),
    base: Path | None = typer.Option(
        None, help="A transformers model folder. Default: the packaged SmolLM2 + follow adapter."
    ),
    follow_adapter: bool = typer.Option(
        True,
        "--follow-adapter/--no-follow-adapter",
        help="Train on the packaged model with persona's follow adapter merged (default) or "
        "without it: the weights the app serves (`persona ui`'s same options).",
    ),
    follow_adapter_dir: Path | None = FOLLOW_ADAPTER_DIR,
    rank: int = typer.Option(16, help="LoRA rank."),
    alpha: int = typer.Option(32, help="LoRA alpha."),
    targets: str = typer.Option(
        "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", help="LoRA target modules."
    ),
    epochs: float = typer.Option(3.0, help="Passes over the user's pairs."),
    max_steps: int = typer.Option(-1, help="> 0: stop after this many steps (overrides epochs)."),
    learning_rate: float = typer.Option(1e-4, help="Learning rate."),
    batch_size: int = typer.Option(4, help="Pairs per step."),
    gradient_accumulation: int = typer.Option(1, help="Steps accumulated per optimizer step."),
    gradient_checkpointing: bool = typer.Option(
        False, help="Trade compute for memory (a 7B base on one GPU)."
    ),
    seed: int = typer.Option(0, help="Seed of LoRA init and data order."),
) -> None:
    """Train per-user LoRA adapters (DPO on the user's pairs + C3PO's constraint terms).

    Exits 1 if any user failed; the others are trained regardless.
    """
    from persona.adapters import batch
    from persona.adapters.train import AdapterConfig

    if all_users == bool(users):
        raise fail("name users with --users ID (repeatable) or pass --all, not both.")
    location = _location(ctx, store)
    with errors():
        cfg = AdapterConfig(
            base=str(base) if base else None,
            follow_adapter=follow_choice(follow_adapter, follow_adapter_dir),
            rank=rank,
            alpha=alpha,
            targets=tuple(t.strip() for t in targets.split(",") if t.strip()),
            epochs=epochs,
            max_steps=max_steps,
            learning_rate=learning_rate,
            batch_size=batch_size,
            gradient_accumulation=gradient_accumulation,
            gradient_checkpointing=gradient_checkpointing,
            seed=seed,
        ).check()
        with batch.open_store(location) as (st, home):
            jobs = batch.plan(
                st, home, users or None, min_signals=min_signals, resume=resume, config=cfg
            )
        _show_plan(jobs)
        if dry_run or not any(j.train for j in jobs):
            return
        outcomes = _train_with_progress(jobs, location, cfg, workers, ray)
    failed = [o for o in outcomes if not o.ok]
    for o in outcomes:
        if o.ok:
            acc = (
                f"held-out pair accuracy {o.accuracy_before} -> {o.accuracy_after}"
                if o.accuracy_before is not None
                else "no held-out pairs yet"
            )
            loss = "" if o.loss is None else f", loss {o.loss:.3f}"
            out.print(f"{o.user_id}: {o.steps} steps, {o.seconds:.0f} s{loss}, {acc}", markup=False)
        else:
            err.print(f"{o.user_id}: FAILED: {o.error}", style="red", markup=False)
    out.print(f"{len(outcomes) - len(failed)} trained, {len(failed)} failed", markup=False)
    if failed:
        raise typer.Exit(1)


def _show_plan(jobs: list[Any]) -> None:
    for job in jobs:
        verb = "train" if job.train else "skip "
        out.print(f"{verb} {job.user_id}  ({job.signals} signals; {job.reason})", markup=False)


def _train_with_progress(
    jobs: list[Any], location: str | None, cfg: Any, workers: int, ray: str | None
) -> list[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from persona.adapters import batch

    todo = [j for j in jobs if j.train]
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    ]
    with Progress(*columns, console=err) as progress:
        bar = progress.add_task("users", total=len(todo), status="")

        def on_event(user: str, event: str, value: Any) -> None:
            if event == "step":
                progress.update(bar, status=f"{user}: loss {value:.3f}")
            elif event in ("done", "failed"):
                progress.advance(bar)
                state = "failed" if event == "failed" else "done"
                progress.update(bar, status=f"{user}: {state}")

        return batch.run(jobs, location, cfg, workers=workers, ray_address=ray, on_event=on_event)


def serve_config_cmd(
    ctx: typer.Context,
    engine: str = typer.Argument("vllm", help="The serving engine (vllm)."),
    model: str = typer.Option(
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        help="The base model the server loads (the one the adapters were trained on).",
    ),
    store: str | None = typer.Option(
        None, "--store", help="A data directory, .db file or postgresql:// URL (default --path)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the adapters as JSON instead."),
) -> None:
    """Print the server arguments that serve every trained user adapter (names = safe user
    keys, the model name the layer asks for)."""
    from persona.adapters import batch
    from persona.adapters.train import adapter_dir, read_record

    if engine != "vllm":
        raise fail(f"engine {engine!r} is not supported; use vllm.")
    with errors(), batch.open_store(_location(ctx, store)) as (st, home):
        found, ranks = {}, [8]
        for user in st.users():
            folder = adapter_dir(home, user)
            record = read_record(home, user)
            if record is not None:
                found[folder.name] = str(folder.resolve())
                ranks.append(int((record.get("config") or {}).get("rank") or 8))
    if as_json:
        out.print(json.dumps(found, indent=2), markup=False)
        return
    if not found:
        raise fail("no trained adapters in this store; run `persona train-adapters` first.")
    rank = next(r for r in (8, 16, 32, 64, 128, 256, 512) if r >= max(ranks))  # vLLM's sizes
    modules = " ".join(shlex.quote(f"{name}={path}") for name, path in sorted(found.items()))
    out.print(
        f"vllm serve {shlex.quote(model)} --enable-lora --max-lora-rank {rank} "
        f"--max-loras {min(len(found), 8)} --lora-modules {modules}",
        markup=False,
        soft_wrap=True,
    )
