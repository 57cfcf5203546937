"""C3PO at adapter level (RLVF, Stephan et al. 2024): a LoRA that applies one feedback in
scope and keeps the model's behaviour elsewhere.

The objective, per optimizer step::

    loss = DPO_sigmoid(beta=0.1)(in-scope: revised > baseline)
         + 0.2 * NLL(out-of-scope prompts -> the model's own baseline answers)
         + 0.1 * NLL(near-scope prompts   -> the model's own baseline answers)

Both answers come from the model being trained (:func:`fill_answers`): the baseline is its
answer to the bare request, the revised answer its rewrite of the baseline following the
feedback. The two SFT terms are plain completion-only cross-entropy on their own batches,
drawn in step with the DPO batches (no KL term), as in the paper's official code. trl's
:class:`~trl.DPOTrainer` computes the DPO term (reference = the adapter switched off);
:class:`C3POTrainer` adds the SFT terms in ``compute_loss`` and logs the three separately.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from persona.adapters.serving import FOLLOW_FIELD
from persona.agents.weights import follow_digest
from persona.errors import InvalidInputError

#: The linear layers of a Llama block.
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
RECORD_FILE = "c3po.json"

#: The revision prompt (the model rewrites its own baseline following the feedback).
REVISE = """\
Request: {prompt}

Answer:
{baseline}

Rewrite the answer so that it follows this feedback: {feedback}
Write only the rewritten answer."""


@dataclass(frozen=True)
class C3POConfig:
    """The paper's objective and LoRA (r=64, alpha=128, lr 5e-5, one epoch)."""

    beta: float = 0.1
    out_weight: float = 0.2
    near_weight: float = 0.1
    rank: int = 64
    alpha: int = 128
    dropout: float = 0.05
    targets: tuple[str, ...] = TARGETS
    learning_rate: float = 5e-5
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    max_length: int = 512
    answer_tokens: int = 160
    seed: int = 0
    gradient_checkpointing: bool = False


# -- data ---------------------------------------------------------------------------------


#: The user's own examples train the adapter beside the generated prompts: in-scope ones as
#: DPO prompts, out-of-scope ones as near-scope SFT rows (they name where it must not apply).
#: They are the surest prompts of all, and with the local model the only in-scope ones.
USER_EXAMPLES = {"in_scope": "user_in_scope", "near_scope": "user_out_of_scope"}


def split_prompts(dataset: dict[str, Any], key: str, split: str) -> list[str]:
    """The prompts of one set (``in_scope``, ``near_scope``, ``out_of_scope``) and split; the
    training split also holds the user's examples of that side."""
    prompts = list(dataset[key][split])
    if split == "train" and key in USER_EXAMPLES:
        prompts += dataset.get(USER_EXAMPLES[key], [])
    return list(dict.fromkeys(prompts))


def _prompts(dataset: dict[str, Any], split: str) -> list[str]:
    keys = ("in_scope", "near_scope", "out_of_scope")
    return [p for key in keys for p in split_prompts(dataset, key, split)]


def fill_answers(
    model: Any,
    tokenizer: Any,
    dataset: dict[str, Any],
    *,
    max_new_tokens: int = 160,
    batch_size: int = 8,
    tick: Any = None,
) -> dict[str, Any]:
    """A copy of ``dataset`` whose ``answers`` hold the model's baseline for every prompt and
    its revision for every in-scope prompt; answers already there are kept (resumable)."""
    from persona.follow.generate import generate

    answers: dict[str, dict[str, str | None]] = {
        k: dict(v) for k, v in (dataset.get("answers") or {}).items()
    }
    every = list(dict.fromkeys([*_prompts(dataset, "train"), *_prompts(dataset, "test")]))
    todo = [p for p in every if not (answers.get(p) or {}).get("baseline")]
    for prompt, text in zip(
        todo,
        generate(
            model, tokenizer, todo, max_new_tokens=max_new_tokens, batch_size=batch_size, tick=tick
        ),
        strict=True,
    ):
        answers.setdefault(prompt, {})["baseline"] = text
    ins = [*split_prompts(dataset, "in_scope", "train"), *dataset["in_scope"]["test"]]
    todo = [p for p in dict.fromkeys(ins) if "revised" not in answers[p]]
    asks = [
        REVISE.format(prompt=p, baseline=answers[p]["baseline"], feedback=dataset["feedback"])
        for p in todo
    ]
    for prompt, text in zip(
        todo,
        generate(
            model, tokenizer, asks, max_new_tokens=max_new_tokens, batch_size=batch_size, tick=tick
        ),
        strict=True,
    ):
        answers[prompt]["revised"] = text
    return {**dataset, "answers": answers}


def _usable(pair: dict[str, str | None]) -> bool:
    base, rev = (pair.get("baseline") or "").strip(), (pair.get("revised") or "").strip()
    return bool(base and rev and rev != base)


def build_rows(
    dataset: dict[str, Any], split: str = "train"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], int]:
    """(DPO rows, near-scope SFT rows, out-of-scope SFT rows, in-scope rows dropped).

    A DPO row is conversational (trl applies the chat template): the request, the revised
    answer as chosen, the baseline as rejected. An in-scope prompt whose revision is empty or
    equal to its baseline teaches nothing and is dropped.
    """
    answers = dataset.get("answers") or {}
    dpo, dropped = [], 0
    for p in split_prompts(dataset, "in_scope", split):
        pair = answers.get(p) or {}
        if not _usable(pair):
            dropped += 1
            continue
        dpo.append(
            {
                "prompt": [{"role": "user", "content": p}],
                "chosen": [{"role": "assistant", "content": pair["revised"]}],
                "rejected": [{"role": "assistant", "content": pair["baseline"]}],
            }
        )

    def sft(key: str) -> list[dict[str, Any]]:
        return [
            {"prompt": p, "answer": answers[p]["baseline"]}
            for p in split_prompts(dataset, key, split)
            if (answers.get(p) or {}).get("baseline")
        ]

    return dpo, sft("near_scope"), sft("out_of_scope"), dropped


def tokenize_sft(
    tokenizer: Any, rows: Sequence[dict[str, Any]], max_length: int
) -> list[dict[str, list[int]]]:
    """Chat-formatted ``prompt -> answer`` with the loss on the answer only (labels -100)."""
    out = []
    for row in rows:
        head = tokenizer.apply_chat_template(
            [{"role": "user", "content": row["prompt"]}], add_generation_prompt=True, tokenize=False
        )
        prompt_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(row["answer"], add_special_tokens=False)["input_ids"]
        ids = (prompt_ids + answer_ids + [tokenizer.eos_token_id])[:max_length]
        labels = ([-100] * len(prompt_ids) + answer_ids + [tokenizer.eos_token_id])[:max_length]
        out.append({"input_ids": ids, "labels": labels})
    return out


def _batches(rows: list[dict[str, list[int]]], size: int, pad: int) -> Iterator[dict[str, Any]]:
    """Padded batches of ``size`` rows, cycling forever (the SFT sets are reused in step)."""
    import torch

    for start in itertools.cycle(range(0, len(rows), size)):
        chunk = rows[start : start + size]
        width = max(len(r["input_ids"]) for r in chunk)
        ids = [r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in chunk]
        labels = [r["labels"] + [-100] * (width - len(r["labels"])) for r in chunk]
        mask = [[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in chunk]
        yield {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }


# -- the trainer ---------------------------------------------------------------------------


def make_trainer_class() -> type:
    """:class:`C3POTrainer`, built on first use (trl is a heavy import)."""
    from trl import DPOTrainer

    class C3POTrainer(DPOTrainer):
        """trl's DPO on in-scope pairs plus weighted NLL on near- and out-of-scope batches."""

        def __init__(
            self,
            *args: Any,
            near: list[dict[str, list[int]]],
            outside: list[dict[str, list[int]]],
            near_weight: float,
            out_weight: float,
            **kwargs: Any,
        ) -> None:
            super().__init__(*args, **kwargs)
            tok: Any = self.processing_class
            pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
            size = self.args.per_device_train_batch_size
            self._near = _batches(near, size, pad) if near and near_weight else None
            self._out = _batches(outside, size, pad) if outside and out_weight else None
            self.near_weight, self.out_weight = near_weight, out_weight

        def _nll(self, model: Any, batches: Iterator[dict[str, Any]] | None) -> Any:
            if batches is None:
                return None
            batch = {k: v.to(self.accelerator.device) for k, v in next(batches).items()}
            return model(**batch).loss

        def compute_loss(
            self,
            model: Any,
            inputs: Any,
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            dpo = super().compute_loss(model, inputs, return_outputs=False)
            mode = "train" if model.training else "eval"
            total = dpo
            self._metrics[mode]["c3po/dpo"].append(float(dpo.detach()))
            for name, weight, batches in (
                ("near", self.near_weight, self._near if model.training else None),
                ("out", self.out_weight, self._out if model.training else None),
            ):
                nll = self._nll(model, batches)
                if nll is not None:
                    total = total + weight * nll
                    self._metrics[mode][f"c3po/sft_{name}"].append(float(nll.detach()))
            self._metrics[mode]["c3po/total"].append(float(total.detach()))
            return (total, {}) if return_outputs else total

    return C3POTrainer


# -- training -----------------------------------------------------------------------------


def load_model(base: str | Path | None, follow_adapter: bool | str = True) -> tuple[Any, Any]:
    """A fresh float32 (model, tokenizer) to train: ``base`` (a transformers folder) or the
    packaged local model with the follow adapter merged (per-user adapters are trained on top
    of the model they are served with)."""
    import torch

    from persona.agents.models import _merge, ensure_local_model, follow_adapter_path
    from persona.follow.train import load_base

    model, tokenizer = load_base(str(base or ensure_local_model()))
    adapter = follow_adapter_path(follow_adapter) if base is None else ""
    if adapter:
        model = _merge(model, adapter)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model, tokenizer


def answer_logp(model: Any, tokenizer: Any, prompt: str, answer: str) -> float:
    """``log p(answer | prompt)`` as the model's reply to one user turn, summed over the
    answer's tokens and its end-of-sequence token."""
    import torch

    head = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
    )
    p_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([p_ids + a_ids], device=model.device)
    with torch.inference_mode():
        logits = model(ids).logits[0, len(p_ids) - 1 : -1].float()
    return float(logits.log_softmax(-1).gather(1, ids[0, len(p_ids) :, None]).sum())


def implicit_accuracy(
    model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]], beta: float
) -> float | None:
    """Share of held-out pairs whose implicit reward beta*(log pi - log ref) prefers the
    revised answer (ref = the adapter switched off)."""
    if not rows:
        return None

    def margin(row: dict[str, Any]) -> float:
        prompt = row["prompt"][0]["content"]
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        return answer_logp(model, tokenizer, prompt, chosen) - answer_logp(
            model, tokenizer, prompt, rejected
        )

    right = 0
    model.eval()
    for row in rows:
        policy = margin(row)
        with model.disable_adapter():
            ref = margin(row)
        right += int(beta * (policy - ref) > 0)
    return round(right / len(rows), 3)


class Recipe(Protocol):
    """The fields of a C3PO-objective run (:class:`C3POConfig`, ``AdapterConfig``)."""

    @property
    def beta(self) -> float: ...
    @property
    def near_weight(self) -> float: ...
    @property
    def out_weight(self) -> float: ...
    @property
    def rank(self) -> int: ...
    @property
    def alpha(self) -> int: ...
    @property
    def dropout(self) -> float: ...
    @property
    def targets(self) -> tuple[str, ...]: ...
    @property
    def learning_rate(self) -> float: ...
    @property
    def epochs(self) -> float: ...
    @property
    def max_steps(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def max_length(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def gradient_checkpointing(self) -> bool: ...


def build_trainer(
    model: Any,
    tokenizer: Any,
    dpo: list[dict[str, Any]],
    near: list[dict[str, Any]],
    outside: list[dict[str, Any]],
    cfg: Recipe,
    out: Path,
    callbacks: Sequence[Any] = (),
) -> Any:
    """A :class:`C3POTrainer` (trl DPO + the two SFT terms) with a fresh LoRA on ``model``:
    CUDA with bf16 when the model is there, else the CPU; logs every step, saves nothing."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import PrinterCallback
    from trl import DPOConfig

    cuda = model.device.type == "cuda"
    args = DPOConfig(
        output_dir=str(out / "checkpoints"),
        beta=cfg.beta,
        loss_type=["sigmoid"],
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=min(cfg.batch_size, len(dpo)),
        gradient_accumulation_steps=getattr(cfg, "gradient_accumulation", 1),
        activation_checkpointing=cfg.gradient_checkpointing,
        max_length=cfg.max_length,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        disable_tqdm=True,
    )
    lora = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.targets),
        task_type="CAUSAL_LM",
    )
    trainer = make_trainer_class()(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(dpo),
        processing_class=tokenizer,
        peft_config=lora,
        near=tokenize_sft(tokenizer, near, cfg.max_length),
        outside=tokenize_sft(tokenizer, outside, cfg.max_length),
        near_weight=cfg.near_weight,
        out_weight=cfg.out_weight,
        callbacks=list(callbacks),
    )
    trainer.remove_callback(PrinterCallback)  # progress goes through callbacks, not stdout
    return trainer


def train_c3po(
    dataset: dict[str, Any],
    out_dir: str | Path,
    config: C3POConfig | None = None,
    *,
    base: str | Path | None = None,
    follow_adapter: bool | str = True,
    model: Any = None,
    tokenizer: Any = None,
    tick: Any = None,
) -> dict[str, Any]:
    """Train one feedback's C3PO adapter into ``out_dir`` (peft format, with ``c3po.json``).

    Answers are generated first by the model itself and saved to ``out_dir/dataset.json``;
    a rerun for the same feedback and model reuses them and answers only new prompts (the
    dataset given, not the saved one, says which prompts train: the user may have added some).
    Returns the record written to ``c3po.json``.
    """
    cfg = config or C3POConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "dataset.json"
    # answers are the model's own: reused only from the same model, budget and feedback
    follow = None if base else follow_digest(follow_adapter)
    answered_by = f"{base or 'packaged'}|follow={follow or 'none'}|tokens={cfg.answer_tokens}"
    try:
        before = json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or cut short by a kill: answer again
        before = {}
    if (before.get("feedback"), before.get("answered_by")) == (dataset["feedback"], answered_by):
        answers = {**(before.get("answers") or {}), **(dataset.get("answers") or {})}
        dataset = {**dataset, "answers": answers}
    if model is None or tokenizer is None:
        model, tokenizer = load_model(base, follow_adapter)
    t0 = time.perf_counter()
    dataset = fill_answers(model, tokenizer, dataset, max_new_tokens=cfg.answer_tokens, tick=tick)
    dataset["answered_by"] = answered_by
    tmp = saved.with_suffix(".tmp")
    tmp.write_text(json.dumps(dataset, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, saved)
    answer_s = time.perf_counter() - t0
    dpo, near, outside, dropped = build_rows(dataset)
    if not dpo:
        raise InvalidInputError(
            f"no usable in-scope pair for feedback {dataset['feedback']!r:.60} ({dropped} "
            "revisions were empty or equal to the baseline); add in-scope examples "
            "(edit_scope(add_in_scope=...)) or build the dataset with a stronger LLM."
        )
    trainer = build_trainer(model, tokenizer, dpo, near, outside, cfg, out)
    t1 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t1
    from persona.follow.train import save_adapter

    save_adapter(trainer.model, out)
    test_rows = build_rows(dataset, "test")[0]
    steps = [
        {k: v for k, v in log.items() if k.startswith("c3po/") or k in ("step", "loss")}
        for log in trainer.state.log_history
        if "c3po/dpo" in log
    ]
    record = {
        "method": "c3po",
        "feedback": dataset["feedback"],
        "config": asdict(cfg),
        "base": str(base) if base else "packaged SmolLM2-135M-Instruct",
        "follow_adapter": follow_adapter if base is None else False,
        **({} if base else {FOLLOW_FIELD: follow}),  # only the packaged model's
        "rows": {"dpo": len(dpo), "near": len(near), "out": len(outside), "dropped": dropped},
        "steps": trainer.state.global_step,
        "losses": steps,
        "seconds": {"answers": round(answer_s, 1), "train": round(train_s, 1)},
        "seconds_per_step": round(train_s / max(trainer.state.global_step, 1), 2),
        "device": model.device.type,
        "heldout_implicit_accuracy": implicit_accuracy(
            trainer.model, tokenizer, test_rows, cfg.beta
        ),
        "heldout_pairs": len(test_rows),
    }
    (out / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record
