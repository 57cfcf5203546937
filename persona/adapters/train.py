"""Train one user's LoRA adapter from all their signals: DPO with C3PO's constraint terms.

The objective is C3PO's (:mod:`persona.adapters.c3po`) over the whole user, not one feedback::

    loss = DPO_sigmoid(beta)(every preference pair: edits, feedback revisions, labels)
         + out_weight  * NLL(out-of-scope and pool requests -> the model's own answers)
         + near_weight * NLL(near-scope requests           -> the model's own answers)

Per-user adapters are trained **on top of** the model they are served with: the packaged
SmolLM2 with the shared follow adapter merged into its weights (the follow adapter is a
shared skill, folded in once; a user's LoRA then only learns that user, and serving needs one
LoRA per row, which peft's mixed batches allow, not two stacked ones).

Files: ``<home>/adapters/<safe user dir>/`` holds peft's ``adapter_config.json`` and
``adapter_model.safetensors`` plus ``training.json`` (recipe, data version, loss curve,
held-out pair accuracy, time, memory). Training happens in ``<home>/adapters/.work/`` and the
finished folder replaces the old one in two renames, so a killed run never leaves a half
adapter where the server reads; answers generated before a kill are kept there and reused.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from persona.adapters.c3po import TARGETS
from persona.adapters.data import Pair, UserData, assemble, training_rows
from persona.adapters.serving import FOLLOW_FIELD, follow_mismatch
from persona.agents.weights import follow_digest
from persona.config import safe_dir_name
from persona.errors import InvalidInputError
from persona.store.base import Store

RECORD_FILE = "training.json"
WORK_DIR = ".work"
#: ``tick(event, value)``: ("answers", n done) while answering, ("step", loss) per step.
Tick = Callable[[str, float], None]


@dataclass(frozen=True)
class AdapterConfig:
    """The recipe. Defaults suit the 135M local model on a CPU; for a 7B base on one GPU use
    ``rank=64, alpha=128, learning_rate=5e-5`` (the C3PO paper's) and
    ``gradient_checkpointing=True``."""

    #: A transformers folder; None: the packaged SmolLM2 with the follow adapter merged.
    base: str | None = None
    follow_adapter: bool | str = True
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] = TARGETS
    learning_rate: float = 1e-4
    epochs: float = 3.0
    #: > 0: stop after this many optimizer steps (overrides ``epochs``).
    max_steps: int = -1
    batch_size: int = 4
    gradient_accumulation: int = 1
    gradient_checkpointing: bool = False
    max_length: int = 512
    answer_tokens: int = 160
    beta: float = 0.1
    near_weight: float = 0.1
    out_weight: float = 0.2
    #: General pool requests answered by the base model as an SFT constraint (0: none).
    constraint_prompts: int = 8
    #: Share of the user's own pairs held out to measure pair accuracy.
    test_share: float = 0.2
    seed: int = 0

    def check(self) -> AdapterConfig:
        for name in ("rank", "alpha", "batch_size", "gradient_accumulation", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name}={value!r} must be a whole number >= 1.")
        if not 0 <= self.test_share < 1:
            raise InvalidInputError(f"test_share={self.test_share!r} must be in [0, 1).")
        if self.learning_rate <= 0 or self.epochs <= 0:
            raise InvalidInputError("learning_rate and epochs must be > 0.")
        return self

    @classmethod
    def of(cls, values: dict[str, Any]) -> AdapterConfig:
        """A config from a dict (e.g. a JSON record), naming any unknown key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInputError(
                f"unknown adapter option(s) {unknown}; known: {', '.join(sorted(known))}."
            )
        clean: dict[str, Any] = {k: tuple(v) if k == "targets" else v for k, v in values.items()}
        return cls(**clean).check()


def adapter_dir(home: Path, user_id: str) -> Path:
    """Where the user's adapter lives; the user id never becomes a raw path."""
    return Path(home) / "adapters" / safe_dir_name(user_id)


def read_record(home: Path, user_id: str) -> dict[str, Any] | None:
    """The ``training.json`` of the user's adapter, or None when there is none (or unreadable)."""
    path = adapter_dir(home, user_id) / RECORD_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def peak_memory_mb() -> float:
    """This process's peak resident memory (or the GPU's peak allocation when on CUDA)."""
    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20, 1)


# -- answers generated by the model itself (cached across killed runs) ---------------------


class _Answers:
    """``<home>/adapters/.work/<user>/answers.json``: answers of the base model, reused."""

    def __init__(self, work: Path, base_id: str) -> None:
        self.path = work / "answers.json"
        self.base_id = base_id
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = {}
        same = isinstance(doc, dict) and doc.get("base") == base_id
        self.feedback: dict[str, Any] = doc.get("feedback", {}) if same else {}
        self.pool: dict[str, str] = doc.get("pool", {}) if same else {}

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        doc = {"base": self.base_id, "feedback": self.feedback, "pool": self.pool}
        tmp.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.path)


def _answer(
    model: Any, tokenizer: Any, data: UserData, cache: _Answers, cfg: AdapterConfig, tick: Tick
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    from persona.adapters.c3po import fill_answers
    from persona.follow.generate import generate

    done = [0]

    def count(n: int) -> None:
        done[0] += n
        tick("answers", done[0])

    answered = {}
    for key, dataset in sorted(data.feedback.items()):
        cached = cache.feedback.get(key)
        if cached and cached.get("feedback") == dataset.get("feedback"):
            dataset = {**dataset, "answers": cached.get("answers") or {}}
        answered[key] = fill_answers(
            model, tokenizer, dataset, max_new_tokens=cfg.answer_tokens, tick=count
        )
        cache.feedback[key] = answered[key]
        cache.save()
    todo = [p for p in data.constraint_prompts if p not in cache.pool]
    if todo:
        outs = generate(model, tokenizer, todo, max_new_tokens=cfg.answer_tokens, tick=count)
        cache.pool.update(zip(todo, outs, strict=True))
        cache.save()
    return answered, [cache.pool[p] for p in data.constraint_prompts]


# -- pair accuracy --------------------------------------------------------------------------


def pair_margins(model: Any, tokenizer: Any, pairs: Sequence[Pair]) -> list[float]:
    """``log p(chosen) - log p(rejected)`` of each pair under ``model`` (summed over tokens)."""
    from persona.adapters.c3po import answer_logp

    model.eval()
    return [
        answer_logp(model, tokenizer, p.prompt, p.chosen)
        - answer_logp(model, tokenizer, p.prompt, p.rejected)
        for p in pairs
    ]


def _accuracy(margins: Sequence[float]) -> float | None:
    return round(sum(m > 0 for m in margins) / len(margins), 3) if margins else None


# -- training -------------------------------------------------------------------------------


def _trainer(
    model: Any,
    tokenizer: Any,
    train: list[Pair],
    near: list[dict[str, str]],
    outside: list[dict[str, str]],
    cfg: AdapterConfig,
    out: Path,
    tick: Tick,
) -> Any:
    from transformers import TrainerCallback

    from persona.adapters.c3po import build_trainer

    class Progress(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "c3po/total" in logs:
                tick("step", float(logs["c3po/total"]))

    rows = [p.dpo_row() for p in train]
    return build_trainer(model, tokenizer, rows, near, outside, cfg, out, [Progress()])


def train_user_adapter(
    store: Store,
    home: str | Path,
    user_id: str,
    config: AdapterConfig | None = None,
    *,
    model: Any = None,
    tokenizer: Any = None,
    tick: Tick | None = None,
) -> dict[str, Any]:
    """Train ``user_id``'s adapter from everything the store holds about them.

    Returns the record also written to ``training.json`` and to the store's adapter row.
    ``model``/``tokenizer``: a float32 base to train on (tests pass a tiny one); default the
    packaged model (:attr:`AdapterConfig.base`), on CUDA with bf16 when present.
    Raises :class:`~persona.errors.InvalidInputError` when the user has nothing to learn from.
    """
    import torch
    import transformers

    cfg = (config or AdapterConfig()).check()
    tick = tick or (lambda event, value: None)
    home = Path(home)
    data = assemble(
        store, user_id, test_share=cfg.test_share, constraint_prompts=cfg.constraint_prompts
    )
    if not data.pairs and not data.feedback:
        raise InvalidInputError(
            f"user {user_id!r} has no edits, feedback or labels to train an adapter on; "
            "teach persona first (edit an answer, give feedback or label a pair)."
        )
    transformers.set_seed(cfg.seed)
    if model is None or tokenizer is None:
        from persona.adapters.c3po import load_model

        model, tokenizer = load_model(cfg.base, cfg.follow_adapter)
    work = home / "adapters" / WORK_DIR / safe_dir_name(user_id)
    work.mkdir(parents=True, exist_ok=True)
    follow = None if cfg.base else follow_digest(cfg.follow_adapter)
    base_id = cfg.base or f"packaged-smollm2+follow={follow or 'none'}"
    t0 = time.perf_counter()
    answered, pool_answers = _answer(model, tokenizer, data, _Answers(work, base_id), cfg, tick)
    answer_s = time.perf_counter() - t0
    pairs, near, outside = training_rows(data, answered, pool_answers)
    train = [p for p in pairs if p.split == "train"]
    test = [p for p in pairs if p.split == "test"]
    if not train:
        raise InvalidInputError(
            f"user {user_id!r} has no usable preference pair (feedback revisions were empty "
            "or equal to the baseline); add edits, labels or in-scope examples."
        )
    before = pair_margins(model, tokenizer, test)
    out = work / f"out-{uuid.uuid4().hex[:8]}"
    trainer = _trainer(model, tokenizer, train, near, outside, cfg, out, tick)
    t1 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t1
    peft_model = trainer.model
    after = pair_margins(peft_model, tokenizer, test)
    with peft_model.disable_adapter():
        ref = pair_margins(peft_model, tokenizer, test)
    steps = max(trainer.state.global_step, 1)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    from persona.follow.train import save_adapter

    save_adapter(peft_model, out)
    record = {
        "method": "dpo+c3po-constraints",
        "user_id": user_id,
        "data_version": data.version,
        "config": asdict(cfg),
        "base": base_id,
        **({} if cfg.base else {FOLLOW_FIELD: follow}),  # only the packaged model's
        "device": model.device.type,
        "dtype": "bf16" if trainer.args.bf16 else "fp32",
        "rows": {
            "train_pairs": len(train),
            "test_pairs": len(test),
            "near": len(near),
            "out": len(outside),
            **data.counts,
        },
        "steps": trainer.state.global_step,
        "losses": [
            {k: v for k, v in log.items() if k.startswith("c3po/") or k in ("step", "loss")}
            for log in trainer.state.log_history
            if "c3po/total" in log
        ],
        "seconds": {"answers": round(answer_s, 2), "train": round(train_s, 2)},
        "seconds_per_step": round(train_s / steps, 3),
        "peak_memory_mb": peak_memory_mb(),
        "heldout": {
            "pairs": len(test),
            "accuracy_before": _accuracy(before),
            "accuracy_after": _accuracy(after),
            "implicit_reward_accuracy": _accuracy([a - r for a, r in zip(after, ref, strict=True)]),
        },
        "trained_at": time.time(),
        "torch": torch.__version__,
    }
    (out / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    record["size_bytes"] = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    _publish(store, home, user_id, out, record)
    return record


def _publish(store: Store, home: Path, user_id: str, out: Path, record: dict[str, Any]) -> None:
    """Move the finished adapter into place and record it, unless the user was deleted."""
    if not store.has_user(user_id):  # deleted while training: leave nothing behind
        shutil.rmtree(out.parent, ignore_errors=True)
        raise InvalidInputError(f"user {user_id!r} was deleted while training; nothing was kept.")
    target = adapter_dir(home, user_id)
    old = out.parent / f"old-{uuid.uuid4().hex[:8]}"
    if target.exists():
        os.replace(target, old)
    os.replace(out, target)
    shutil.rmtree(old, ignore_errors=True)
    meta = {
        k: record[k]
        for k in ("data_version", "steps", "heldout", "seconds", "size_bytes", "trained_at")
    }
    store.set_adapter(user_id, target.name, str(target.relative_to(home)), meta)


def _recorded_config(record: dict[str, Any] | None) -> AdapterConfig:
    """The config an adapter was trained with (the data it saw depends on it)."""
    try:
        return AdapterConfig.of(dict(record["config"])) if record else AdapterConfig()
    except (InvalidInputError, KeyError, TypeError, ValueError):
        return AdapterConfig()


def unfit(home: Path, user_id: str, follow_adapter: bool | str) -> str | None:
    """Why the user's adapter was trained for other weights than the local model with
    ``follow_adapter`` (see :func:`~persona.adapters.serving.follow_mismatch`), or None."""
    return follow_mismatch(adapter_dir(home, user_id), follow_digest(follow_adapter))


def adapter_status(
    store: Store, home: str | Path, user_id: str, follow_adapter: bool | str = True
) -> dict[str, Any]:
    """Whether the user has an adapter, its data version and whether it is stale: trained on
    older data, or for the local model with another follow adapter than ``follow_adapter``
    (``unfit`` says why; such an adapter is not served until retrained)."""
    record = read_record(Path(home), user_id)
    cfg = _recorded_config(record)
    current = assemble(
        store, user_id, test_share=cfg.test_share, constraint_prompts=cfg.constraint_prompts
    ).version
    trained = record.get("data_version") if record else None
    why = unfit(Path(home), user_id, follow_adapter) if record else None
    return {
        "user_id": user_id,
        "trained": record is not None,
        "data_version": current,
        "trained_version": trained,
        "stale": record is not None and (trained != current or why is not None),
        "unfit": why,
        "path": str(adapter_dir(Path(home), user_id)) if record else None,
        "record": record,
    }
