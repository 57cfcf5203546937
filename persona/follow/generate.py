"""Batched greedy generation with a transformers model, for data generation and evaluation.

Prompts are sorted by length and run in left-padded batches (far faster than one by one on a
CPU); greedy, with the local model's default no-repeat size, so answers match what the layer
serves up to padding numerics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from persona.agents.models import LocalChatModel

NO_REPEAT = LocalChatModel.model_fields["no_repeat_ngram_size"].default


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 160,
    batch_size: int = 8,
    no_repeat_ngram_size: int = NO_REPEAT,
    tick: Callable[[int], None] | None = None,
) -> list[str]:
    """The model's greedy answer to each prompt (a user turn), in the order given."""
    import torch

    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    try:
        for start in range(0, len(order), batch_size):
            ids = order[start : start + batch_size]
            texts = [
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": prompts[i]}],
                    add_generation_prompt=True,
                    tokenize=False,
                )
                for i in ids
            ]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
                model.device
            )
            settings: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False}
            if no_repeat_ngram_size > 0:
                settings["no_repeat_ngram_size"] = no_repeat_ngram_size
            with torch.inference_mode():
                seqs = model.generate(**enc, **settings, pad_token_id=pad)
            n_in = enc["input_ids"].shape[1]
            for i, row in zip(ids, seqs, strict=True):
                out[i] = tokenizer.decode(row[n_in:], skip_special_tokens=True).strip()
            if tick:
                tick(len(ids))
    finally:
        tokenizer.padding_side = side
    return out
