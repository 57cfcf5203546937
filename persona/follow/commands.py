"""``persona train follow`` and ``persona bench follow`` (registered by :mod:`persona.cli`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from persona.cli_common import err, errors, out
from persona.config import default_home
from persona.errors import InvalidInputError


def train_follow_cmd(
    out_dir: Path = typer.Option(
        Path("follow-adapter"), "--out", help="Where the adapter and follow.json are written."
    ),
    work: Path | None = typer.Option(
        None,
        help="Work folder (answers, examples, checkpoints); a rerun resumes from it. "
        "Default: <persona home>/train/follow.",
    ),
    method: str = typer.Option("lora", help="lora | full (a full fine-tune; about 540 MB)."),
    rank: int = typer.Option(16, help="LoRA rank."),
    alpha: int = typer.Option(32, help="LoRA alpha."),
    lr: float | None = typer.Option(None, help="Learning rate (default 3e-4 LoRA, 3e-5 full)."),
    epochs: float = typer.Option(1.0, help="Passes over the training examples."),
    max_steps: int = typer.Option(-1, help="> 0: stop after this many optimizer steps."),
    batch_size: int = typer.Option(8, help="Examples per optimizer step."),
    follow_per_input: int = typer.Option(5, help="Stated-preference examples per input."),
    infer_per_input: int = typer.Option(
        2, help="CIPHER inference examples per input (name the preference behind an edit)."
    ),
    aggregate: int = typer.Option(160, help="CIPHER aggregation examples."),
    plain_per_input: int = typer.Option(
        1, help="Copies of each plain example (the model's own answer to the bare request)."
    ),
    infer_facts: float = typer.Option(
        1.0, help="Share of inference prompts that show the edit's counted changes."
    ),
    atoms: str = typer.Option(
        "all", help="Training atom types: all (45) | benchmark (the edit benchmark's 13)."
    ),
    seed: int = typer.Option(0, help="Seed of the data and of training."),
    init_adapter: Path | None = typer.Option(
        None,
        help="Continue training this LoRA adapter folder ('shipped': the one persona ships) "
        "instead of a new one; its rank, alpha and targets are kept.",
    ),
    torch_threads: int | None = typer.Option(None, help="torch.set_num_threads for the run."),
) -> None:
    """Train the follow adapter: the local model applies a stated preference, names the one
    behind an edit and aggregates several (data generated from persona's own corpus)."""
    from rich.progress import Progress

    from persona.agents.models import ensure_local_model, follow_adapter_path
    from persona.follow.data import load_inputs
    from persona.follow.train import Recipe, train_follow

    if init_adapter is not None and str(init_adapter) == "shipped":
        init_adapter = Path(follow_adapter_path(True))

    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    recipe = Recipe(
        method=method,
        rank=rank,
        alpha=alpha,
        learning_rate=lr if lr is not None else (3e-4 if method == "lora" else 3e-5),
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        follow_per_input=follow_per_input,
        infer_per_input=infer_per_input,
        aggregate=aggregate,
        plain_per_input=plain_per_input,
        infer_facts=infer_facts,
        atoms=atoms,
        init_adapter=str(init_adapter) if init_adapter else "",
        seed=seed,
        extra={"command": "persona " + " ".join(sys.argv[1:])},
    )
    with errors():
        recipe.check()  # bad options are refused before the model is unpacked or run
        folder = str(ensure_local_model())
        inputs = load_inputs()
        with Progress(console=err) as progress:
            bar = progress.add_task("base answers", total=len(inputs))
            record = train_follow(
                work or default_home() / "train" / "follow",
                out_dir,
                recipe,
                model_dir=folder,
                inputs=inputs,
                tick=lambda n: progress.advance(bar, n),
            )
    loss = record["eval_loss"]
    out.print(
        f"wrote {out_dir} ({record['files_bytes'] / 1e6:.1f} MB, {record['steps']} steps, "
        f"eval loss {loss['base']} -> {loss['trained']})",
        markup=False,
    )


def bench_follow(
    adapter: Path | None = typer.Option(
        None, help="The adapter folder to measure (default: the one shipped with persona)."
    ),
    max_tokens: int = typer.Option(128, help="Answer budget in tokens."),
    batch_size: int = typer.Option(8, help="Prompts per generate call."),
    torch_threads: int | None = typer.Option(None, help="torch.set_num_threads for the run."),
    out_dir: Path = typer.Option(Path("benchmarks/follow"), "--out", help="Output folder."),
    reuse_base: bool = typer.Option(
        False,
        help="Keep the base model's figures from the follow.json already in --out (same "
        "inputs, atoms and --max-tokens; checked) and measure only the adapter.",
    ),
    reuse_adapter: bool = typer.Option(
        False,
        help="Keep the adapter's figures from that follow.json too (with --guidance or --rerank).",
    ),
    guidance: float | None = typer.Option(
        None,
        help="Also measure the adapter with classifier-free guidance at this scale (the "
        "layer's guidance_scale), against the request without its preference.",
    ),
    rerank: int | None = typer.Option(
        None,
        help="Also measure the adapter keeping the best of N answers to each stated preference "
        "(the layer's rerank), e.g. 4. With --guidance: the adapter with both, every candidate "
        "guided, as the layer combines them.",
    ),
    edit_facts: bool = typer.Option(
        False,
        help="CIPHER's inference prompt also shows the edit's counted changes (the layer's "
        "cipher_edit_facts), for an adapter trained with them (data version 4 on).",
    ),
    plain_only: bool = typer.Option(
        False,
        help="Only the side effects: both models' answers to the plain requests (about a minute; "
        "written to plain.json, follow.json is left as it is).",
    ),
    inference_only: bool = typer.Option(
        False,
        help="Only CIPHER's inference, scored as the phrase the model wrote and as what CIPHER "
        "stores of it with each --cipher-infer mode (llm, facts, both); written to "
        "inference.json, follow.json is left as it is.",
    ),
) -> None:
    """Base local model vs base + follow adapter: satisfaction of stated preferences (training
    and held-out atom types), CIPHER inference accuracy, and plain answers (side effects)."""
    from rich.progress import Progress

    from persona.agents.models import LocalChatModel, ensure_local_model
    from persona.bench.edits import model_label
    from persona.bench.machine import machine_info
    from persona.follow.evaluate import Model, plot, run_follow_bench
    from persona.store.embed import embedder_id, load_embedder

    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    with errors():
        if (plain_only or inference_only) and (guidance is not None or rerank is not None):
            raise InvalidInputError(
                "--guidance and --rerank change only answers to a stated preference, which "
                "--plain-only and --inference-only do not measure; drop one of them."
            )
        if plain_only and inference_only:
            raise InvalidInputError(
                "--plain-only and --inference-only each measure one part; pick one (or neither "
                "for every measurement)."
            )
        if guidance is not None and (not 0 <= guidance <= 10 or guidance == 1):
            raise InvalidInputError(
                f"--guidance {guidance} must be a scale between 0 and 10 other than 1 "
                "(1 is no guidance), e.g. 1.5."
            )
        if rerank is not None and not 2 <= rerank <= 16:
            raise InvalidInputError(
                f"--rerank {rerank} must be a number of answers from 2 to 16 (1 is the "
                "adapter's own answer, measured anyway), e.g. 4."
            )
        folder = str(ensure_local_model())
        choice: bool | str = str(adapter) if adapter else True
        models = []
        for name, follow in (("base", False), ("adapter", choice)):
            local = LocalChatModel(model_dir=folder, follow_adapter=follow)
            models.append(Model(name, *local.load()))
        if guidance is not None or rerank is not None:
            # one steered model: guided, reranked, or both (every candidate guided)
            adapter_ = models[1]
            parts = [f"guidance {guidance:g}"] if guidance is not None else []
            parts += [f"rerank {rerank}"] if rerank is not None else []
            models.append(
                Model(
                    "+".join(["adapter", *parts]),
                    adapter_.model,
                    adapter_.tokenizer,
                    guidance if guidance is not None else 1.0,
                    rerank or 1,
                )
            )
        previous = None
        if reuse_base:
            earlier = out_dir / "follow.json"
            if not earlier.is_file():
                raise InvalidInputError(f"--reuse-base: no {earlier} to take the figures from.")
            previous = json.loads(earlier.read_text())
        emb = load_embedder("minilm")
        with Progress(console=err) as progress:
            bar = progress.add_task("generating", total=None)
            result = run_follow_bench(
                models,
                emb,
                max_tokens=max_tokens,
                batch_size=batch_size,
                tick=lambda n: progress.advance(bar, n),
                on_total=lambda n: progress.update(bar, total=n),
                previous=previous,
                reuse=[m for m, on in (("base", reuse_base), ("adapter", reuse_adapter)) if on],
                edit_facts=edit_facts,
                plain_only=plain_only,
                inference_only=inference_only,
            )
        result = {
            "benchmark": "follow",
            "llm": model_label(LocalChatModel(model_dir=folder, follow_adapter=False)),
            "adapter": str(adapter) if adapter else "persona/agents/follow_adapter (shipped)",
            "embedder": embedder_id(emb),
            **result,
            "machine": machine_info(),
            "command": "persona " + " ".join(sys.argv[1:]),
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        name = "plain" if plain_only else "inference" if inference_only else "follow"
        written = out_dir / f"{name}.json"
        written.write_text(json.dumps(result, indent=2) + "\n")
        if name == "follow":
            plot(result, str(out_dir / "follow.png"))
    if inference_only:
        out.print(_inference_table(result))
        out.print(f"wrote {written}", markup=False)
        return
    table = Table(title=f"follow adapter: {result['llm']}", title_justify="left")
    for col in (
        "model",
        "satisfied train",
        "held-out",
        "infer acc. train",
        "held-out",
        "plain words",
        "plain loops",
    ):
        table.add_column(col)
    none = {"train": "-", "held_out": "-"}
    for name, r in result["models"].items():
        sat, plain = r.get("satisfaction", none), r["plain"]
        acc = r.get("inference_accuracy") or none  # guided or plain only: none
        table.add_row(
            name,
            str(sat["train"]),
            str(sat["held_out"]),
            str(acc["train"]),
            str(acc["held_out"]),
            str(plain["mean_words"]),
            str(plain["repetition_rate"]),
        )
    out.print(table)
    out.print(f"wrote {written}", markup=False)


def _inference_table(result: dict[str, Any]) -> Table:
    """Inference accuracy per model and per way of storing the phrase (train / held-out)."""
    from persona.follow.evaluate import INFER_SCORES

    table = Table(title=f"CIPHER's inference: {result['llm']}", title_justify="left")
    table.add_column("model")
    for mode in INFER_SCORES:
        table.add_column(f"{mode} train / held-out")
    for name, r in result["models"].items():
        cells = [r["inference_by_mode"][mode]["accuracy"] for mode in INFER_SCORES]
        table.add_row(name, *(f"{c['train']} / {c['held_out']}" for c in cells))
    return table
