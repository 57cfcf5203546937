"""``persona train follow``: teach the local model to apply a stated preference, and to name one.

Three resumable stages under a work folder:

1. ``answers.jsonl``: the base model's own answer to every corpus input (batched greedy);
   an interrupted run keeps what it wrote and continues; ``answers.json`` stamps the data
   version, base model and token budget they were made with, and a different run is refused;
2. ``examples.jsonl`` / ``eval.jsonl``: the training and evaluation examples (:mod:`.data`),
   deterministic for a seed, with their sha256 as the data version;
3. ``checkpoints/``: trl ``SFTTrainer`` (loss on the answer only) with a LoRA from peft, or a
   full fine-tune; a rerun resumes from the last checkpoint.

The result is a peft adapter folder (or a full model folder) with ``follow.json`` beside it:
the recipe, the data version, the base model, the losses and the time it took.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from persona.errors import InvalidInputError
from persona.follow.data import (
    ANSWERS_VERSION,
    Example,
    Input,
    build_examples,
    data_version,
    fingerprint,
    is_eval,
    load_inputs,
    save_examples,
)
from persona.follow.phrases import training_atoms

#: The linear layers of a Llama block; LoRA on all of them.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
RECIPE_FILE = "follow.json"
ANSWERS_STAMP = "answers.json"


@dataclass(frozen=True)
class Recipe:
    """How the follow adapter is trained (recorded beside it)."""

    method: str = "lora"  # lora | full
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] = LORA_TARGETS
    learning_rate: float = 3e-4  # full fine-tune: use about 3e-5
    epochs: float = 1.0
    max_steps: int = -1  # > 0: stop after this many optimizer steps
    batch_size: int = 8
    max_length: int = 640
    warmup_ratio: float = 0.05
    seed: int = 0
    answer_tokens: int = 160  # budget of the base model's answers
    follow_per_input: int = 6
    atoms: str = "all"  # all: the 45 training types | benchmark: the edit benchmark's 13 only
    infer_per_input: int = 2
    aggregate: int = 200
    plain_per_input: int = 1  # copies of each plain example (weight of the model's own answers)
    infer_facts: float = 1.0  # share of inference prompts that show the counted changes
    init_adapter: str = ""  # LoRA only: continue training this adapter instead of a new one
    save_steps: int = 20
    bf16: bool | None = None  # None: where the CPU/GPU computes bfloat16 natively
    eval_examples: int = 96
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if self.method not in ("lora", "full"):
            raise InvalidInputError(f"method={self.method!r}; use 'lora' or 'full'.")
        for name in ("rank", "alpha", "batch_size", "max_length", "answer_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive int, got {value!r}.")
        if not 0 < self.learning_rate < 1:
            raise InvalidInputError(f"learning_rate={self.learning_rate!r}; use e.g. 3e-4.")
        if self.atoms not in ("all", "benchmark"):
            raise InvalidInputError(f"atoms={self.atoms!r}; use 'all' or 'benchmark'.")
        if not isinstance(self.plain_per_input, int) or self.plain_per_input < 1:
            raise InvalidInputError(
                f"plain_per_input must be an int >= 1, got {self.plain_per_input!r}."
            )
        if not 0 <= self.infer_facts <= 1:
            raise InvalidInputError(
                f"infer_facts={self.infer_facts!r}; use a share between 0 and 1 (e.g. 0.5)."
            )
        for name in ("follow_per_input", "infer_per_input", "aggregate"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"{name} must be an int >= 0, got {value!r}.")
        if self.init_adapter:
            if self.method != "lora":
                raise InvalidInputError(
                    f"init_adapter={self.init_adapter!r} continues a LoRA; use method='lora' "
                    "or leave init_adapter empty."
                )
            if not (Path(self.init_adapter) / "adapter_config.json").is_file():
                raise InvalidInputError(
                    f"init_adapter={self.init_adapter!r} is not a peft adapter folder (no "
                    "adapter_config.json); pass the folder `persona train follow` wrote."
                )


def answers_stamp(model_dir: str, max_new_tokens: int) -> dict[str, Any]:
    """What the cached base answers depend on; kept in ``work/answers.json`` beside them."""
    return {
        "answers_version": ANSWERS_VERSION,
        "base_model": _base_name(model_dir),
        "answer_tokens": max_new_tokens,
    }


def check_answers_stamp(work: Path, stamp: dict[str, Any]) -> None:
    """Refuse to mix base answers made another way (an older generator, model or budget)
    with this run's; a work folder with no answers yet gets the stamp."""
    path, meta = work / "answers.jsonl", work / ANSWERS_STAMP
    if not path.is_file():
        meta.write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
        return
    try:
        found = json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else None
    except ValueError:
        found = None
    if found != stamp:
        raise InvalidInputError(
            f"{path} holds base answers made with {found or 'an older generator (no stamp)'}, "
            f"and this run needs {stamp}: pass a new --work folder, or delete answers.jsonl "
            "and examples.jsonl there and train again (checkpoints/ too if the recipe changed)."
        )


def answers_for(
    work: Path,
    inputs: Sequence[Input],
    model_dir: str,
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    tick: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """The base model's answer to each input, cached in ``work/answers.jsonl`` (resumable;
    refused when :func:`answers_stamp` differs from the one the cache was made with)."""
    path = work / "answers.jsonl"
    check_answers_stamp(work, answers_stamp(model_dir, max_new_tokens))
    done: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                done[row["id"]] = row["answer"]
            except (ValueError, KeyError):
                continue  # a line cut by a crash: that input is answered again
    todo = [item for item in inputs if item.id not in done]
    if tick and len(done):
        tick(len(inputs) - len(todo))
    if todo:
        from persona.follow.generate import generate

        model, tokenizer = load_base(model_dir, dtype="auto")
        chunk = batch_size * 2
        with path.open("a", encoding="utf-8") as fh:
            for start in range(0, len(todo), chunk):
                part = todo[start : start + chunk]
                texts = generate(
                    model,
                    tokenizer,
                    [item.request for item in part],
                    max_new_tokens=max_new_tokens,
                    batch_size=batch_size,
                    tick=tick,
                )
                for item, text in zip(part, texts, strict=True):
                    done[item.id] = text
                    fh.write(json.dumps({"id": item.id, "answer": text}) + "\n")
                fh.flush()
    return done


def load_base(model_dir: str, *, dtype: str = "float32") -> tuple[Any, Any]:
    """A fresh (model, tokenizer) from a transformers folder, for training or evaluation."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from persona.config import cpu_has_bf16, set_offline

    set_offline()
    if dtype == "auto":
        dtype = "bfloat16" if cpu_has_bf16() else "float32"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype))
    return model.eval(), tokenizer


def _rows(examples: Sequence[Example]) -> list[dict[str, Any]]:
    return [
        {
            "prompt": [{"role": "user", "content": ex.prompt}],
            "completion": [{"role": "assistant", "content": ex.target}],
        }
        for ex in examples
    ]


def train_follow(
    work: Path,
    out: Path,
    recipe: Recipe,
    *,
    model_dir: str,
    inputs: Sequence[Input] | None = None,
    tick: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) every stage; write the adapter and ``follow.json`` to ``out``."""
    recipe.check()
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from persona.config import cpu_has_bf16

    started = time.time()
    work.mkdir(parents=True, exist_ok=True)
    items = list(inputs) if inputs is not None else load_inputs()
    answers = answers_for(work, items, model_dir, max_new_tokens=recipe.answer_tokens, tick=tick)
    answered_s = time.time() - started
    pool = training_atoms(extra=recipe.atoms == "all")
    train = build_examples(
        items,
        answers,
        seed=recipe.seed,
        aggregate=recipe.aggregate,
        follow_per_input=recipe.follow_per_input,
        infer_per_input=recipe.infer_per_input,
        plain_per_input=recipe.plain_per_input,
        infer_facts=recipe.infer_facts,
        pool=pool,
    )
    held = [i for i in items if is_eval(i)]
    evals = build_examples(
        held,
        answers,
        seed=recipe.seed + 1,
        include_eval=True,
        aggregate=max(8, recipe.eval_examples // 8),
        follow_per_input=recipe.follow_per_input,
        infer_per_input=recipe.infer_per_input,
        infer_facts=recipe.infer_facts,
        pool=pool,
    )[: recipe.eval_examples]
    if not train:
        raise InvalidInputError("no training examples: every base answer was empty or looping.")
    save_examples(train, str(work / "examples.jsonl"))
    save_examples(evals, str(work / "eval.jsonl"))

    bf16 = cpu_has_bf16() or torch.cuda.is_available() if recipe.bf16 is None else recipe.bf16
    model, tokenizer = load_base(model_dir, dtype="float32")
    peft_config = None
    if recipe.init_adapter:
        from peft import PeftModel

        # Continue the given adapter: its rank, alpha and targets are kept (the recipe's are not
        # used), and only its LoRA weights train.
        model = PeftModel.from_pretrained(model, recipe.init_adapter, is_trainable=True)
    elif recipe.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=recipe.rank,
            lora_alpha=recipe.alpha,
            lora_dropout=recipe.dropout,
            target_modules=list(recipe.targets),
            task_type="CAUSAL_LM",
        )
    config = SFTConfig(
        output_dir=str(work / "checkpoints"),
        per_device_train_batch_size=recipe.batch_size,
        per_device_eval_batch_size=recipe.batch_size,
        learning_rate=recipe.learning_rate,
        num_train_epochs=recipe.epochs,
        max_steps=recipe.max_steps,
        warmup_steps=recipe.warmup_ratio,
        lr_scheduler_type="cosine",
        max_length=recipe.max_length,
        completion_only_loss=True,
        logging_steps=5,
        save_steps=recipe.save_steps,
        save_total_limit=2,
        seed=recipe.seed,
        data_seed=recipe.seed,
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
        dataloader_num_workers=0,
        eval_strategy="no",
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(_rows(train)),
        eval_dataset=Dataset.from_list(_rows(evals)) if evals else None,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    before = _eval_loss(trainer) if evals else None
    resume = any((work / "checkpoints").glob("checkpoint-*"))
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    after = _eval_loss(trainer) if evals else None
    out.mkdir(parents=True, exist_ok=True)
    trained: Any = trainer.model
    if recipe.method == "full":
        trained.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
    else:
        save_adapter(trained, out)
        shrink(out)
        portable(out, _base_name(model_dir))
    counts: dict[str, int] = {}
    for ex in train:
        counts[ex.kind] = counts.get(ex.kind, 0) + 1
    from persona.agents.weights import adapter_digest
    from persona.bench.machine import machine_info

    record = {
        "recipe": asdict(recipe),
        "data_version": data_version(recipe.plain_per_input, recipe.infer_facts),
        "data_sha256": fingerprint(train),
        "examples": counts,
        "eval_examples": len(evals),
        "inputs": {"train": sum(not is_eval(i) for i in items), "eval": len(held)},
        "base_model": _base_name(model_dir),
        "lora": _lora_shape(trained) if recipe.method == "lora" else None,
        # which adapter it continued, whatever the folder's path on the training machine
        "init_adapter_digest": adapter_digest(recipe.init_adapter) if recipe.init_adapter else None,
        "bf16_autocast": bf16,
        "eval_loss": {"base": before, "trained": after},
        "train_loss": [
            {"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history if "loss" in h
        ],
        "steps": int(trainer.state.global_step),
        "resumed": resume,
        "train_runtime_s": float(result.metrics.get("train_runtime", 0.0)),
        "answers_s": round(answered_s, 1),
        "total_s": round(time.time() - started, 1),
        "files_bytes": sum(p.stat().st_size for p in out.iterdir() if p.is_file()),
        "machine": machine_info(),
    }
    (out / RECIPE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def _lora_shape(model: Any) -> dict[str, Any]:
    """The trained LoRA's rank and alpha (those of ``init_adapter`` when it was continued)."""
    config = model.peft_config["default"]
    return {"rank": int(config.r), "alpha": int(config.lora_alpha)}


def _eval_loss(trainer: Any) -> float:
    return float(trainer.evaluate()["eval_loss"])


def _base_name(model_dir: str) -> str:
    from persona.agents.models import LOCAL_DIR_NAME, LOCAL_MODEL_NAME

    return LOCAL_MODEL_NAME if Path(model_dir).name == LOCAL_DIR_NAME else str(model_dir)


def portable(folder: Path, base: str) -> None:
    """Name the base model in ``adapter_config.json`` instead of this machine's folder."""
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def save_adapter(model: Any, out: Path, **kwargs: Any) -> None:
    """``model.save_pretrained(out)`` without the model card peft writes beside the weights
    (a template README that says nothing about this adapter; its record says it all)."""
    card = out / "README.md"
    had_card = card.exists()
    model.save_pretrained(str(out), **kwargs)
    if not had_card:
        card.unlink(missing_ok=True)


def shrink(folder: Path) -> None:
    """Store the adapter's tensors in float16 (half the size; peft upcasts them on load)."""
    import torch
    from safetensors.torch import load_file, save_file

    path = folder / "adapter_model.safetensors"
    tensors = load_file(str(path))
    save_file(
        {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in tensors.items()},
        str(path),
        metadata={"format": "pt"},
    )
