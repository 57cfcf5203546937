"""Streaming the local model's answer: text pieces cut at a stop sequence, and a way to end
``generate`` early when the caller stops reading."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from persona.llm import cut_at_stop


def until_stop(pieces: Iterator[str], stop: list[str]) -> Iterator[str]:
    """Pass streamed text through, ending before the first stop sequence.

    Holds back just enough text to recognise a stop sequence split across pieces.
    """
    hold = max((len(s) for s in stop), default=1) - 1
    buf = ""
    for piece in pieces:
        buf += piece
        cut = cut_at_stop(buf, stop)
        if len(cut) < len(buf):
            if cut:
                yield cut
            return
        if len(buf) > hold:
            yield buf[: len(buf) - hold]
            buf = buf[len(buf) - hold :]
    if buf:
        yield buf


def abort_criteria(event: threading.Event) -> Any:
    """A transformers StoppingCriteriaList that ends generation once ``event`` is set."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Abort(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), event.is_set(), device=input_ids.device)

    return StoppingCriteriaList([_Abort()])
