"""``persona bench feedback --questions K``: what answering the layer's scope questions buys.

Each feedback's held-out requests are split in two halves (in-, near- and out-of-scope alike):
the first half plays the user's past requests, the second is scored. A simulated user answers
``k`` questions truthfully (an in-scope request: "it applies here"; a near- or out-of-scope
one: "not here") and the answers go back through ``edit_scope``. Two ways to choose the ``k``:

- **asked**: the layer's own choice, :meth:`~persona.PreferenceLayer.scope_questions` over the
  past requests (where the scope model is least sure);
- **random**: ``k`` past requests at random (mean over a few seeds): the baseline that says
  whether choosing helps at all.

No LLM writes a dataset (the local model's default), so ``k = 0`` is the plain scope from the
feedback's words and the pool, scored on the same second halves.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from persona.bench.feedback import GROUPS, _learn
from persona.learn.c3po_data import DatasetConfig
from persona.store.embed import Embedder

STRATEGIES = ("asked", "random")

#: ``choose(layer, pref)`` -> the requests the simulated user answers, each with its group.
Chooser = Callable[[Any, Any], Sequence[tuple[str, str]]]


def _halves(feedback: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    past: list[tuple[str, str]] = []
    held: list[tuple[str, str]] = []
    for group in GROUPS:
        texts = feedback[group]
        half = len(texts) // 2
        past += [(t, group) for t in texts[:half]]
        held += [(t, group) for t in texts[half:]]
    return past, held


def _score(
    feedback: dict[str, Any],
    embedder: Embedder,
    held: Sequence[tuple[str, str]],
    choose: Chooser,
) -> dict[str, list[bool]]:
    """Learn the feedback, let ``choose(layer, pref)`` pick the answered requests, apply the
    simulated answers and return, per group, whether each held-out decision was right."""
    pref, layer, _ = _learn(feedback, None, embedder, DatasetConfig(generate=False))
    try:
        answered = choose(layer, pref)
        if answered:
            layer.edit_scope(
                "bench",
                pref.id,
                add_in_scope=[t for t, g in answered if g == "in_scope"],
                add_out_of_scope=[t for t, g in answered if g != "in_scope"],
            )
        right: dict[str, list[bool]] = {g: [] for g in GROUPS}
        for text, group in held:
            applies = any(p.id == pref.id for p in layer.condition("bench", text).preferences)
            right[group].append(applies == (group == "in_scope"))
        return right
    finally:
        layer.close()


def _asker(past: Sequence[tuple[str, str]], k: int) -> Chooser:
    """The layer's own ``k`` questions over the past requests, answered truthfully."""
    group_of = dict(past)

    def ask(layer: Any, pref: Any) -> list[tuple[str, str]]:
        questions = layer.scope_questions("bench", pref.id, candidates=list(group_of), k=k)
        return [(q.request, group_of[q.request]) for q in questions]

    return ask


def _given(answered: Sequence[tuple[str, str]]) -> Chooser:
    """Always the same answered requests, whatever the layer would ask."""
    return lambda layer, pref: answered


def _accuracy(rights: Sequence[dict[str, list[bool]]]) -> dict[str, float | None]:
    """Accuracy over all scored requests and per group."""
    result: dict[str, float | None] = {}
    every = [r for right in rights for g in GROUPS for r in right[g]]
    result["all"] = round(statistics.mean(every), 3) if every else None
    for group in GROUPS:
        flags = [r for right in rights for r in right[group]]
        result[group] = round(statistics.mean(flags), 3) if flags else None
    return result


def run_questions_bench(
    feedbacks: Sequence[dict[str, Any]],
    *,
    embedder: Embedder,
    ks: Sequence[int] = (2, 4, 6),
    seeds: int = 3,
    tick: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Scope accuracy on the held-out halves after ``k`` answers, per strategy and ``k``."""
    ks = [0, *sorted({k for k in ks if k > 0})]
    per: dict[str, dict[int, list[dict[str, list[bool]]]]] = {
        s: {k: [] for k in ks} for s in STRATEGIES
    }
    rows: list[dict[str, Any]] = []
    for feedback in feedbacks:
        past, held = _halves(feedback)
        row: dict[str, Any] = {"id": feedback["id"], "asked": {}}
        plain = _score(feedback, embedder, held, _given([]))
        for strategy in STRATEGIES:
            per[strategy][0].append(plain)
        for k in ks[1:]:
            asked_right = _score(feedback, embedder, held, _asker(past, k))
            per["asked"][k].append(asked_right)
            row["asked"][k] = _accuracy([asked_right])["all"]
            for seed in range(seeds):
                rnd = random.Random(f"{feedback['id']}/{k}/{seed}")
                picked = rnd.sample(past, min(k, len(past)))
                per["random"][k].append(_score(feedback, embedder, held, _given(picked)))
        row["plain"] = _accuracy([plain])["all"]
        rows.append(row)
        if tick:
            tick(1)
    summary = {s: {str(k): _accuracy(per[s][k]) for k in ks} for s in STRATEGIES}
    return {"k": ks, "seeds": seeds, "feedbacks": rows, "summary": summary}


def plot_questions(result: dict[str, Any], path: str) -> None:
    """Scope accuracy against the number of answered questions, one line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ks = result["k"]
    for strategy, style in zip(STRATEGIES, ("o-", "s--"), strict=True):
        acc = [result["summary"][strategy][str(k)]["all"] for k in ks]
        ax.plot(
            ks,
            acc,
            style,
            label=f"{strategy} ({'layer picks' if strategy == 'asked' else 'mean of seeds'})",
        )
    ax.set_xlabel("requests the user answered")
    ax.set_ylabel("scope-decision accuracy (held-out half)")
    ax.axhline(0.9, color="grey", linestyle=":", linewidth=1, label="target (0.9)")
    ax.set_ylim(0.5, 1.0)  # the whole range that matters: small moves look small
    ax.set_xticks(ks)
    ax.set_title(f"Scope questions ({len(result['feedbacks'])} feedbacks, MiniLM, no LLM)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
