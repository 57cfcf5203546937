"""Guidance toward the preferences in a prompt: classifier-free guidance, kept plausible.

Each token's log-probabilities are moved away from those of a *negative* prompt (the same
request without its preferences), as in "Stay on topic with classifier-free guidance"
(Sanchez et al., 2023)::

    guided = negative + scale * (conditioned - negative)

Alone, that favours tokens that are rare under both prompts but rarer without the preference,
above all the preference's own words: a 135M model then answers "bullet points" to a request
for a summary in bullets. So, as in contrastive decoding (Li et al., 2023), only tokens the
conditioned prompt itself finds plausible may be chosen: those within a factor
``plausibility`` of its most likely token.

transformers' ``UnbatchedClassifierFreeGuidanceLogitsProcessor`` has the first part only, so
this processor runs the negative prompt the same way (its own key/value cache, one token a
step) and adds the constraint.
"""

from __future__ import annotations

import math
from typing import Any

#: Tokens below this share of the conditioned prompt's most likely token are never chosen
#: (contrastive decoding's alpha).
PLAUSIBILITY = 0.1


def guidance_processor(
    model: Any,
    negative_ids: Any,
    negative_mask: Any,
    scale: float,
    plausibility: float = PLAUSIBILITY,
) -> Any:
    """A ``LogitsProcessorList`` holding the guidance for one ``generate`` call (left-padded
    negative prompts, one per row of the batch)."""
    from transformers import LogitsProcessorList

    return LogitsProcessorList(
        [_PlausibleGuidance(model, negative_ids, negative_mask, scale, plausibility)]
    )


class _PlausibleGuidance:
    """The logits processor (see the module docstring); one per ``generate`` call."""

    def __init__(
        self, model: Any, negative_ids: Any, negative_mask: Any, scale: float, plausibility: float
    ) -> None:
        self.model = model
        self.ids = negative_ids
        self.mask = negative_mask
        self.scale = float(scale)
        self.floor = math.log(plausibility) if plausibility > 0 else -math.inf
        self.cache: Any = None

    def _negative_logprobs(self, input_ids: Any) -> Any:
        import torch

        if self.cache is None:  # the first step reads the whole negative prompt
            ids = self.ids
        else:  # then the token each row chose, as the conditioned branch does
            ids = input_ids[:, -1:]
            self.mask = torch.cat([self.mask, torch.ones_like(ids)], dim=1)
        out = self.model(
            input_ids=ids, attention_mask=self.mask, past_key_values=self.cache, use_cache=True
        )
        self.cache = out.past_key_values
        return torch.log_softmax(out.logits[:, -1].float(), dim=-1)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        cond = torch.log_softmax(scores.float(), dim=-1)
        neg = self._negative_logprobs(input_ids)
        guided = neg + self.scale * (cond - neg)
        cutoff = cond.max(dim=-1, keepdim=True).values + self.floor
        guided = guided.masked_fill(cond < cutoff, -math.inf)
        return guided.to(scores.dtype)
