"""``persona bench feedback``: is verbal feedback applied where it belongs and nowhere else?

On the shipped feedback set (``bench/corpus/feedback.json``: each feedback with held-out
in-scope, near-scope and out-of-scope prompts written for persona, never used for tuning), each
feedback is learned in a fresh layer (``learn_from_feedback`` with the chosen LLM), then:

- **scope decisions** for every held-out prompt, per method: *in-context* (C3PO's baseline:
  always apply), the *similarity rule* of the previous release (apply where the request's
  cosine to the feedback is >= 0.25) and *C3PO scope* (the learned scope model). Accuracy =
  applied on in-scope prompts, withheld on near- and out-of-scope ones.
- **behaviour** (with an answer model): the plain answer (no feedback), the answer with the
  feedback in the prompt (in-context), and the scoped answer (the feedback in the prompt only
  where the scope model applies it). A quantitative feedback's checker reads each answer
  against the plain one, and a qualitative one's answers are read by an LLM judge when one is
  given (:mod:`persona.bench.feedback_judge`); only prompts whose plain answer does not
  already comply count.
  In-scope adherence is the share that comply; near- and out-of-scope *applied rates* (the
  over-generalization) are the share that comply where they should not have changed.
- **cost** of ``learn_from_feedback``: LLM calls, tokens and seconds.

:func:`fit_scope` refits the scope model's shared combiner on the *development* set
(``feedback_dev.json``), never on the test set.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableLambda

from persona.bench.feedback_checks import adheres
from persona.errors import InvalidInputError, PersonaError
from persona.learn import prompts
from persona.learn.c3po import scope_model_for
from persona.learn.c3po_data import DATASET_VERSION, Cost, DatasetBuilder, DatasetConfig
from persona.learn.request_words import request_words
from persona.learn.scope import FEATURES, THRESHOLD, fit_weights
from persona.learn.scope_words import scope_phrases
from persona.store.embed import Embedder

#: Whether an answer to a request follows a feedback (None: no verdict).
Judge = Callable[[dict[str, Any], str, str], "bool | None"]

GROUPS = ("in_scope", "near_scope", "out_of_scope")
METHODS = ("in_context", "similarity_rule", "c3po_scope")
SIMILARITY_RULE = 0.25  # the previous release's rule (StatedConfig.min_similarity)
ADAPTER_MIN_COUNTED = 3  # in-scope prompts whose plain answer breaks the feedback
L2_COMBINER = 1e-3  # the shared combiner's L2 (7 weights, hundreds of development rows)


def _rate(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 3) if flags else None


def with_feedback(prompt: str, feedback: str) -> str:
    """The request with the feedback in the user turn (the placement the layer uses for the
    local model)."""
    return prompts.USER_TURN.format(message=prompt, preferences=feedback.rstrip("."))


def steered(model: BaseChatModel) -> bool:
    """Whether the local model guides or reranks its answers toward a stated preference
    (``guidance_scale`` != 1 or ``rerank`` > 1): it then needs each request alone beside it."""
    return getattr(model, "guidance_scale", 1.0) != 1.0 or getattr(model, "rerank", 1) > 1


def answer_all(
    model: BaseChatModel,
    texts: Sequence[str],
    max_tokens: int,
    alone: Sequence[str] | None = None,
) -> list[str]:
    """The model's answers, concurrently (the local model merges them into batches).

    ``alone``: each request without its feedback. A steered local model (:func:`steered`) is
    given it as ``negative_messages=``, as :class:`~persona.agents.runnable.PreferenceRunnable`
    gives it, so its answers are the ones the layer would serve; other models ignore it."""
    if alone is None or not steered(model):
        replies = model.batch(
            [[HumanMessage(t)] for t in texts],
            config={"max_concurrency": 8},
            max_tokens=max_tokens,
        )
        return [r.text for r in replies]

    def one(pair: tuple[str, str]) -> str:
        told, bare = pair
        reply = model.invoke(
            [HumanMessage(told)], max_tokens=max_tokens, negative_messages=[HumanMessage(bare)]
        )
        return reply.text

    pairs = list(zip(texts, alone, strict=True))
    return RunnableLambda(one).batch(pairs, config={"max_concurrency": 8})


class CachedBuilder(DatasetBuilder):
    """A :class:`DatasetBuilder` that keeps each dataset it generates in ``folder``, keyed by
    the feedback, its scope phrases as read today, the user's examples, the sizes and the LLM:
    the LLM's datasets are the slow
    part of this benchmark, and a re-run (another method, answers, a refit) reuses them. The
    cost recorded is the generation's, from when it ran."""

    def __init__(self, llm: BaseChatModel | None, cfg: DatasetConfig, folder: Path) -> None:
        super().__init__(llm, cfg)
        self.folder = folder
        self.hits = 0
        self.seconds = 0.0  # what generating the latest dataset took (then, if it was cached)

    def build(
        self,
        feedback: str,
        in_scope: Sequence[str] = (),
        out_of_scope: Sequence[str] = (),
    ) -> tuple[dict[str, Any], Cost]:
        from persona.bench.edits import model_label

        label = model_label(self.llm) if self.llm is not None else "none"
        # the feedback's own scope phrases are part of the dataset: a new reading of them
        # (persona.learn.scope_words), or a builder that writes otherwise, builds it afresh
        key = json.dumps(
            [feedback, list(in_scope), list(out_of_scope), asdict(self.config), label]
            + [scope_phrases(feedback)]
            + [DATASET_VERSION]
        )
        path = self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"
        if path.exists():
            saved = json.loads(path.read_text(encoding="utf-8"))
            self.hits += 1
            self.seconds = float(saved["cost"]["seconds"])
            return saved["dataset"], Cost(**saved["cost"])
        t0 = time.perf_counter()
        dataset, cost = super().build(feedback, in_scope, out_of_scope)
        cost.seconds = self.seconds = round(time.perf_counter() - t0, 3)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"dataset": dataset, "cost": asdict(cost)}), encoding="utf-8")
        tmp.replace(path)
        return dataset, cost


def _learn(
    feedback: dict[str, Any],
    llm: BaseChatModel | None,
    embedder: Embedder,
    cfg: DatasetConfig,
    cache: Path | None = None,
    examples: int = 0,
) -> tuple[Any, Any, float]:
    """The layer's C3PO on one feedback: (preference, layer, seconds) in a throwaway home.
    With ``cache``, generated datasets are kept there and reused (seconds: the generation's)."""
    from persona import PreferenceLayer

    home = Path(tempfile.mkdtemp(prefix="persona-feedback-"))
    layer = PreferenceLayer.open(
        home,
        llm=llm if llm is not None else "fake",
        embedder=embedder,
        c3po_categories=cfg.categories if llm is not None else 0,
        c3po_prompts=cfg.per_category,
    )
    built: list[CachedBuilder] = []
    if cache is not None:

        def builder(model: BaseChatModel | None, size: DatasetConfig) -> CachedBuilder:
            built.append(CachedBuilder(model, size, cache))
            return built[-1]

        layer.c3po.builder = builder
    t0 = time.perf_counter()
    pref = layer.learn_from_feedback(
        "bench",
        feedback["text"],
        in_scope=feedback["in_scope"][:examples] or None,
        out_of_scope=feedback["near_scope"][:examples] or None,
    )
    seconds = time.perf_counter() - t0
    if built and built[-1].hits:  # the dataset's generation, when it ran, plus the rest
        seconds += built[-1].seconds
    return pref, layer, seconds


def run_feedback_bench(
    feedbacks: Sequence[dict[str, Any]],
    *,
    llm: BaseChatModel | None,
    embedder: Embedder,
    answer_model: BaseChatModel | None = None,
    judge: Judge | None = None,
    dataset: DatasetConfig | None = None,
    max_tokens: int = 160,
    adapters: int = 0,
    adapter_steps: int = 8,
    work: Path | None = None,
    tick: Callable[[int], None] | None = None,
    cache: Path | None = None,
    examples: int = 0,
    answers_from: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Scope decisions (and behaviour, given ``answer_model``) for each feedback; with
    ``adapters`` > 0, the first that many quantitative feedbacks also get a C3PO adapter.
    Quantitative feedbacks are judged by their checkers; qualitative ones only given a
    ``judge`` (:class:`~persona.bench.feedback_judge.LLMJudge`).
    ``answers_from``: an earlier result whose answers are judged again under today's scope
    decisions (:func:`rescope`), instead of generating them."""
    cfg = dataset or DatasetConfig()
    rows: list[dict[str, Any]] = []
    for given in feedbacks:
        pref, layer, seconds = _learn(given, llm, embedder, cfg, cache, examples)
        # the user's examples (the first ``examples`` in- and near-scope prompts) are not scored
        fb = {**given, "in_scope": given["in_scope"][examples:]}
        fb["near_scope"] = given["near_scope"][examples:]
        cost = layer.c3po.last_cost
        fvec = embedder.embed([fb["text"]])[0]
        row: dict[str, Any] = {
            "id": fb["id"],
            "kind": fb["kind"],
            "scope_learned": pref.scope,
            "cost": {
                "llm_calls": cost.calls if cost else 0,
                "tokens_in": cost.tokens_in if cost else 0,
                "tokens_out": cost.tokens_out if cost else 0,
                "seconds": round(seconds, 2),
                "failed_steps": len(cost.failed_steps) if cost else 0,
            },
            "decisions": {},
        }
        for group in GROUPS:
            texts = fb[group]
            vecs = embedder.embed(texts)
            c3po, probs = [], []
            for t in texts:
                cond = layer.condition("bench", t)
                c3po.append(any(p.id == pref.id for p in cond.preferences))
                probs.append(
                    next(
                        (round(p.score, 4) for p in (*cond.preferences, *cond.withheld)
                         if p.id == pref.id),
                        None,
                    )
                )  # fmt: skip
            sim = [bool(float(v @ fvec) >= SIMILARITY_RULE) for v in vecs]
            row["decisions"][group] = {
                "c3po_scope": c3po,
                "similarity_rule": sim,
                "c3po_probability": probs,
            }
        stored = layer.store.list_feedback("bench")[0].dataset
        layer.close()
        judged_by = "checker" if fb.get("checker") else "llm judge" if judge else "not judged"
        if answers_from is not None and (fb.get("checker") or _answered(answers_from, fb)):
            row["judged_by"] = judged_by
            row["behaviour"] = rescope(answers_from, fb, row["decisions"], judge)
        elif answer_model is not None:
            row["judged_by"] = judged_by
            row["behaviour"] = _behaviour(fb, row["decisions"], answer_model, max_tokens, judge)
            # an adapter only where the plain model breaks the feedback in scope: elsewhere
            # (e.g. "no emojis" to a model that never writes one) there is nothing to count
            breaks = row["behaviour"]["in_scope"]["counted"] >= ADAPTER_MIN_COUNTED
            tunable = adapters > sum("adapter" in r for r in rows) and fb.get("checker")
            if tunable and stored is not None and breaks:
                folder = (work or Path(tempfile.mkdtemp())) / "adapters" / fb["id"]
                try:
                    row["adapter"] = adapter_behaviour(
                        fb, stored, folder, steps=adapter_steps, max_tokens=max_tokens
                    )
                except PersonaError as exc:  # e.g. no usable pair in this dataset: recorded
                    row["adapter_error"] = str(exc)
        rows.append(row)
        if tick:
            tick(1)
    return {"feedbacks": rows, "summary": summarize(rows)}


def _answered(earlier: dict[str, Any], fb: dict[str, Any]) -> bool:
    """Whether an earlier run answered ``fb``'s requests (judged or not)."""
    return any(r.get("id") == fb["id"] and "behaviour" in r for r in earlier.get("feedbacks", ()))


def _verdict(
    fb: dict[str, Any], judge: Judge | None, request: str, answer: str, baseline: str
) -> bool | None:
    """How an answer is read: a quantitative feedback by its checker (against the plain
    answer), a qualitative one by ``judge`` (None: no verdict)."""
    if fb.get("checker") or judge is None:
        return adheres(fb, answer, baseline)
    return judge(fb, request, answer)


def _scoped(in_context: Sequence[bool | None], applies: Sequence[bool]) -> list[bool | None]:
    """The scoped answers' verdicts: the in-context verdict where the scope applies the
    feedback, else the plain answer's, which on a counted request does not comply."""
    return [
        None if v is None else (v if d else False) for v, d in zip(in_context, applies, strict=True)
    ]


def _judged(
    fb: dict[str, Any],
    group: str,
    plain: Sequence[str],
    told: Sequence[str],
    applies: Sequence[bool],
    judge: Judge | None,
) -> dict[str, Any]:
    """One group's verdicts. Only requests whose plain answer does not comply are counted; a
    scoped answer is the in-context one where the scope applies the feedback, else the plain
    one (which, counted, does not comply)."""
    texts = fb[group]
    no_feedback = [_verdict(fb, judge, t, p, p) for t, p in zip(texts, plain, strict=True)]
    counted = [v is False for v in no_feedback]
    in_context = [
        _verdict(fb, judge, t, a, p) if c else None
        for t, a, p, c in zip(texts, told, plain, counted, strict=True)
    ]
    return {
        "counted": sum(counted),
        "no_feedback": no_feedback,
        "in_context": in_context,
        "c3po_scope": _scoped(in_context, applies),
        "sample": {"prompt": texts[0], "plain": plain[0], "in_context": told[0]},
        "answers": {"plain": list(plain), "in_context": list(told)},
    }


def _behaviour(
    fb: dict[str, Any],
    decisions: dict[str, Any],
    model: BaseChatModel,
    max_tokens: int,
    judge: Judge | None = None,
) -> dict[str, Any]:
    """Plain and in-context answers to every held-out prompt, read by the checker (or, for a
    qualitative feedback, by ``judge``) and kept, so that a later run can judge them again."""
    out: dict[str, Any] = {}
    for group in GROUPS:
        texts = fb[group]
        plain = answer_all(model, texts, max_tokens)
        told = answer_all(
            model, [with_feedback(t, fb["text"]) for t in texts], max_tokens, alone=texts
        )
        out[group] = _judged(fb, group, plain, told, decisions[group]["c3po_scope"], judge)
    return out


def rescope(
    earlier: dict[str, Any],
    fb: dict[str, Any],
    decisions: dict[str, Any],
    judge: Judge | None = None,
) -> dict[str, Any]:
    """The behaviour of an earlier run (``earlier``: its JSON) under new scope decisions.

    A scoped answer is the in-context answer where the feedback applies and the plain one
    where it is withheld (:func:`_behaviour`), so with the same answers a new decision changes
    only which of the two is judged: where it applies, the in-context verdict; where it does
    not, the plain answer, which breaks the feedback on every counted request. Given a
    ``judge``, a qualitative feedback's kept answers are judged afresh.
    """
    row = next((r for r in earlier.get("feedbacks", ()) if r.get("id") == fb["id"]), None)
    if row is None or "behaviour" not in row:
        raise InvalidInputError(
            f"the earlier run has no answers for feedback {fb['id']!r}; rerun it with answers, "
            "or leave out the feedbacks it did not cover (--skip / --limit)."
        )
    out: dict[str, Any] = {}
    for group in GROUPS:
        before = row["behaviour"][group]
        applies = decisions[group]["c3po_scope"]
        if len(before["in_context"]) != len(applies):
            raise InvalidInputError(
                f"the earlier run scored {len(before['in_context'])} {group} requests of "
                f"{fb['id']!r} and this one {len(applies)}; use the same --examples."
            )
        if judge is not None and not fb.get("checker"):
            if "answers" not in before:
                raise InvalidInputError(
                    f"the earlier run kept no answers for {fb['id']!r} (runs before session "
                    "13 did not); rerun it with answers to judge them."
                )
            kept = before["answers"]
            out[group] = _judged(fb, group, kept["plain"], kept["in_context"], applies, judge)
            continue
        out[group] = {**before, "c3po_scope": _scoped(before["in_context"], applies)}
    return out


def adapter_behaviour(
    fb: dict[str, Any],
    dataset: dict[str, Any],
    work: Path,
    *,
    steps: int,
    max_tokens: int,
) -> dict[str, Any]:
    """Train the feedback's C3PO adapter on its dataset, then answer the held-out prompts with
    no feedback in the prompt; the plain answers are the same model with the adapter off."""
    from peft import PeftModel

    from persona.adapters.c3po import C3POConfig, load_model, train_c3po
    from persona.follow.generate import generate

    cfg = C3POConfig(max_steps=steps, answer_tokens=max_tokens)
    record = train_c3po(dataset, work, cfg)
    base, tokenizer = load_model(None)
    model = PeftModel.from_pretrained(base, str(work)).eval()
    out: dict[str, Any] = {
        "train": {
            k: record[k]
            for k in ("steps", "rows", "seconds", "seconds_per_step", "heldout_implicit_accuracy")
        }
    }
    out["train"]["final_losses"] = record["losses"][-1] if record["losses"] else None
    for group in GROUPS:
        texts = fb[group]
        tuned = generate(model, tokenizer, texts, max_new_tokens=max_tokens)
        with model.disable_adapter():
            plain = generate(model, tokenizer, texts, max_new_tokens=max_tokens)
        counted = [adheres(fb, p, p) is False for p in plain]
        out[group] = {
            "counted": sum(counted),
            "adapter": [
                adheres(fb, a, p) if c else None
                for a, p, c in zip(tuned, plain, counted, strict=True)
            ],
            "sample": {"prompt": texts[0], "plain": plain[0], "adapter": tuned[0]},
        }
    return out


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy of the scope decisions and the behaviour rates, per method."""
    summary: dict[str, Any] = {"scope_accuracy": {}, "applied_rate": {}, "cost": {}}
    for method in METHODS:
        per_group: dict[str, float | None] = {}
        every: list[bool] = []
        for group in GROUPS:
            flags = []
            for row in rows:
                if method == "in_context":
                    decided = [True] * len(row["decisions"][group]["c3po_scope"])
                else:
                    decided = row["decisions"][group][method]
                flags += [d == (group == "in_scope") for d in decided]
            per_group[group] = _rate(flags)
            every += flags
        summary["scope_accuracy"][method] = {"all": _rate(every), **per_group}
    behaved = [r["behaviour"] for r in rows if "behaviour" in r]
    summary["judged_feedbacks"] = {
        by: sum(r.get("judged_by") == by for r in rows)
        for by in ("checker", "llm judge", "not judged")
    }
    if behaved:
        for method in ("in_context", "c3po_scope"):
            rates: dict[str, Any] = {}
            for group in GROUPS:
                flags = [bool(v) for b in behaved for v in b[group][method] if v is not None]
                rates[group] = {"rate": _rate(flags), "n": len(flags)}
            off = [
                bool(v)
                for b in behaved
                for g in ("near_scope", "out_of_scope")
                for v in b[g][method]
                if v is not None
            ]
            rates["near_and_out"] = {"rate": _rate(off), "n": len(off)}
            summary["applied_rate"][method] = rates
        ic, sc = summary["applied_rate"]["in_context"], summary["applied_rate"]["c3po_scope"]
        if ic["near_and_out"]["rate"]:
            summary["over_generalization_cut"] = round(
                1 - (sc["near_and_out"]["rate"] or 0) / ic["near_and_out"]["rate"], 3
            )
        if ic["in_scope"]["rate"] is not None and sc["in_scope"]["rate"] is not None:
            summary["in_scope_adherence_change"] = round(
                sc["in_scope"]["rate"] - ic["in_scope"]["rate"], 3
            )
    tuned = [r for r in rows if "adapter" in r]
    if tuned:  # the adapter beside the prompt-level methods, on the same feedbacks
        subset: dict[str, Any] = {"feedbacks": [r["id"] for r in tuned]}
        for method, source in (
            ("in_context", "behaviour"),
            ("c3po_scope", "behaviour"),
            ("adapter", "adapter"),
        ):
            rates = {}
            for group in GROUPS:
                flags = [bool(v) for r in tuned for v in r[source][group][method] if v is not None]
                rates[group] = {"rate": _rate(flags), "n": len(flags)}
            subset[method] = rates
        summary["adapter_subset"] = subset
    for key in ("llm_calls", "tokens_in", "tokens_out", "seconds", "failed_steps"):
        values = [r["cost"][key] for r in rows]
        summary["cost"][key] = round(statistics.mean(values), 2) if values else None
    return summary


# -- fitting the scope model's shared combiner (development set only) ---------------------------


def scope_features(
    feedbacks: Sequence[dict[str, Any]],
    *,
    llm: BaseChatModel | None,
    embedder: Embedder,
    dataset: DatasetConfig,
    simulate: bool = False,
    cache: Path | None = None,
    tick: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features and labels of every held-out prompt of ``feedbacks``.

    ``simulate``: the dataset's generated prompts are the first half of each set's own prompts
    (a stand-in for a strong LLM), and only the second half is scored.
    """
    xs: list[np.ndarray] = []
    ys: list[int] = []
    owners: list[str] = []
    for fb in feedbacks:
        if simulate:
            half = {g: len(fb[g]) // 2 for g in GROUPS}
            data, _ = DatasetBuilder(None, DatasetConfig(generate=False)).build(fb["text"])
            data["in_scope"]["train"] = fb["in_scope"][: half["in_scope"]]
            data["near_scope"]["train"] = fb["near_scope"][: half["near_scope"]]
            held = {g: fb[g][half[g] :] for g in GROUPS}
        else:
            builder = CachedBuilder(llm, dataset, cache) if cache else DatasetBuilder(llm, dataset)
            data, _ = builder.build(fb["text"])
            held = {g: fb[g] for g in GROUPS}
        model = scope_model_for(data, embedder)
        for group in GROUPS:
            for text, vec in zip(held[group], embedder.embed(held[group]), strict=True):
                xs.append(model.features(vec, embedder.embed(request_words(text))))
                ys.append(int(group == "in_scope"))
                owners.append(fb["id"])
        if tick:
            tick(1)
    return np.array(xs), np.array(ys), owners


def fit_scope(
    features: np.ndarray,
    labels: np.ndarray,
    owners: Sequence[str],
    regimes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The combiner fitted on all rows, and its leave-one-feedback-out accuracy: at p >= 0.5,
    and per regime (``regimes`` names each row's) at the shipped threshold. A left-out feedback
    leaves with its rows of every regime."""
    weights = fit_weights(features, labels, l2=L2_COMBINER)
    logits = np.zeros(len(labels))
    for held in sorted(set(owners)):
        mask = np.array([o == held for o in owners])
        w = np.asarray(fit_weights(features[~mask], labels[~mask], l2=L2_COMBINER))
        logits[mask] = features[mask] @ w[:-1] + w[-1]
    truth = labels == 1
    at_threshold = (logits >= np.log(THRESHOLD / (1 - THRESHOLD))) == truth
    names = list(regimes) if regimes is not None else ["all"] * len(labels)
    return {
        "features": list(FEATURES),
        "weights": list(weights),
        "rows": len(labels),
        "leave_one_feedback_out_accuracy": _rate(list((logits >= 0) == truth)),
        f"leave_one_feedback_out_accuracy_at_{THRESHOLD}": {
            name: _rate([bool(c) for c, n in zip(at_threshold, names, strict=True) if n == name])
            for name in dict.fromkeys(names)
        },
    }


def plot(result: dict[str, Any], path: str) -> None:
    """Scope accuracy and over-generalization per method, as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result["summary"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    acc = summary["scope_accuracy"]
    groups = ["all", *GROUPS]
    width = 0.8 / len(METHODS)
    for k, method in enumerate(METHODS):
        axes[0].bar(
            [i + k * width for i in range(len(groups))],
            [acc[method][g] or 0 for g in groups],
            width,
            label=method,
        )
    axes[0].set_xticks([i + 0.4 - width / 2 for i in range(len(groups))])
    axes[0].set_xticklabels(groups)
    axes[0].set_ylim(0, 1)
    axes[0].set_title(f"scope decisions (embedder {result.get('embedder', '')})")
    axes[0].legend(fontsize=8)
    rates = summary.get("applied_rate") or {}
    if rates:
        methods = list(rates)
        width = 0.8 / len(methods)
        for k, method in enumerate(methods):
            axes[1].bar(
                [i + k * width for i in range(len(GROUPS))],
                [rates[method][g]["rate"] or 0 for g in GROUPS],
                width,
                label=method,
            )
        axes[1].set_xticks([i + 0.4 - width / 2 for i in range(len(GROUPS))])
        axes[1].set_xticklabels(GROUPS)
        axes[1].set_ylim(0, 1)
        axes[1].set_title(f"feedback applied ({result.get('answer_model', '')})", fontsize=9)
        axes[1].legend(fontsize=8)
    fig.suptitle(f"persona bench feedback; dataset LLM: {result.get('llm', '')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
