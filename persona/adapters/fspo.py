"""FSPO meta-training (Singh et al. 2025): one shared LoRA that personalizes from a few shots.

Users are tasks. A training row is one **context**: ``shots`` labeled pairs of one user in
FSPO's few-shot layout (:func:`persona.learn.fspo.few_shot_prompt`, the very prompt the layer
places at serving time, as the user turn of the chat template), then a question from a
*different* pair of the same user as the target: its chosen answer ≻ its rejected one.

Training is the reference's two phases, on one LoRA:

1. **SFT** on both targets of every context (prompt → chosen and prompt → rejected, loss on
   the answer only): the model learns the format and the answers' distribution;
2. **IPO** (``loss_type="ipo"``, β = 0.01) on prompt → chosen ≻ rejected with trl's
   :class:`~trl.DPOTrainer`. The reference model is the SFT model, as in the official code
   (its IPO run loads the SFT checkpoint as both policy and reference): trl keeps a frozen
   copy of the SFT adapter (``"ref"``) when it is handed an already trained PeftModel.

Held-out users (never trained on) measure it: their first ``shots`` pairs as the context,
their test pairs as targets, and the implicit reward β·(log π − log π_base) must rank the
chosen answer first (:func:`persona.adapters.c3po.implicit_accuracy`, base = adapter off),
once after SFT and once after IPO. ``fspo.json`` beside the adapter records the config, the
data version, every logged loss, those accuracies, the time taken and the machine.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from persona.adapters.c3po import TARGETS, implicit_accuracy, load_model
from persona.adapters.serving import FOLLOW_FIELD
from persona.agents.weights import follow_digest
from persona.errors import InvalidInputError
from persona.learn.fspo import few_shot_prompt

if TYPE_CHECKING:
    from persona.learn.fspo_scorer import Shot

RECORD_FILE = "fspo.json"


@dataclass(frozen=True)
class FSPOTrainConfig:
    """FSPO's recipe (SFT then IPO with β = 0.01, users as tasks) with a LoRA on a small model."""

    # Pairs of the same user in each context (the reference: 4 for ELIX, 8 for Review and
    # Roleplay). Held-out users are measured with their first ``shots`` pairs.
    shots: int = 4
    # Contexts per meta-train user, each on another target pair (the reference draws about two
    # per pair, over 2(N+1) shuffled passes; 8 keeps a CPU run short).
    contexts: int = 8
    # Characters per text in the prompt: FSPOConfig.max_chars, so training sees what serving does.
    limit: int = 1200
    sft_epochs: float = 1.0  # the reference: one epoch of SFT, then one of IPO
    sft_steps: int = -1  # > 0: stop SFT after this many optimizer steps (overrides epochs)
    ipo_epochs: float = 1.0
    ipo_steps: int = -1  # > 0: stop IPO after this many optimizer steps
    # IPO's regularization; the reference trains with 0.01 (a target log-ratio margin of 50).
    beta: float = 0.01
    loss_type: str = "ipo"  # trl's name for the loss; the reference uses IPO, not DPO's sigmoid
    # LoRA: the reference fine-tunes every weight of a 3B model; on the 135M local model a LoRA
    # of the follow adapter's size on every linear layer keeps the artifact small (~10 MB).
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] = TARGETS
    # LoRA takes far larger steps than the reference's full fine-tune (SFT 1e-7, IPO 1e-6).
    sft_learning_rate: float = 1e-4
    ipo_learning_rate: float = 5e-5
    max_grad_norm: float = 10.0  # the reference clips at 10 (IPO's squared loss is steep)
    batch_size: int = 4  # rows per SFT step, pairs per IPO step (the reference: 4)
    # Tokens of prompt + answer. A row that does not fit is dropped, never cut: a truncated
    # answer would teach a wrong ending. Four 1200-character shots stay under ~4.5k tokens.
    max_length: int = 4096
    # Recompute activations in the backward pass (trl's default): a ~2k-token few-shot row
    # holds ~3 GB of activations on the local model without it; ~20 % slower.
    gradient_checkpointing: bool = True
    eval_pairs: int = 8  # test pairs per held-out user (4 forward passes each, on CPU ~1 s)
    seed: int = 0  # rows, LoRA init and batch order
    # A checkpoint (adapter + optimizer) every this many steps; a killed run continues from
    # the last one (and skips SFT once it is done). 0: no checkpoints.
    save_steps: int = 10

    def check(self) -> None:
        for name in ("shots", "contexts", "limit", "rank", "alpha", "batch_size", "max_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name}={value!r}: use a positive whole number.")
        if self.eval_pairs < 0:
            raise InvalidInputError(f"eval_pairs={self.eval_pairs!r}: use 0 (no eval) or more.")
        if self.beta <= 0:
            raise InvalidInputError(f"beta={self.beta!r}: use a positive value (FSPO: 0.01).")
        for name in ("sft_steps", "ipo_steps"):
            if getattr(self, name) == 0:
                raise InvalidInputError(f"{name}=0: use -1 (one epoch) or a positive count.")


class MetaUser(Protocol):
    """A user as a task (:class:`persona.bench.labels.LabelUser` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def split(self) -> str: ...  # "train" (meta-train) | "heldout"
    @property
    def shots(self) -> Sequence[Shot]: ...  # labeled pairs (a held-out user's context)
    @property
    def test(self) -> Sequence[Shot]: ...  # a held-out user's test pairs


@dataclass(frozen=True)
class Context:
    """One FSPO row: a user's shots, then a question of theirs whose answers are the target."""

    user: str
    shots: tuple[Shot, ...]
    target: Shot
    prompt: str  # few_shot_prompt(shots, target.prompt): the user turn

    def dpo_row(self) -> dict[str, Any]:
        """Conversational preference row (trl applies the chat template)."""
        return {
            "prompt": [{"role": "user", "content": self.prompt}],
            "chosen": [{"role": "assistant", "content": self.target.chosen}],
            "rejected": [{"role": "assistant", "content": self.target.rejected}],
        }

    def sft_rows(self) -> list[dict[str, Any]]:
        """Both targets as completions: the reference's SFT is on chosen *and* rejected."""
        return [
            {
                "prompt": [{"role": "user", "content": self.prompt}],
                "completion": [{"role": "assistant", "content": answer}],
            }
            for answer in (self.target.chosen, self.target.rejected)
        ]


# -- data ---------------------------------------------------------------------------------


def build_rows(
    users: Sequence[MetaUser], cfg: FSPOTrainConfig, seed: int | None = None
) -> list[Context]:
    """``cfg.contexts`` contexts per meta-train user: a random ``cfg.shots`` of the user's
    pairs as shots and another of their pairs as the target. Targets go round a shuffled order
    so that every pair is a target about equally often. Seeded per user: the same users and
    seed give the same rows, and adding a user leaves the others' rows as they were."""
    cfg.check()
    seed = cfg.seed if seed is None else seed
    train = [u for u in users if u.split == "train"]
    if not train:
        raise InvalidInputError(
            f"no meta-train user among {len(users)} users (split='train'); FSPO trains on "
            "train users and measures held-out ones: build users with users > heldout, e.g. "
            "make_users(LabelsConfig(users=16, heldout=4))."
        )
    rows: list[Context] = []
    for user in train:
        pairs = [*user.shots, *user.test]
        if len(pairs) < cfg.shots + 1:
            raise InvalidInputError(
                f"user {user.id!r} has {len(pairs)} labeled pairs, and a context needs "
                f"shots={cfg.shots} of them plus a different target pair: lower shots to "
                f"{max(len(pairs) - 1, 0)} or give each user at least {cfg.shots + 1} pairs "
                "(LabelsConfig.train_pairs)."
            )
        rng = random.Random(f"fspo:{seed}:{user.id}")
        order: list[int] = []
        for _ in range(cfg.contexts):
            if not order:
                order = rng.sample(range(len(pairs)), len(pairs))
            t = order.pop()
            others = [i for i in range(len(pairs)) if i != t]
            shots = tuple(pairs[i] for i in rng.sample(others, cfg.shots))
            target = pairs[t]
            prompt = few_shot_prompt(shots, target.prompt, limit=cfg.limit)
            rows.append(Context(user.id, shots, target, prompt))
    return rows


def heldout_rows(users: Sequence[MetaUser], cfg: FSPOTrainConfig) -> list[Context]:
    """The measurement: each held-out user's first ``shots`` pairs as the context for each of
    their first ``eval_pairs`` test pairs (what the layer does for a user with few labels)."""
    rows: list[Context] = []
    for user in users:
        if user.split != "heldout" or cfg.eval_pairs == 0:
            continue
        if len(user.shots) < cfg.shots or not user.test:
            raise InvalidInputError(
                f"held-out user {user.id!r} has {len(user.shots)} shots and {len(user.test)} "
                f"test pairs; measuring needs shots={cfg.shots} shots and a test pair: lower "
                "shots or build held-out users with more (LabelsConfig.shots, test_pairs)."
            )
        shots = tuple(user.shots[: cfg.shots])
        for target in user.test[: cfg.eval_pairs]:
            prompt = few_shot_prompt(shots, target.prompt, limit=cfg.limit)
            rows.append(Context(user.id, shots, target, prompt))
    return rows


def fingerprint(rows: Sequence[Context]) -> str:
    """sha256 of the rows' text: the data version recorded beside the adapter."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(
            json.dumps(
                [row.user, row.prompt, row.target.chosen, row.target.rejected], ensure_ascii=False
            ).encode()
        )
    return digest.hexdigest()


def fitting(tokenizer: Any, rows: Sequence[Context], max_length: int) -> tuple[list[Context], int]:
    """(rows whose prompt and longer answer fit in ``max_length`` tokens, rows dropped)."""
    kept = []
    for row in rows:
        head = tokenizer.apply_chat_template(
            [{"role": "user", "content": row.prompt}], add_generation_prompt=True, tokenize=False
        )
        n_prompt = len(tokenizer(head, add_special_tokens=False)["input_ids"])
        n_answer = max(
            len(tokenizer(a, add_special_tokens=False)["input_ids"])
            for a in (row.target.chosen, row.target.rejected)
        )
        if n_prompt + n_answer + 2 <= max_length:  # + end-of-turn tokens
            kept.append(row)
    return kept, len(rows) - len(kept)


# -- training -----------------------------------------------------------------------------


def _ticker(tick: Callable[[int], None] | None) -> list[Any]:
    """A trainer callback that calls ``tick(1)`` after every optimizer step."""
    if tick is None:
        return []
    from transformers import TrainerCallback

    step = tick

    class Tick(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            step(1)

    return [Tick()]


def _common(cfg: FSPOTrainConfig, out: Path, phase: str, cuda: bool) -> dict[str, Any]:
    import torch

    return {
        "output_dir": str(out / "checkpoints" / phase),
        "per_device_train_batch_size": cfg.batch_size,
        "max_length": cfg.max_length,
        "max_grad_norm": cfg.max_grad_norm,
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "logging_steps": 1,
        "save_strategy": "steps" if cfg.save_steps > 0 else "no",
        "save_steps": max(cfg.save_steps, 1),
        "save_total_limit": 1,
        "report_to": [],
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "use_cpu": not cuda,
        "bf16": cuda and torch.cuda.is_bf16_supported(),
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }


class _Resume:
    """What a killed ``train_fspo`` left in ``out``: trainer checkpoints of each phase, and
    the adapter after SFT. Kept only while the data and the recipe are the same."""

    def __init__(self, out: Path, key: dict[str, Any]) -> None:
        key = json.loads(json.dumps(key))  # as it reads back (tuples become lists)
        self.out, self.key = out, key
        path = out / "resume.json"
        try:
            same = json.loads(path.read_text(encoding="utf-8")) == key
        except (OSError, ValueError):
            same = False
        if not same:  # another run's leftovers: start over
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
            shutil.rmtree(out / "sft", ignore_errors=True)
            path.write_text(json.dumps(key), encoding="utf-8")

    def checkpoint(self, phase: str) -> str | None:
        from transformers.trainer_utils import get_last_checkpoint

        folder = self.out / "checkpoints" / phase
        return get_last_checkpoint(str(folder)) if folder.is_dir() else None

    def sft_done(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads((self.out / "sft" / "sft.json").read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None

    def save_sft(self, model: Any, state: dict[str, Any]) -> None:
        model.save_pretrained(str(self.out / "sft"), selected_adapters=["default"])
        (self.out / "sft" / "sft.json").write_text(json.dumps(state), encoding="utf-8")

    def load_sft(self, model: Any) -> Any:
        """``model`` (the PeftModel SFT built) with the saved SFT adapter's weights."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        weights = load_file(str(self.out / "sft" / "adapter_model.safetensors"))
        set_peft_model_state_dict(model, weights, adapter_name="default")
        return model

    def finish(self) -> None:
        for name in ("checkpoints", "sft"):
            shutil.rmtree(self.out / name, ignore_errors=True)
        (self.out / "resume.json").unlink(missing_ok=True)


def _losses(trainer: Any, keys: tuple[str, ...]) -> list[dict[str, float]]:
    return [
        {k: log[k] for k in ("step", *keys) if k in log}
        for log in trainer.state.log_history
        if "loss" in log
    ]


def train_fspo(
    users: Sequence[MetaUser],
    out_dir: str | Path,
    config: FSPOTrainConfig | None = None,
    *,
    base: str | Path | None = None,
    model: Any = None,
    tokenizer: Any = None,
    tick: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Meta-train one shared FSPO LoRA on ``users`` (SFT, then IPO) into ``out_dir``.

    ``base`` is a transformers folder; by default the packaged local model with the follow
    adapter merged (the model the layer serves). ``tick(n)`` is called after every optimizer
    step and after each held-out measurement (n = pairs measured). Returns the record written
    to ``out_dir/fspo.json`` beside the adapter.
    """
    cfg = config or FSPOTrainConfig()
    rows = build_rows(users, cfg)
    held = heldout_rows(users, cfg)
    started = time.perf_counter()
    if model is None or tokenizer is None:
        model, tokenizer = load_model(base)
    loaded_s = time.perf_counter() - started

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    rows, dropped = fitting(tokenizer, rows, cfg.max_length)
    held, held_dropped = fitting(tokenizer, held, cfg.max_length)
    if not rows:
        raise InvalidInputError(
            f"no context fits in max_length={cfg.max_length} tokens ({dropped} dropped): raise "
            "max_length, or lower shots or limit (characters per text)."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    set_seed(cfg.seed)  # the LoRA's initial weights
    run = _Resume(out, {"data_sha256": fingerprint(rows), "config": asdict(cfg)})

    sft_rows = [r for row in rows for r in row.sft_rows()]
    sft = SFTTrainer(
        model=model,
        args=SFTConfig(
            **_common(cfg, out, "sft", cuda),
            learning_rate=cfg.sft_learning_rate,
            num_train_epochs=cfg.sft_epochs,
            max_steps=cfg.sft_steps,
            completion_only_loss=True,
        ),
        train_dataset=Dataset.from_list(sft_rows),
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=cfg.rank,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            target_modules=list(cfg.targets),
            task_type="CAUSAL_LM",
        ),
        callbacks=_ticker(tick),
    )
    t0 = time.perf_counter()
    sft_done = run.sft_done()
    if sft_done is None:
        sft.train(resume_from_checkpoint=run.checkpoint("sft"))
        sft_done = {"steps": int(sft.state.global_step), "losses": _losses(sft, ("loss",))}
        run.save_sft(sft.model, sft_done)
        policy: Any = sft.model  # the PeftModel holding the LoRA ("default")
    else:  # a killed run had finished SFT: continue from its adapter
        policy = run.load_sft(sft.model)
    sft_s = time.perf_counter() - t0

    def measure() -> tuple[float | None, float]:
        t = time.perf_counter()
        acc = implicit_accuracy(policy, tokenizer, [r.dpo_row() for r in held], cfg.beta)
        if tick and held:
            tick(len(held))
        return acc, time.perf_counter() - t

    acc_sft, eval_sft_s = measure()

    # IPO continues the same LoRA; handed a trained PeftModel and no ref_model, trl freezes a
    # copy of the adapter as the reference ("ref"): the SFT model, as in the reference code.
    ipo = DPOTrainer(
        model=policy,
        args=DPOConfig(
            **_common(cfg, out, "ipo", cuda),
            beta=cfg.beta,
            loss_type=[cfg.loss_type],
            learning_rate=cfg.ipo_learning_rate,
            num_train_epochs=cfg.ipo_epochs,
            max_steps=cfg.ipo_steps,
        ),
        train_dataset=Dataset.from_list([r.dpo_row() for r in rows]),
        processing_class=tokenizer,
        callbacks=_ticker(tick),
    )
    t1 = time.perf_counter()
    ipo.train(resume_from_checkpoint=run.checkpoint("ipo"))
    ipo_s = time.perf_counter() - t1
    acc_ipo, eval_ipo_s = measure()

    from persona.agents.models import LOCAL_MODEL_NAME
    from persona.follow.train import portable, save_adapter, shrink

    trained: Any = ipo.model
    save_adapter(trained, out, selected_adapters=["default"])
    run.finish()  # checkpoints and the SFT adapter: only a killed run needs them
    shrink(out)  # float16 tensors: half the size, peft upcasts on load
    portable(out, str(base) if base else LOCAL_MODEL_NAME)  # + the follow adapter, merged

    from persona.bench.machine import machine_info

    n_sft, n_ipo = int(sft_done["steps"]), int(ipo.state.global_step)
    record = {
        "method": "fspo",
        "config": asdict(cfg),
        "base": str(base) if base else "packaged SmolLM2-135M-Instruct",
        "follow_adapter": base is None,
        **({} if base else {FOLLOW_FIELD: follow_digest(True)}),  # only the packaged model's
        "reference_model": "the SFT model (a frozen copy of the adapter after SFT)",
        "users": {
            "train": sum(u.split == "train" for u in users),
            "heldout": sum(u.split == "heldout" for u in users),
        },
        "rows": {"contexts": len(rows), "sft": len(sft_rows), "ipo": len(rows)},
        "dropped_too_long": {"contexts": dropped, "heldout_pairs": held_dropped},
        "heldout_pairs": len(held),
        "data_sha256": fingerprint(rows),
        "steps": {"sft": n_sft, "ipo": n_ipo},
        "losses": {
            "sft": sft_done["losses"],
            "ipo": _losses(
                ipo, ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen")
            ),
        },
        # beta * (log pi - log pi_base) ranks the user's chosen answer first; base = adapter off
        "heldout_implicit_accuracy": {"after_sft": acc_sft, "after_ipo": acc_ipo},
        "seconds": {
            "load": round(loaded_s, 1),
            "sft": round(sft_s, 1),
            "ipo": round(ipo_s, 1),
            "eval": round(eval_sft_s + eval_ipo_s, 1),
        },
        "seconds_per_step": {
            "sft": round(sft_s / max(n_sft, 1), 2),
            "ipo": round(ipo_s / max(n_ipo, 1), 2),
        },
        "device": "cuda" if cuda else "cpu",
        "files_bytes": sum(p.stat().st_size for p in out.iterdir() if p.is_file()),
        "machine": machine_info(),
    }
    (out / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record
