"""Log-likelihoods of given answers under a causal LM: what FSPO's LLM judge compares, and
what reranking toward the preferences scores (:mod:`persona.agents.rerank`).

For the judge, the prompt (with a user's labeled pairs, often thousands of tokens) is read
once; its key/value cache is reused for every answer and cropped back after each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from persona.errors import InvalidInputError


def loglikelihoods(
    model: Any,
    tokenizer: Any,
    prompt: str,
    answers: Sequence[str],
    extra: dict[str, Any] | None = None,
) -> list[float]:
    """``log p(answer | prompt)`` of each answer as the model's reply to one user turn, summed
    over the answer's tokens. ``extra`` goes to every forward pass (peft's ``adapter_names``)."""
    import torch

    extra = extra or {}
    chat = [{"role": "user", "content": prompt}]
    head = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    n_head = len(head_ids)
    limit = int(getattr(model.config, "max_position_embeddings", 8192))
    if n_head >= limit:
        raise InvalidInputError(
            f"the prompt is {n_head} tokens, at or beyond the local model's {limit}-token "
            "context; shorten it (fewer or shorter labeled pairs)."
        )
    device = next(model.parameters()).device
    with torch.no_grad():
        first = model(input_ids=torch.tensor([head_ids], device=device), use_cache=True, **extra)
    cache, last = first.past_key_values, first.logits[0, -1].float()
    scores = []
    for answer in answers:
        ids = tokenizer(head + answer, add_special_tokens=False)["input_ids"][:limit]
        if ids[:n_head] != head_ids:  # the answer's first token merged with the prompt's
            scores.append(full_pass(model, ids, n_head, extra))
            continue
        target = torch.tensor(ids[n_head:], device=device)
        if not len(target):
            scores.append(0.0)
            continue
        with torch.no_grad():
            out = model(input_ids=target[None], past_key_values=cache, use_cache=True, **extra)
        cache.crop(-len(target))  # back to the prompt alone for the next answer
        logits = torch.cat([last[None], out.logits[0, :-1].float()])
        logp = torch.log_softmax(logits, dim=-1).gather(1, target[:, None])
        scores.append(float(logp.sum()))
    return scores


def full_pass(
    model: Any, ids: list[int], n_head: int, extra: dict[str, Any] | None = None
) -> float:
    """The log-likelihood of ``ids[n_head:]`` given ``ids[:n_head]`` in one forward pass."""
    import torch

    input_ids = torch.tensor([ids], device=next(model.parameters()).device)
    with torch.no_grad():
        logits = model(input_ids=input_ids, **(extra or {})).logits[0, n_head - 1 : -1].float()
    target = input_ids[0, n_head:]
    return float(torch.log_softmax(logits, dim=-1).gather(1, target[:, None]).sum())


def mean_logprobs(model: Any, head: list[int], answers: list[list[int]]) -> list[float]:
    """The mean log-probability of each answer's tokens after ``head``, in one batch (the head
    is shared, so answers are padded on the right and masked)."""
    import torch

    longest = max((len(a) for a in answers), default=0)
    if longest == 0:
        return [float("-inf")] * len(answers)
    pad = 0
    ids = torch.tensor(
        [head + a + [pad] * (longest - len(a)) for a in answers], device=model.device
    )
    mask = torch.tensor(
        [[1] * (len(head) + len(a)) + [0] * (longest - len(a)) for a in answers],
        device=model.device,
    )
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits[:, len(head) - 1 : -1].float()
    target = ids[:, len(head) :]
    logp = torch.log_softmax(logits, dim=-1).gather(2, target[..., None])[..., 0]
    scores = []
    for row, answer in zip(logp, answers, strict=True):
        k = len(answer)
        scores.append(float(row[:k].mean()) if k else float("-inf"))
    return scores
