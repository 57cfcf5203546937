"""Reranking toward the preferences: keep the answer the preferences explain best.

Where a call states preferences (and passes the same request without them, as
``negative_messages=``), the local model writes its usual answer and ``n - 1`` samples, then
keeps the one whose tokens gain most, on average, from the preferences being in the prompt::

    score(a) = (log p(a | prompt) - log p(a | prompt without the preferences)) / tokens(a)

the pointwise mutual information of the answer and the preferences, per token. Guidance
(:mod:`persona.agents.guidance`) tilts every token toward the preference; here each candidate
is a whole answer the conditioned model wrote itself, and only the choice among them looks at
the preference. The sampling settings were fixed before any measurement, and the per-token
score was chosen over the summed one on the follow bench's training atom types only (see
benchmarks/follow/README.md, session 14).

Sampling is seeded by the prompt's tokens, so the same call gets the same answer.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Sequence
from typing import Any

from persona.agents.likelihood import mean_logprobs
from persona.agents.norepeat import AnswerNoRepeat

#: The samples' temperature and nucleus (the call's own temperature when it is higher).
TEMPERATURE = 0.7
TOP_P = 0.95

# Seeding and restoring torch's global generator is not thread-safe: one sampling call at a time.
_SAMPLING = threading.Lock()


def candidates(
    model: Any,
    gen: dict[str, Any],
    n: int,
    stop_ids: Sequence[int],
    sample_processor: Any | None = None,
    temperature: float = TEMPERATURE,
) -> list[list[int]]:
    """The call's own answer (``gen`` as ``generate`` takes it, one prompt) and ``n - 1``
    samples, as token ids without the prompt, cut before the first of ``stop_ids`` (end of
    turn, padding). ``sample_processor``: the ``logits_processor`` for the samples' rows (the
    call's own, if any, is in ``gen`` and holds one row); the samples are drawn at
    ``temperature`` (or the call's own, when higher)."""
    import torch

    n_in = int(gen["input_ids"].shape[1])
    rows = [model.generate(**gen)[0, n_in:].tolist()]
    if n > 1:
        settings = {
            **gen,
            "do_sample": True,
            "temperature": max(float(gen.get("temperature", 0.0)), temperature),
            "top_p": TOP_P,
            "num_return_sequences": n - 1,
        }
        # the call's own processors hold one row, except the no-repeat rule, which holds none
        own = [
            p for p in settings.pop("logits_processor", None) or [] if isinstance(p, AnswerNoRepeat)
        ]
        processors = own + list(sample_processor or [])
        if processors:
            from transformers import LogitsProcessorList

            settings["logits_processor"] = LogitsProcessorList(processors)
        seed = zlib.crc32(repr(gen["input_ids"][0].tolist()).encode())
        devices = [model.device] if model.device.type == "cuda" else []
        with _SAMPLING, torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            out = model.generate(**settings)
        rows += [row[n_in:].tolist() for row in out]
    return [_until(row, stop_ids) for row in rows]


def _until(ids: list[int], stop_ids: Sequence[int]) -> list[int]:
    for i, token in enumerate(ids):
        if token in stop_ids:
            return ids[:i]
    return ids


def pmi(
    model: Any, prompt_ids: list[int], negative_ids: list[int], answers: list[list[int]]
) -> list[float]:
    """Each answer's mean per-token ``log p(a | prompt) - log p(a | negative)`` (an empty
    answer scores ``-inf``: it is never chosen over a written one)."""
    cond = mean_logprobs(model, prompt_ids, answers)
    neg = mean_logprobs(model, negative_ids, answers)
    return [c - n for c, n in zip(cond, neg, strict=True)]


def choose(
    model: Any,
    gen: dict[str, Any],
    n: int,
    stop_ids: Sequence[int],
    negative_ids: list[int],
    sample_processor: Any | None = None,
) -> list[int]:
    """The token ids of the best of ``n`` :func:`candidates` for ``gen`` (one prompt), by
    :func:`pmi` against ``negative_ids`` (the request without its preferences)."""
    answers = candidates(model, gen, n, stop_ids, sample_processor)
    prompt_ids = gen["input_ids"][0].tolist()
    return answers[best(pmi(model, prompt_ids, negative_ids, answers))]


def best(scores: Sequence[float]) -> int:
    """The index of the highest score; the first (the call's own answer) on ties."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))
