"""``persona bench labels`` (registered by :mod:`persona.cli`)."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from persona.cli_common import err, errors, out
from persona.errors import InvalidInputError


def _shipped_prior_path() -> Path:
    from persona.learn.fspo_scorer import PRIOR_FILE

    return Path(str(resources.files("persona.learn").joinpath("corpus", PRIOR_FILE)))


def bench_labels(
    users: int = typer.Option(64, help="Synthetic users (the issue asks for at least 50)."),
    heldout: int = typer.Option(24, help="Of them, held out from meta-training."),
    seed: int = typer.Option(0, help="Seed of the users, their pairs and the splits."),
    shots: str = typer.Option("1,2,4,8,16", help="Shot counts N, comma-separated."),
    draws: int = typer.Option(3, help="Random sets of N shots per held-out user (first N + more)."),
    test_pairs: int = typer.Option(24, help="Held-out pairs per held-out user."),
    same_base: bool = typer.Option(
        False,
        "--same-base",
        help="Style both answers of a pair from one span (style differences only; easier).",
    ),
    shipped_prior: bool = typer.Option(
        False,
        "--shipped-prior",
        help="Score with the shipped prior instead of meta-learning one in this run.",
    ),
    fit_prior: bool = typer.Option(
        False,
        "--fit-prior",
        help="Meta-learn the prior from the meta-train users and write it "
        "(persona/learn/corpus/fspo_prior.json by default) instead of benchmarking.",
    ),
    prior_out: Path | None = typer.Option(None, help="Where --fit-prior writes the prior."),
    llm_judge: bool = typer.Option(
        False, "--llm-judge/--no-llm-judge", help="Also score with the LLM as a few-shot judge."
    ),
    llm: str = typer.Option("local", help="The LLM of --llm-judge and --best-of."),
    judge_users: int = typer.Option(6, help="Held-out users the LLM judge is measured on."),
    judge_pairs: int = typer.Option(8, help="Test pairs per user for the LLM judge."),
    judge_adapter: Path | None = typer.Option(
        None,
        help="A LoRA the local model judges with: the output folder of `persona train fspo` "
        "(FSPO's meta-trained model as the user's reward).",
    ),
    best_of: int = typer.Option(
        0, help="Also measure best-of-N satisfaction of answers the LLM generates (slow)."
    ),
    best_of_users: int = typer.Option(4, help="Held-out users --best-of is measured on."),
    max_tokens: int = typer.Option(120, help="Answer budget of --best-of, in tokens."),
    embedder: str = typer.Option("minilm", help="'minilm' (the default) or 'hash' (tests)."),
    out_dir: Path = typer.Option(Path("benchmarks/labels"), "--out", help="Output folder."),
) -> None:
    """FSPO's labels: held-out pair accuracy vs shots for the learned scorer with a
    meta-learned prior, without it, a mean embedding direction, a non-personalized baseline
    (and the LLM as a judge), on synthetic users whose preferences conflict."""
    from rich.progress import Progress

    from persona.bench import labels as L
    from persona.bench.edits import model_label
    from persona.bench.machine import machine_info
    from persona.learn.fspo_scorer import LearnedScorer, Scorer, load_prior
    from persona.learn.fspo_scorer import fit_prior as fit_prior_
    from persona.store.embed import embedder_id, load_embedder

    command = "persona " + " ".join(sys.argv[1:])
    with errors():
        ns = tuple(int(n) for n in shots.split(",") if n.strip())
        cfg = L.LabelsConfig(
            users=users,
            heldout=heldout,
            seed=seed,
            # at least the default's shots, so that any --shots list draws the same users and
            # pairs and runs with different lists compare pair for pair
            shots=max(*ns, L.LabelsConfig.shots),
            test_pairs=test_pairs,
            same_base=same_base,
        )
        emb = L.CachedEmbedder(load_embedder(embedder))
        timings: dict[str, float] = {}
        with Progress(console=err) as progress:
            t0 = time.perf_counter()
            bar = progress.add_task("synthetic users", total=cfg.users)
            population = L.make_users(cfg, tick=lambda k: progress.advance(bar, k))
            timings["users_s"] = round(time.perf_counter() - t0, 2)
            train = [u for u in population if u.split == "train"]
            # every user's answers, in fit-prior mode too: the same batches give the same
            # vectors (bfloat16 results depend on a batch's padding), hence the same prior
            texts = L.texts_of(population)
            t0 = time.perf_counter()
            bar = progress.add_task("embedding answers", total=3 * len(texts))
            emb.prefetch(texts, tick=lambda k: progress.advance(bar, k))
            progress.update(bar, completed=3 * len(texts))
            timings["embedding_s"] = round(time.perf_counter() - t0, 2)
        out_dir.mkdir(parents=True, exist_ok=True)
        if fit_prior:
            _write_prior(train, emb, cfg, prior_out, out_dir, command, timings)
            return
        extra: list[Scorer] = []
        model: Any = None
        if llm_judge or best_of:
            from persona.agents.models import load_chat_model

            model = load_chat_model(llm)
        if llm_judge:
            from persona.learn.fspo import LLMJudge

            judge_model = model
            if judge_adapter is not None:
                if not (judge_adapter / "adapter_config.json").is_file():
                    raise InvalidInputError(
                        f"--judge-adapter {str(judge_adapter)!r} holds no adapter_config.json; "
                        "pass the output folder of `persona train fspo`."
                    )
                if "adapter" not in type(model).model_fields:
                    raise InvalidInputError(
                        f"--judge-adapter needs the local model (--llm local), not {llm!r}."
                    )
                judge_model = model.model_copy(update={"adapter": str(judge_adapter)})
            extra.append(LLMJudge(judge_model))
        t0 = time.perf_counter()
        if shipped_prior:
            prior, source = load_prior(), "the shipped prior (persona/learn/corpus)"
        else:
            prior = fit_prior_([u.shots for u in train], emb)
            source = f"meta-learned in this run from the {len(train)} meta-train users"
        timings["prior_s"] = round(time.perf_counter() - t0, 2)
        held = [u for u in population if u.split == "heldout"]
        n_scorers = 4 + len(extra)
        with Progress(console=err) as progress:
            bar = progress.add_task("scoring held-out users", total=len(held) * n_scorers)
            result = L.run_labels_bench(
                population,
                emb,
                shots=ns,
                draws=draws,
                prior=prior,
                prior_source=source,
                extra_scorers=extra,
                slow_users=judge_users,
                slow_pairs=judge_pairs,
                seed=seed,
                tick=lambda k: progress.advance(bar, k),
            )
            if best_of:
                scorer = LearnedScorer(emb, prior)
                some = held[:best_of_users]
                bar = progress.add_task("best-of-n", total=sum(len(u.prompts) for u in some))
                result["best_of_n"] = {
                    "generator": model_label(model),
                    **L.best_of_n_satisfaction(
                        some,
                        _generator(model, max_tokens),
                        scorer,
                        best_of,
                        tick=lambda k: progress.advance(bar, k),
                    ),
                }
        result = {
            "benchmark": "labels",
            "embedder": embedder_id(emb),
            "config": {**dataclasses.asdict(cfg), "draws": draws},
            "llm": model_label(model) if model is not None else None,
            "judge_adapter": _adapter_record(judge_adapter) if llm_judge else None,
            **result,
            "timings": {**timings, **result["timings"]},
            "machine": machine_info(),
            "command": command,
        }
        (out_dir / "labels.json").write_text(json.dumps(result, indent=2) + "\n")
        L.plot(result, str(out_dir / "labels.png"))
    table = Table(title="held-out pair accuracy vs shots", title_justify="left")
    table.add_column("scorer")
    for n in ns:
        table.add_column(f"N={n}")
    for name, accs in result["accuracy"].items():
        table.add_row(name, *(str(accs[str(n)]) for n in ns))
    out.print(table)
    if "best_of_n" in result:
        b = result["best_of_n"]
        out.print(
            f"best-of-{b['n']} ({b['generator']}): wants satisfied {b['picked']} "
            f"(random pick {b['random']}, best possible {b['oracle']})",
            markup=False,
        )
    out.print(f"wrote {out_dir / 'labels.json'} and {out_dir / 'labels.png'}", markup=False)


def _adapter_record(folder: Path | None) -> dict[str, Any] | None:
    """What the judge's adapter is: its folder and the training record beside it."""
    if folder is None:
        return None
    record = folder / "fspo.json"
    meta = json.loads(record.read_text()) if record.is_file() else {}
    return {"folder": str(folder), "training": meta}


def _generator(model: Any, max_tokens: int) -> Any:
    from langchain_core.messages import HumanMessage

    def generate(prompt: str, n: int) -> list[str]:
        msgs = [HumanMessage(prompt)]
        outs = [model.invoke(msgs, temperature=0.8, max_tokens=max_tokens) for _ in range(n)]
        return [str(m.content) for m in outs]

    return generate


def _write_prior(
    train: Any,
    emb: Any,
    cfg: Any,
    prior_out: Path | None,
    out_dir: Path,
    command: str,
    timings: dict[str, float],
) -> None:
    from persona.bench.machine import machine_info
    from persona.learn.fspo_scorer import fit_prior

    t0 = time.perf_counter()
    prior = fit_prior([u.shots for u in train], emb)
    timings["prior_s"] = round(time.perf_counter() - t0, 2)
    chosen = prior.meta["chosen"]
    meta = {
        **prior.meta,
        "grid": None,  # the full grid is in the record beside the benchmark
        "data": f"persona bench labels synthetic users, seed {cfg.seed}: the {len(train)} "
        "meta-train users (never the held-out ones)",
        "command": command,
    }
    shipped = dataclasses.replace(prior, meta=meta)
    path = prior_out or _shipped_prior_path()
    path.write_text(json.dumps(shipped.to_json()) + "\n")
    record = {
        "benchmark": "labels/fit-prior",
        "prior": str(path),
        **prior.meta,
        "timings": timings,
        "machine": machine_info(),
        "command": command,
    }
    (out_dir / "fspo-prior.json").write_text(json.dumps(record, indent=2) + "\n")
    out.print(f"chosen {json.dumps(chosen)}", markup=False)
    out.print(f"no prior (same cross-validation) {json.dumps(prior.meta['no_prior_cv_accuracy'])}")
    out.print(f"wrote {path} and {out_dir / 'fspo-prior.json'}", markup=False)
