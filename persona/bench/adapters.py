"""``persona bench adapters``: what a per-user adapter costs and what it changes.

Three parts, each optional:

- **train**: held-out synthetic users of the labels benchmark (their hidden preferences are
  executable atoms) get their labeled pairs stored and an adapter trained on the local model
  (``persona train-adapters``' recipe): time per user and per step, peak memory, adapter size,
  and held-out pair accuracy (log p(chosen) > log p(rejected) on pairs never trained on) of the
  plain model vs the model with the user's adapter;
- **serving**: the trained adapters in an :class:`~persona.adapters.serving.AdapterPool` on
  the local model: load latency, switch latency, decoding with vs without an adapter, and one
  mixed batch (a different adapter per row) vs the same rows one by one;
- **edits**: the edits benchmark on the same rounds, with learners that retrain the simulated
  user's adapter from its edits every R rounds (alone, and with CIPHER-5 in the prompt) beside
  the prompt-only learners (see :mod:`persona.bench.edits`).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from persona.adapters.train import AdapterConfig

Tick = Callable[[str], None]


@dataclass(frozen=True)
class TrainBenchConfig:
    users: int = 3
    shots: int = 8  # labeled pairs each user gives (all train)
    test_pairs: int = 12  # held-out pairs measured per user
    seed: int = 0


def _pairs_accuracy(model: Any, tokenizer: Any, pairs: Sequence[Any]) -> tuple[float, list[float]]:
    from persona.adapters.data import Pair
    from persona.adapters.train import pair_margins

    margins = pair_margins(
        model, tokenizer, [Pair(p.prompt, p.chosen, p.rejected, "test") for p in pairs]
    )
    return round(sum(m > 0 for m in margins) / len(margins), 3), margins


def bench_training(
    cfg: TrainBenchConfig, adapter: AdapterConfig, home: Path, tick: Tick | None = None
) -> dict[str, Any]:
    """Train one adapter per synthetic user and measure it on that user's held-out pairs."""
    from peft import PeftModel

    from persona.adapters.c3po import load_model
    from persona.adapters.train import adapter_dir, train_user_adapter
    from persona.bench.labels import LabelsConfig, make_users
    from persona.store.sqlite import SQLiteStore

    labels = LabelsConfig(users=cfg.users + 2, heldout=cfg.users, seed=cfg.seed)
    users = [u for u in make_users(labels) if u.split == "heldout"][: cfg.users]
    store = SQLiteStore(home / "persona.db")
    rows = []
    try:
        for user in users:
            for pair in user.shots[: cfg.shots]:
                store.add_label(user.id, pair.prompt, pair.chosen, pair.rejected)
            record = train_user_adapter(store, home, user.id, adapter)
            base, tokenizer = load_model(adapter.base, adapter.follow_adapter)
            model = PeftModel.from_pretrained(base, str(adapter_dir(home, user.id))).eval()
            test = user.test[: cfg.test_pairs]
            after, _ = _pairs_accuracy(model, tokenizer, test)
            with model.disable_adapter():
                before, _ = _pairs_accuracy(model, tokenizer, test)
            rows.append(
                {
                    "user": user.id,
                    "wants": [str(w) for w in user.wants],
                    "pairs_trained": record["rows"]["train_pairs"],
                    "constraint_rows": record["rows"]["out"],
                    "steps": record["steps"],
                    "seconds": record["seconds"],
                    "seconds_per_step": record["seconds_per_step"],
                    "peak_memory_mb": record["peak_memory_mb"],
                    "adapter_bytes": record["size_bytes"],
                    "heldout_pairs": len(test),
                    "accuracy_plain": before,
                    "accuracy_adapter": after,
                    "losses": [round(s["c3po/total"], 4) for s in record["losses"]],
                }
            )
            if tick:
                tick(user.id)
    finally:
        store.close()
    return {
        "config": asdict(cfg),
        "users": rows,
        "summary": {
            "accuracy_plain": _mean(r["accuracy_plain"] for r in rows),
            "accuracy_adapter": _mean(r["accuracy_adapter"] for r in rows),
            "seconds_per_user": _mean(sum(r["seconds"].values()) for r in rows),
            "seconds_per_step": _mean(r["seconds_per_step"] for r in rows),
            "peak_memory_mb": max((r["peak_memory_mb"] for r in rows), default=None),
            "adapter_bytes": _mean(r["adapter_bytes"] for r in rows),
        },
    }


def _mean(values: Any) -> float | None:
    values = list(values)
    return round(statistics.fmean(values), 4) if values else None


def bench_serving(
    folders: Sequence[str], *, tokens: int = 32, repeats: int = 20, model: Any = None
) -> dict[str, Any]:
    """Load, switch and decode with the adapters in ``folders`` on the local model (or on
    ``model``, a :class:`~persona.agents.models.LocalChatModel`)."""
    import torch

    from persona.agents.models import LocalChatModel

    model = model or LocalChatModel(max_adapters=max(len(folders), 1))
    _, tokenizer = model.load()
    pool = model.adapter_pool()
    base = pool.base
    load_ms = []
    for folder in folders:
        t0 = time.perf_counter()
        with pool.using([folder]):
            pass
        load_ms.append((time.perf_counter() - t0) * 1000)
    switch_ms = []
    for i in range(repeats):
        t0 = time.perf_counter()
        with pool.using([folders[i % len(folders)]]):
            pass
        switch_ms.append((time.perf_counter() - t0) * 1000)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Summarize: the meeting moved to Friday at noon."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    ids = prompt["input_ids"].to(base.device)

    def decode(names: list[str] | None, rows: int = 1) -> float:
        kwargs: dict[str, Any] = {"adapter_names": names} if names else {}
        batch = ids.repeat(rows, 1)
        t0 = time.perf_counter()
        with torch.inference_mode():
            pool.model.generate(
                input_ids=batch,
                attention_mask=torch.ones_like(batch),
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                pad_token_id=tokenizer.eos_token_id,
                **kwargs,
            )
        return time.perf_counter() - t0

    with pool.using(list(folders)) as (_, names):
        assert names is not None
        decode(["__base__"])  # warm up
        plain = min(decode(["__base__"]) for _ in range(3))
        one = min(decode([names[0]]) for _ in range(3))
        mixed = min(decode(list(names), rows=len(names)) for _ in range(2))
        one_by_one = sum(min(decode([n]) for _ in range(2)) for n in names)
    return {
        "adapters": len(folders),
        "dtype": str(base.dtype).replace("torch.", ""),
        "device": str(base.device),
        "load_ms": {"mean": _mean(load_ms), "max": round(max(load_ms), 1)},
        "switch_ms": {
            "p50": round(statistics.median(switch_ms), 3),
            "max": round(max(switch_ms), 3),
        },
        "decode_tokens": tokens,
        "ms_per_token": {
            "base": round(plain * 1000 / tokens, 2),
            "with_adapter": round(one * 1000 / tokens, 2),
        },
        "mixed_batch": {
            "rows": len(names),
            "seconds": round(mixed, 3),
            "one_by_one_seconds": round(one_by_one, 3),
            "speedup": round(one_by_one / mixed, 2),
        },
    }


def bench_edits(
    tasks: Sequence[str],
    learners: Sequence[str],
    rounds: int,
    adapter: AdapterConfig,
    *,
    max_tokens: int = 128,
    on_round: Callable[[str], None] | None = None,
    dtype: str = "auto",
) -> list[dict[str, Any]]:
    """The edits benchmark on ``rounds`` rounds per task with the adapter learners."""
    from persona.agents.models import LocalChatModel
    from persona.bench.edits import EditsConfig, run_edits
    from persona.store.embed import load_embedder

    agent = LocalChatModel(dtype=dtype)  # type: ignore[arg-type]
    embedder = load_embedder("minilm")
    docs = []
    for task in tasks:
        cfg = EditsConfig(task=task, rounds=rounds, max_tokens=max_tokens)
        docs.append(
            run_edits(
                list(learners),
                agent=agent,
                learner_llm=agent,
                user_llm=agent,
                embedder=embedder,
                config=cfg,
                on_round=on_round,
                adapter_config=asdict(adapter),
            )
        )
    return docs


def bench_feedback(
    count: int,
    adapter: AdapterConfig,
    *,
    examples: int = 4,
    prompts: int = 6,
    max_tokens: int = 96,
    model: Any = None,
    tick: Tick | None = None,
) -> list[dict[str, Any]]:
    """Per-user adapters on the feedback benchmark's quantitative feedbacks: the user gives a
    feedback with ``examples`` in- and near-scope requests (no LLM writes the dataset); an
    adapter is trained from it; held-out in-scope and out-of-scope requests are answered with
    no feedback in the prompt, plain and with the adapter, and read by the feedback's checker.
    Only answers whose plain version breaks the feedback are counted (as in the feedback
    benchmark): in scope, the adapter should fix them; out of scope, changing them is
    over-generalization, measured here as the share whose checker flips."""
    from peft import PeftModel

    from persona.adapters.c3po import load_model
    from persona.adapters.train import adapter_dir, train_user_adapter
    from persona.bench.feedback import _learn
    from persona.bench.feedback_checks import adheres, load_feedback_set
    from persona.follow.generate import generate
    from persona.learn.c3po_data import DatasetConfig
    from persona.store.embed import load_embedder

    embedder = load_embedder("minilm")
    chosen = [f for f in load_feedback_set("test") if f.get("checker")][:count]
    rows = []
    for fb in chosen:
        pref, layer, _ = _learn(
            fb, None, embedder, DatasetConfig(categories=0, pool_size=8), None, examples
        )
        try:
            record = train_user_adapter(layer.store, layer.home, "bench", adapter)
            base, tokenizer = load_model(adapter.base, adapter.follow_adapter)
            tuned = PeftModel.from_pretrained(base, str(adapter_dir(layer.home, "bench")))
            row: dict[str, Any] = {
                "feedback": fb["id"],
                "text": fb["text"],
                "train": {k: record[k] for k in ("steps", "rows", "seconds")},
            }
            for group in ("in_scope", "out_of_scope"):
                texts = fb[group][examples : examples + prompts]
                with tuned.disable_adapter():
                    plain = generate(tuned, tokenizer, texts, max_new_tokens=max_tokens)
                answers = generate(tuned, tokenizer, texts, max_new_tokens=max_tokens)
                breaks = [adheres(fb, p, p) is False for p in plain]
                row[group] = {
                    "prompts": len(texts),
                    "plain_breaks": sum(breaks),
                    "adapter_follows": [
                        adheres(fb, a, p)
                        for a, p, b in zip(answers, plain, breaks, strict=True)
                        if b
                    ],
                    "changed": sum(
                        a.strip() != p.strip() for a, p in zip(answers, plain, strict=True)
                    ),
                    "sample": {"prompt": texts[0], "plain": plain[0], "adapter": answers[0]},
                }
            rows.append(row)
        except Exception as exc:  # recorded, the next feedback goes on
            rows.append({"feedback": fb["id"], "text": fb["text"], "error": str(exc)[:300]})
        finally:
            layer.close()
        if tick:
            tick(fb["id"])
    return rows


def run_adapters_bench(
    *,
    train: TrainBenchConfig | None,
    adapter: AdapterConfig,
    edits: dict[str, Any] | None,
    tick: Tick | None = None,
    dtype: str = "auto",
    feedbacks: int = 0,
) -> dict[str, Any]:
    """The whole benchmark document (parts left out are None)."""
    from persona.bench.machine import machine_info

    doc: dict[str, Any] = {
        "benchmark": "adapters",
        "llm": "SmolLM2-135M-Instruct (local, follow adapter merged) + per-user LoRA",
        "adapter_config": asdict(adapter),
        "dtype": dtype,
        "machine": machine_info(),
    }
    with tempfile.TemporaryDirectory(prefix="persona-bench-adapters-") as tmp:
        home = Path(tmp)
        if train is not None:
            doc["train"] = bench_training(train, adapter, home, tick)
            from persona.adapters.train import adapter_dir
            from persona.agents.models import LocalChatModel

            folders = [str(adapter_dir(home, r["user"])) for r in doc["train"]["users"]]
            model = LocalChatModel(dtype=dtype, max_adapters=max(len(folders), 1))  # type: ignore[arg-type]
            doc["serving"] = bench_serving(folders, model=model) if folders else None
    if feedbacks > 0:
        doc["feedback"] = bench_feedback(feedbacks, adapter, tick=tick)
    if edits:
        doc["edits"] = bench_edits(
            edits["tasks"],
            edits["learners"],
            edits["rounds"],
            adapter,
            max_tokens=int(edits.get("max_tokens", 128)),
            on_round=(lambda name: tick(name)) if tick else None,
            dtype=dtype,
        )
    return doc
