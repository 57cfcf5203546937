"""Dynamic batching for a local causal LM: concurrent calls share one ``generate``.

Decoding with a 135M model on a CPU is bound by memory traffic, not arithmetic: one
``generate`` over six prompts costs little more than over one (measured: 12 → 35 tokens/s for
six 96-token answers to short prompts on two cores). Callers in different threads submit
token ids; a worker thread waits ``wait_s`` for company, left-pads what it collected into one
batch and hands each caller its own tokens, trimmed to that caller's budget and to its first
end-of-sequence token. With greedy decoding every caller gets what it would have got alone
(up to float rounding of padded batches). Reading a prompt is compute-bound where decoding is
not, so prompts of very different lengths are split into separate batches when the padding
would cost more than an extra decoding pass; where prompts are long, batching does not pay.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from persona.agents.norepeat import answer_no_repeat


@dataclass
class _Request:
    input_ids: list[int]
    max_new: int
    settings: tuple[tuple[str, Any], ...]  # generate kwargs; only equal settings share a batch
    adapter: str | None = None  # a user adapter folder (rows of one batch may differ)
    done: threading.Event = field(default_factory=threading.Event)
    tokens: list[int] | None = None
    error: BaseException | None = None


class Batcher:
    """Merge concurrent ``generate`` calls on one model into batches of up to ``max_batch``."""

    def __init__(
        self,
        model: Any,
        *,
        pad_token_id: int,
        eos_token_ids: list[int],
        max_batch: int = 8,
        wait_s: float = 0.02,
        step_tokens: int = 24,
        pool: Any = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.model, self.pad, self.eos = model, pad_token_id, set(eos_token_ids)
        self.max_batch, self.wait_s, self.step_tokens = max_batch, wait_s, step_tokens
        #: An :class:`~persona.adapters.serving.AdapterPool` over ``model``: rows may then name
        #: their own adapter, and one ``generate`` serves them all (peft ``adapter_names``).
        self.pool = pool
        self.batches = 0  # generate calls made
        self.largest = 0  # the largest batch so far
        self._queue: queue.Queue[_Request] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._start = threading.Lock()

    def generate(
        self, input_ids: list[int], max_new_tokens: int, adapter: str | None = None, **settings: Any
    ) -> list[int]:
        """The new tokens for one prompt (blocks until its batch is done); ``adapter``: the
        folder of the user adapter to generate with (needs a ``pool``)."""
        if adapter is not None and self.pool is None:
            raise ValueError("this batcher has no adapter pool; adapter= needs one")
        req = _Request(
            list(input_ids), int(max_new_tokens), tuple(sorted(settings.items())), adapter
        )
        self._ensure_worker()
        self._queue.put(req)
        req.done.wait()
        if req.error is not None:
            raise req.error
        assert req.tokens is not None
        return req.tokens

    def _ensure_worker(self) -> None:
        with self._start:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._loop, name="persona-batcher", daemon=True
                )
                self._worker.start()

    def _collect(self) -> list[_Request]:
        batch = [self._queue.get()]
        deadline = time.monotonic() + self.wait_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._collect()
            groups: dict[tuple[tuple[str, Any], ...], list[_Request]] = {}
            for req in batch:
                groups.setdefault(req.settings, []).append(req)
            for group in (part for same in groups.values() for part in self._split(same)):
                try:
                    self._run(group)
                except BaseException as exc:  # every waiter of the group gets the error
                    for req in group:
                        req.error = exc
                finally:
                    for req in group:
                        req.done.set()

    def _split(self, group: list[_Request]) -> list[list[_Request]]:
        """Cut the group, by prompt length, into the batches that cost the fewest token passes.

        A batch pays for every prompt padded to its longest, and each extra batch pays a
        decoding pass of its own (``step_tokens`` per new token: on a CPU one decoding step of
        a small model costs about as much as reading that many prompt tokens). Contiguous runs
        of the length-sorted group, chosen by dynamic programming.
        """
        group = sorted(group, key=lambda r: len(r.input_ids))
        n = len(group)
        best = [0.0] + [float("inf")] * n
        cut = [0] * (n + 1)
        for j in range(1, n + 1):
            for i in range(j):
                part = group[i:j]
                cost = best[i] + len(part) * len(part[-1].input_ids)
                cost += self.step_tokens * max(r.max_new for r in part)
                if cost < best[j]:
                    best[j], cut[j] = cost, i
        parts: list[list[_Request]] = []
        j = n
        while j > 0:
            parts.append(group[cut[j] : j])
            j = cut[j]
        return parts[::-1]

    def _run(self, group: list[_Request]) -> None:
        import torch

        width = max(len(r.input_ids) for r in group)
        ids = [[self.pad] * (width - len(r.input_ids)) + r.input_ids for r in group]
        mask = [[0] * (width - len(r.input_ids)) + [1] * len(r.input_ids) for r in group]
        device = self.model.device
        kwargs: dict[str, Any] = {
            "input_ids": torch.tensor(ids, device=device),
            "attention_mask": torch.tensor(mask, device=device),
            "max_new_tokens": max(r.max_new for r in group),
            "pad_token_id": self.pad,
            **dict(group[0].settings),
        }
        no_repeat = int(kwargs.pop("no_repeat_ngram_size", 0))
        if no_repeat > 0:  # within each answer only: the prompts end at the padded width
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList(answer_no_repeat(no_repeat, width))
        if self.pool is None:
            with torch.inference_mode():
                out = self.model.generate(**kwargs)
        else:
            with self.pool.using([r.adapter for r in group]) as (model, names):
                with torch.inference_mode():
                    out = model.generate(**kwargs, adapter_names=names)
        self.batches += 1
        self.largest = max(self.largest, len(group))
        for row, req in zip(out[:, width:].tolist(), group, strict=True):
            tokens = row[: req.max_new]
            end = next((i for i, t in enumerate(tokens) if t in self.eos), None)
            req.tokens = tokens if end is None else tokens[: end + 1]
