"""Batched greedy generation with a transformers model, for data generation and evaluation.

Prompts are sorted by length and run in left-padded batches (far faster than one by one on a
CPU); greedy, with the local model's default no-repeat size, so answers match what the layer
serves up to padding numerics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from persona.agents.guidance import guidance_processor
from persona.agents.models import LocalChatModel
from persona.agents.norepeat import answer_no_repeat

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
    negatives: Sequence[str] | None = None,
    guidance_scale: float = 1.0,
    rerank: int = 1,
) -> list[str]:
    """The model's greedy answer to each prompt (a user turn), in the order given.

    ``negatives`` (one per prompt: the same request without its preference) with
    ``guidance_scale`` != 1 guides each answer toward what its prompt adds, as
    :attr:`LocalChatModel.guidance_scale <persona.agents.models.LocalChatModel.guidance_scale>`
    does in the layer; with ``rerank`` > 1 each answer is the best of that many by
    :func:`persona.agents.rerank.choose`, as :attr:`LocalChatModel.rerank
    <persona.agents.models.LocalChatModel.rerank>` chooses (one prompt at a time; with both,
    every candidate is guided, as the layer combines them)."""
    import torch
    from transformers import LogitsProcessorList

    guided = negatives is not None and guidance_scale != 1.0
    if negatives is not None and len(negatives) != len(prompts):
        raise ValueError(f"{len(negatives)} negative prompts for {len(prompts)} prompts")
    if rerank > 1:
        if negatives is None:
            raise ValueError("reranking needs negatives (the prompts without the preference)")
        scale = guidance_scale if guided else 1.0
        return _reranked(model, tokenizer, prompts, negatives, rerank, max_new_tokens, tick, scale)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    try:
        for start in range(0, len(order), batch_size):
            ids = order[start : start + batch_size]
            enc = _encode(tokenizer, [prompts[i] for i in ids]).to(model.device)
            settings: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False}
            n_in = enc["input_ids"].shape[1]
            processors: list[Any] = answer_no_repeat(no_repeat_ngram_size, n_in)
            if guided:
                assert negatives is not None
                neg = _encode(tokenizer, [negatives[i] for i in ids]).to(model.device)
                processors += guidance_processor(
                    model, neg["input_ids"], neg["attention_mask"], guidance_scale
                )
            if processors:
                settings["logits_processor"] = LogitsProcessorList(processors)
            with torch.inference_mode():
                seqs = model.generate(**enc, **settings, pad_token_id=pad)
            for i, row in zip(ids, seqs, strict=True):
                out[i] = tokenizer.decode(row[n_in:], skip_special_tokens=True).strip()
            if tick:
                tick(len(ids))
    finally:
        tokenizer.padding_side = side
    return out


def _reranked(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    negatives: Sequence[str],
    n: int,
    max_new_tokens: int,
    tick: Callable[[int], None] | None,
    guidance_scale: float = 1.0,
) -> list[str]:
    """Each prompt's best of ``n`` answers against its negative, with the settings
    :class:`LocalChatModel` reranks with (greedy first, its no-repeat rule, samples seeded
    by the prompt; each guided against the negative when ``guidance_scale`` != 1)."""
    import torch
    from transformers import LogitsProcessorList

    from persona.agents import rerank as rerank_

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop_ids = LocalChatModel._stop_ids(model, tokenizer)
    out = []
    for prompt, negative in zip(prompts, negatives, strict=True):
        enc = _encode(tokenizer, [prompt]).to(model.device)
        n_in = int(enc["input_ids"].shape[1])
        gen: dict[str, Any] = {
            **enc,
            "max_new_tokens": max_new_tokens,
            "do_sample": False,
            "pad_token_id": pad,
        }
        processors = answer_no_repeat(NO_REPEAT, n_in)
        neg = _encode(tokenizer, [negative]).to(model.device)
        samples = None
        if guidance_scale != 1.0:
            mask = neg["attention_mask"]
            processors += guidance_processor(model, neg["input_ids"], mask, guidance_scale)
            samples = guidance_processor(
                model,
                neg["input_ids"].repeat(n - 1, 1),
                mask.repeat(n - 1, 1),
                guidance_scale,
            )
        if processors:
            gen["logits_processor"] = LogitsProcessorList(processors)
        negative_ids = neg["input_ids"][0].tolist()
        with torch.inference_mode():
            ids = rerank_.choose(model, gen, n, stop_ids, negative_ids, samples)
        out.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
        if tick:
            tick(1)
    return out


def _encode(tokenizer: Any, prompts: Sequence[str]) -> Any:
    """Left-padded token ids of each prompt as one user turn (the padding side is set by the
    caller)."""
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
        )
        for text in prompts
    ]
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
