"""No repeated n-gram within the answer, while the prompt's text may be copied.

transformers' ``no_repeat_ngram_size`` counts the prompt's n-grams too (for a decoder-only
model the prompt is part of ``input_ids``). With the local model's size of 6 that forbids an
answer to copy any run of 6 tokens from its prompt, which breaks exactly the calls that must
copy: CIPHER's aggregation ("start with a one-line TL;DR" came out as "start with a one-line")
and its inference, whose prompt has an example phrase. The rule exists to stop answers that
loop, and a loop is the answer repeating itself; :class:`AnswerNoRepeat` bans only that.
"""

from __future__ import annotations

from typing import Any


class AnswerNoRepeat:
    """A ``LogitsProcessor``: never complete an n-gram of ``size`` tokens that the answer
    (the tokens after the first ``prompt_len``; the same for every row of a left-padded
    batch) already holds."""

    def __init__(self, size: int, prompt_len: int) -> None:
        if size < 1 or prompt_len < 0:
            raise ValueError(f"size {size} must be >= 1 and prompt_len {prompt_len} >= 0")
        self.size, self.prompt_len = size, prompt_len

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        answer = input_ids[:, self.prompt_len :]
        n = self.size
        if answer.shape[1] < n:  # no earlier n-gram to repeat yet
            return scores
        if n == 1:  # no token twice
            banned = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, answer, True)
            return scores.masked_fill(banned, float("-inf"))
        windows = answer.unfold(1, n, 1)  # (rows, positions, n)
        prefix = answer[:, answer.shape[1] - n + 1 :]  # the last n - 1 tokens
        hits = (windows[:, :, :-1] == prefix[:, None, :]).all(dim=-1)  # (rows, positions)
        counts = torch.zeros(scores.shape, dtype=torch.int32, device=scores.device)
        counts.scatter_add_(1, windows[:, :, -1], hits.to(torch.int32))
        return scores.masked_fill(counts > 0, float("-inf"))


def answer_no_repeat(size: int, prompt_len: int) -> list[AnswerNoRepeat]:
    """The processors for a ``generate`` call: :class:`AnswerNoRepeat`, or none when
    ``size`` is 0 (off)."""
    return [AnswerNoRepeat(size, prompt_len)] if size > 0 else []
