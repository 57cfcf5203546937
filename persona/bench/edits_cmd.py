"""``persona bench edits`` (registered by :mod:`persona.cli`): PRELUDE's edit-cost table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from persona.cli_common import (
    FOLLOW_ADAPTER_DIR,
    GUIDANCE,
    RERANK,
    err,
    errors,
    follow_choice,
    out,
)


def bench_edits(
    task: str = typer.Option("summarization", help="summarization | email"),
    learner: list[str] = typer.Option(
        ["cipher-5"],
        help="Learner(s): no-learning, oracle, icl-edit-K, agnostic, "
        "cipher-K[-vote|-list|-background][+truth], adapter-R, cipher-5+adapter-R.",
    ),
    all_: bool = typer.Option(False, "--all", help="Every learner on both tasks (the table)."),
    rounds: int = typer.Option(200, help="Rounds per learner (PRELUDE: 200)."),
    seed: int = typer.Option(0, help="Seed of the rounds (same rounds for every learner)."),
    llm: str = typer.Option("local", help="The agent's and learners' LLM (a model spec)."),
    user: str = typer.Option(
        "scripted",
        help="scripted (atoms; writes the content itself when an answer says almost nothing) "
        "| scripted-atoms-only (atoms only: the tables before session 18) | llm (PRELUDE's).",
    ),
    user_llm: str | None = typer.Option(None, help="The LLM user's model (default: --llm)."),
    embedder: str = typer.Option(
        "minilm", help="Context embedder: minilm | minilm-sentences | hash."
    ),
    max_tokens: int = typer.Option(128, help="Answer budget in tokens."),
    torch_threads: int | None = typer.Option(None, help="torch.set_num_threads for the run."),
    jobs: int = typer.Option(
        1,
        help="Learners run at once, per task (0: all; with --all both tasks too): the local "
        "model batches their calls. Worth it with a served model or a GPU; on a small CPU, "
        "1 (one after another) is faster.",
    ),
    repetition_penalty: float = typer.Option(
        1.0, help="The local agent's repetition penalty (1.0: none)."
    ),
    no_repeat_ngram: int = typer.Option(
        6, help="The local agent never repeats a token n-gram of this size (0: off)."
    ),
    out_dir: Path = typer.Option(Path("benchmarks/edits"), "--out", help="Output folder."),
    follow_adapter: bool = typer.Option(
        True, "--follow-adapter/--no-follow-adapter", help="The local model's follow adapter."
    ),
    follow_adapter_dir: Path | None = FOLLOW_ADAPTER_DIR,
    guidance: float | None = GUIDANCE,
    rerank: int | None = RERANK,
    infer_guidance: float = typer.Option(
        1.0,
        help="CIPHER's inference with the local model, guided away from what it names for an "
        "unchanged answer (1: off).",
    ),
    infer_candidates: int = typer.Option(
        1,
        help="CIPHER's inference with the local model: write N phrases and keep the one under "
        "which the user's revision is likeliest (1: the greedy phrase).",
    ),
    edit_facts: bool = typer.Option(
        False,
        help="CIPHER's inference prompt also shows the edit's counted changes (the layer's "
        "cipher_edit_facts), for a follow adapter trained with them.",
    ),
    cipher_infer: str = typer.Option(
        "llm",
        help="Where CIPHER's phrase for an edit comes from (the layer's cipher_infer): llm "
        "(PRELUDE's CIPHER; the layer's default with the local model and its follow adapter is "
        "facts), facts (the edit's counted changes as wishes, no model call) or both.",
    ),
    keep_shown: bool = typer.Option(
        False,
        help="With an edit's phrase CIPHER also stores the clauses of the applied preference "
        "that the user's revision visibly kept (the layer's cipher_keep_shown).",
    ),
) -> None:
    """PRELUDE's edit-cost benchmark: cumulative edit cost per learner, on the same rounds."""
    from concurrent.futures import ThreadPoolExecutor

    from rich.progress import Progress

    from persona.agents.models import load_chat_model
    from persona.bench.edits import EditsConfig, batched, decoding, run_edits, write_results
    from persona.bench.env import TASKS
    from persona.bench.learners import LEARNERS
    from persona.options import LayerOptions
    from persona.store.embed import load_embedder

    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    if jobs < 0:
        raise typer.BadParameter(f"--jobs must be 0 (all at once) or more, got {jobs}.")
    tasks = list(TASKS) if all_ else [task]
    learners = list(LEARNERS) if all_ else learner
    concurrent_tasks = len(tasks) if jobs == 0 else 1
    callers = (jobs or len(learners)) * concurrent_tasks
    with errors():
        LayerOptions(  # checked before any round
            cipher_infer_guidance=infer_guidance,
            cipher_infer_candidates=infer_candidates,
            cipher_infer=cipher_infer,
        )
        follow = follow_choice(follow_adapter, follow_adapter_dir)
        base = batched(load_chat_model(llm, follow_adapter=follow), callers)
        agent = decoding(base, repetition_penalty, no_repeat_ngram, guidance, rerank)
        judge = batched(load_chat_model(user_llm), callers) if user_llm else base
        emb = load_embedder(embedder)
        with Progress(console=err) as progress:
            bars = {
                (t, n): progress.add_task(f"{t} {n}", total=rounds) for t in tasks for n in learners
            }

            def run_task(name: str) -> dict[str, Any]:
                cfg = EditsConfig(
                    task=name,
                    rounds=rounds,
                    seed=seed,
                    max_tokens=max_tokens,
                    user=user,
                    jobs=jobs,
                    cipher_infer_guidance=infer_guidance,
                    cipher_infer_candidates=infer_candidates,
                    cipher_edit_facts=edit_facts,
                    cipher_infer=cipher_infer,
                    cipher_keep_shown=keep_shown,
                )
                return run_edits(
                    learners,
                    agent=agent,
                    learner_llm=agent,
                    user_llm=judge,
                    embedder=emb,
                    config=cfg,
                    on_round=lambda n, t=name: progress.advance(bars[t, n]),  # type: ignore[misc]
                )

            with ThreadPoolExecutor(concurrent_tasks, thread_name_prefix="persona-task") as pool:
                docs = list(pool.map(run_task, tasks))
        for doc in docs:
            doc["command"] = "persona " + " ".join(sys.argv[1:])
            paths = write_results(doc, out_dir)
            table = Table(title=f"{doc['task']}: {doc['llm']}", title_justify="left")
            for col in (
                "learner",
                "cumulative cost",
                "Δ/round vs no-learning [95% CI]",
                "pref. acc.",
                "retrieval acc.",
                "answers < 12 words",
                "s",
            ):
                table.add_column(col)
            for r in doc["results"]:
                acc, ret = r["preference_accuracy"], r["retrieval_accuracy"]
                vs = doc["comparisons"].get(f"{r['learner']} vs no-learning")
                delta = "-"
                if vs and vs["ci95"] is not None:
                    low, high = vs["ci95"]
                    delta = f"{vs['mean_per_round']:+.1f} [{low:+.1f}, {high:+.1f}]"
                table.add_row(
                    r["learner"],
                    f"{r['cumulative_cost']:,}",
                    delta,
                    "-" if acc is None else f"{acc:.2f}",
                    "-" if ret is None else f"{ret:.2f}",
                    f"{r['short_answer_rate']:.0%}",
                    f"{r['wall_s']:.0f}",
                )
            out.print(table)
            out.print(f"wrote {', '.join(str(p) for p in paths)}", markup=False)
