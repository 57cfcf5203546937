"""``persona bench feedback`` (registered by :mod:`persona.cli`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from persona.cli_common import GUIDANCE, RERANK, err, errors, out
from persona.config import default_home
from persona.errors import InvalidInputError


def bench_feedback(
    llm: str = typer.Option(
        "local", help="The LLM that writes each feedback's dataset (and answers, by default)."
    ),
    answers: bool = typer.Option(
        True, "--answers/--no-answers", help="Also generate answers and check behaviour."
    ),
    answer_llm: str | None = typer.Option(
        None,
        "--answer-llm",
        help="The LLM that answers the held-out requests (default: --llm); e.g. 'local' "
        "with --llm replay:FILE, whose recording holds only the datasets.",
    ),
    judge: str | None = typer.Option(
        None,
        "--judge",
        help="An LLM that judges the answers to qualitative feedbacks (yes/no per answer), "
        "e.g. 'openai:MODEL@URL'; without one only quantitative feedbacks are judged, by "
        "their checkers.",
    ),
    split: str = typer.Option(
        "test",
        help="The feedback set: test (the benchmark's), fresh (written later, never tuned "
        "on) or dev (the one the scope combiner was fitted on).",
    ),
    limit: int | None = typer.Option(None, help="Only the first N feedbacks."),
    skip: int = typer.Option(0, help="Start after the first N feedbacks of the set."),
    categories: int = typer.Option(4, help="Categories the LLM writes per feedback."),
    per_category: int = typer.Option(5, help="In- and near-scope prompts per category."),
    max_tokens: int = typer.Option(160, help="Answer budget in tokens."),
    fit_scope: bool = typer.Option(
        False,
        "--fit-scope",
        help="Refit the scope model's shared weights on the development set instead "
        "(writes scope-weights.json; copy its two combiners into persona/learn/scope.py).",
    ),
    adapters: int = typer.Option(
        0,
        help="Train a C3PO adapter for the first N quantitative feedbacks that the plain "
        "model breaks in scope (>= 3 prompts), and measure it.",
    ),
    adapter_steps: int = typer.Option(8, help="Optimizer steps per C3PO adapter."),
    follow_adapter: bool = typer.Option(
        True, "--follow-adapter/--no-follow-adapter", help="The local model's follow adapter."
    ),
    examples: int = typer.Option(
        0,
        "--examples",
        help="The user also gives the first N in-scope and N near-scope prompts of each "
        "feedback as examples (learn_from_feedback's in_scope / out_of_scope); those are not "
        "scored.",
    ),
    fit_llm: bool = typer.Option(
        True,
        "--fit-llm/--no-fit-llm",
        help="With --fit-scope: also fit on datasets the LLM writes for the development "
        "feedbacks (besides the no-LLM and user-examples regimes).",
    ),
    questions: int = typer.Option(
        0,
        "--questions",
        help="Instead: scope accuracy after the user answers up to N of the layer's scope "
        "questions (2, 4, ... N), against N requests picked at random (writes "
        "questions.json and questions.png; no answers are generated).",
    ),
    answers_from: Path | None = typer.Option(
        None,
        "--answers-from",
        help="Judge the answers of an earlier run (its feedback.json) under today's scope "
        "decisions instead of generating new ones (same feedbacks and --examples).",
    ),
    guidance: float | None = GUIDANCE,
    rerank: int | None = RERANK,
    out_dir: Path = typer.Option(Path("benchmarks/feedback"), "--out", help="Output folder."),
) -> None:
    """C3PO on the shipped feedback set: scope-decision accuracy (in-context, similarity
    rule, learned scope), in-scope adherence and near/out-of-scope over-generalization, and
    the cost of learning a feedback."""
    from rich.progress import Progress

    from persona.agents.models import load_chat_model
    from persona.bench.edits import batched, decoding, model_label
    from persona.bench.feedback import fit_scope as fit
    from persona.bench.feedback import plot, run_feedback_bench, scope_features
    from persona.bench.feedback_checks import SPLITS, load_feedback_set
    from persona.bench.feedback_judge import LLMJudge
    from persona.bench.machine import machine_info
    from persona.learn.c3po_data import DatasetConfig
    from persona.learn.scope import THRESHOLD
    from persona.store.embed import embedder_id, load_embedder

    command = "persona " + " ".join(sys.argv[1:])
    with errors():
        model = load_chat_model(llm, follow_adapter=follow_adapter)
        answerer = (
            load_chat_model(answer_llm, follow_adapter=follow_adapter) if answer_llm else model
        )
        if (guidance is not None or rerank is not None) and (not answers or answers_from):
            raise InvalidInputError(
                "--guidance / --rerank steer the answers this run writes; drop them with "
                "--no-answers or --answers-from."
            )
        # the answers only: the LLM writing the datasets is never steered
        answerer = decoding(answerer, guidance_scale=guidance, rerank=rerank)
        judge_llm = load_chat_model(judge, follow_adapter=follow_adapter) if judge else None
        reader = LLMJudge(judge_llm) if judge_llm is not None else None
        emb = load_embedder("minilm")
        cfg = DatasetConfig(categories=categories, per_category=per_category)
        out_dir.mkdir(parents=True, exist_ok=True)
        cache = default_home() / "bench" / "feedback" / "datasets"
        if fit_scope:
            if split != "test":
                raise InvalidInputError(
                    f"--fit-scope always fits on the dev set; drop --split {split}."
                )
            dev = load_feedback_set("dev")[:limit]
            none, users, written = "no LLM", "user examples", "dataset by the LLM"
            regimes = {
                none: {"llm": None, "dataset": DatasetConfig(generate=False)},
                # half of each set given as examples, the other half scored
                users: {"llm": None, "dataset": cfg, "simulate": True},
            }
            if fit_llm:
                regimes[written] = {"llm": model, "dataset": cfg, "cache": cache}
            with Progress(console=err) as progress:
                bar = progress.add_task("dev feedbacks", total=len(regimes) * len(dev))
                tick = lambda n: progress.advance(bar, n)  # noqa: E731
                parts = {
                    name: scope_features(dev, embedder=emb, tick=tick, **kw)  # type: ignore[arg-type]
                    for name, kw in regimes.items()
                }
            # WEIGHTS (a scope without example requests) and WEIGHTS_WITH_EXAMPLES
            combiners = {
                "weights": [none, users],
                "weights_with_examples": [users, written] if fit_llm else [users],
            }
            record: dict[str, object] = {
                "benchmark": "feedback/fit-scope",
                "split": "dev",
                "llm": model_label(model) if fit_llm else None,
                "embedder": embedder_id(emb),
                "regimes": list(regimes),
            }
            for key, names in combiners.items():
                fitted = fit(*_stacked([parts[n] for n in names]), regimes=_regimes(parts, names))
                record[key] = {"fitted_on": names, **fitted}
                lofo = fitted[f"leave_one_feedback_out_accuracy_at_{THRESHOLD}"]
                out.print(f"{key} {json.dumps(fitted['weights'])}", markup=False)
                out.print(f"  leave-one-feedback-out at p >= {THRESHOLD}: {lofo}", markup=False)
            record |= {"machine": machine_info(), "command": command}
            (out_dir / "scope-weights.json").write_text(json.dumps(record, indent=2) + "\n")
            return
        if skip < 0:
            raise InvalidInputError(f"--skip {skip} is negative; give 0 or more feedbacks.")
        if split not in SPLITS:
            raise InvalidInputError(
                f"--split {split!r} is not a feedback set; give one of {', '.join(SPLITS)}."
            )
        feedbacks = load_feedback_set(split)[skip:][:limit]
        if questions:
            _questions(feedbacks, emb, questions, out_dir, command)
            return
        earlier = _earlier(answers_from)
        with Progress(console=err) as progress:
            bar = progress.add_task("feedbacks", total=len(feedbacks))
            result = run_feedback_bench(
                feedbacks,
                llm=model,
                embedder=emb,
                answer_model=batched(answerer, 8) if answers and earlier is None else None,
                judge=reader,
                dataset=cfg,
                max_tokens=max_tokens,
                adapters=adapters,
                adapter_steps=adapter_steps,
                work=default_home() / "bench" / "feedback",
                tick=lambda n: progress.advance(bar, n),
                cache=cache,
                examples=examples,
                answers_from=earlier,
            )
        label = model_label(model)
        answered_by = model_label(answerer) if answers else None
        if earlier is not None:
            answered_by = str(earlier.get("answer_model"))
        result = {
            "benchmark": "feedback",
            "split": split,
            "llm": label,
            "answer_model": answered_by,
            "answers_from": str(answers_from) if answers_from else None,
            "judge": _judge_label(judge_llm, reader),
            "embedder": embedder_id(emb),
            "dataset": {
                "categories": categories,
                "per_category": per_category,
                "user_examples": examples,
            },
            **result,
            "machine": machine_info(),
            "command": command,
        }
        (out_dir / "feedback.json").write_text(json.dumps(result, indent=2) + "\n")
        plot(result, str(out_dir / "feedback.png"))
    s = result["summary"]
    table = Table(title=f"feedback: {label}", title_justify="left")
    for col in ("method", "scope acc.", "in", "near", "out"):
        table.add_column(col)
    for method, acc in s["scope_accuracy"].items():
        table.add_row(
            method,
            str(acc["all"]),
            str(acc["in_scope"]),
            str(acc["near_scope"]),
            str(acc["out_of_scope"]),
        )
    out.print(table)
    for method, rates in s.get("applied_rate", {}).items():
        out.print(
            f"{method}: applied in scope {rates['in_scope']['rate']} (n={rates['in_scope']['n']}),"
            f" near+out {rates['near_and_out']['rate']} (n={rates['near_and_out']['n']})",
            markup=False,
        )
    subset = s.get("adapter_subset")
    if subset:
        for method in ("in_context", "c3po_scope", "adapter"):
            r = subset[method]
            out.print(
                f"[{len(subset['feedbacks'])} adapter feedbacks] {method}: in "
                f"{r['in_scope']['rate']}, near {r['near_scope']['rate']}, "
                f"out {r['out_of_scope']['rate']}",
                markup=False,
            )
    out.print(f"wrote {out_dir / 'feedback.json'}", markup=False)


def _questions(
    feedbacks: list[dict[str, object]], emb: object, most: int, out_dir: Path, command: str
) -> None:
    """``--questions N``: the benchmark of :mod:`persona.bench.feedback_questions`."""
    from rich.progress import Progress

    from persona.bench.feedback_questions import plot_questions, run_questions_bench
    from persona.bench.machine import machine_info
    from persona.store.embed import embedder_id

    if most < 1:
        raise InvalidInputError(f"--questions {most} must be 1 or more answered requests.")
    ks = sorted({*range(2, most + 1, 2), most})
    with Progress(console=err) as progress:
        bar = progress.add_task("feedbacks", total=len(feedbacks))
        result = run_questions_bench(
            feedbacks,
            embedder=emb,  # type: ignore[arg-type]
            ks=ks,
            tick=lambda n: progress.advance(bar, n),
        )
    record = {
        "benchmark": "feedback/questions",
        "llm": None,
        "judge": "the feedback set's own labels (a simulated user answers truthfully)",
        "embedder": embedder_id(emb),  # type: ignore[arg-type]
        **result,
        "machine": machine_info(),
        "command": command,
    }
    (out_dir / "questions.json").write_text(json.dumps(record, indent=2) + "\n")
    plot_questions(record, str(out_dir / "questions.png"))
    table = Table(title="scope accuracy after k answers (held-out halves)", title_justify="left")
    for col in ("k", *result["summary"]):
        table.add_column(col)
    for k in result["k"]:
        table.add_row(
            str(k), *(str(result["summary"][s][str(k)]["all"]) for s in result["summary"])
        )
    out.print(table)
    out.print(f"wrote {out_dir / 'questions.json'}", markup=False)


def _stacked(parts: list[tuple[Any, Any, list[str]]]) -> tuple[Any, Any, list[str]]:
    """Several regimes' (features, labels, owners) as one set of rows."""
    import numpy as np

    return (
        np.vstack([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        [o for p in parts for o in p[2]],
    )


def _regimes(parts: dict[str, tuple[Any, Any, list[str]]], names: list[str]) -> list[str]:
    """The regime of each row of :func:`_stacked` ``names``."""
    return [name for name in names for _ in parts[name][2]]


def _earlier(path: Path | None) -> dict[str, Any] | None:
    """``--answers-from``: an earlier run's JSON, which must hold answers."""
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"--answers-from {path}: cannot read it as a feedback.json ({exc}); give the "
            "feedback.json of an earlier run with answers."
        ) from exc
    if not isinstance(data, dict) or not any(
        isinstance(r, dict) and "behaviour" in r for r in data.get("feedbacks", ())
    ):
        raise InvalidInputError(
            f"--answers-from {path} holds no answers; give the feedback.json of a run made "
            "with --answers."
        )
    return data


def _judge_label(llm: Any, judge: Any) -> str | dict[str, Any]:
    """Who judged the answers, as the result records it."""
    from persona.bench.edits import model_label

    if judge is None:
        return "programmatic checkers (quantitative feedbacks only; no LLM judge)"
    return {
        "quantitative": "programmatic checkers",
        "qualitative": f"{model_label(llm)} (yes/no per answer)",
        "calls": judge.calls,
        "unparsed_replies": judge.unparsed,
    }
