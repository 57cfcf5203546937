"""Dynamic batching on a tiny random Llama: batched answers equal the ones made alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from persona.agents.batching import Batcher

EOS = 2
PAD = 0


@pytest.fixture(scope="module")
def tiny() -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=48,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    # float64: padded and unpadded runs then agree to the last greedy choice
    return LlamaForCausalLM(config).double().eval()


def alone(model: Any, ids: list[int], max_new: int) -> list[int]:
    import torch

    out = model.generate(
        input_ids=torch.tensor([ids]),
        attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        max_new_tokens=max_new,
        do_sample=False,
        pad_token_id=PAD,
    )
    return list(out[0, len(ids) :].tolist())


PROMPTS = [[5, 9, 11], [7, 3, 30, 31, 12, 8, 4], [20], [40, 41, 42, 43, 44], [6, 6, 6, 6]]
BUDGETS = [6, 12, 3, 9, 12]


def test_concurrent_calls_share_batches_and_get_their_own_answers(tiny: Any) -> None:
    batcher = Batcher(tiny, pad_token_id=PAD, eos_token_ids=[EOS], max_batch=8, wait_s=0.5)
    expected = [alone(tiny, p, n) for p, n in zip(PROMPTS, BUDGETS, strict=True)]
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        got = list(
            pool.map(
                lambda pn: batcher.generate(pn[0], pn[1], do_sample=False),
                zip(PROMPTS, BUDGETS, strict=True),
            )
        )
    assert got == expected
    assert all(len(g) <= n for g, n in zip(got, BUDGETS, strict=True))
    # five callers within the wait window: far fewer generate calls than callers
    assert batcher.largest >= 2 and batcher.batches < len(PROMPTS)


def test_a_lone_call_waits_only_briefly_and_matches(tiny: Any) -> None:
    batcher = Batcher(tiny, pad_token_id=PAD, eos_token_ids=[EOS], max_batch=4, wait_s=0.0)
    assert batcher.generate(PROMPTS[1], 10, do_sample=False) == alone(tiny, PROMPTS[1], 10)
    assert (batcher.batches, batcher.largest) == (1, 1)


def test_answers_stop_at_the_first_end_of_sequence_token(tiny: Any) -> None:
    import torch

    reference = alone(tiny, PROMPTS[0], 12)
    stop_token = reference[2]  # treat the third generated token as an end of sequence
    batcher = Batcher(tiny, pad_token_id=PAD, eos_token_ids=[stop_token], max_batch=2, wait_s=0)
    out = batcher.generate(PROMPTS[0], 12, do_sample=False)
    assert out == reference[: reference.index(stop_token) + 1]
    assert len(out) <= 3
    assert torch.is_grad_enabled()  # the batcher's inference mode did not leak


def test_different_settings_never_share_a_batch(tiny: Any) -> None:
    from persona.agents.batching import _Request

    batcher = Batcher(tiny, pad_token_id=PAD, eos_token_ids=[EOS], max_batch=8, wait_s=0.3)
    greedy = _Request(list(PROMPTS[3]), 4, (("do_sample", False),))
    sampled = _Request(list(PROMPTS[3]), 4, (("do_sample", True), ("temperature", 0.7)))
    for req in (greedy, sampled):  # both queued before the worker starts: one collection
        batcher._queue.put(req)
    batcher._ensure_worker()
    assert greedy.done.wait(60) and sampled.done.wait(60)
    assert greedy.error is None and sampled.error is None
    assert greedy.tokens == alone(tiny, PROMPTS[3], 4)
    assert batcher.batches == 2 and batcher.largest == 1


def test_a_failing_generate_reaches_every_caller_and_the_batcher_lives_on(tiny: Any) -> None:
    class Broken:
        device = "cpu"
        fail = True

        def generate(self, **kwargs: Any) -> Any:
            if self.fail:
                raise RuntimeError("out of memory")
            return tiny.generate(**kwargs)

    broken = Broken()
    batcher = Batcher(broken, pad_token_id=PAD, eos_token_ids=[EOS], max_batch=4, wait_s=0.3)
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(batcher.generate, p, 4, do_sample=False) for p in PROMPTS[:3]]
        for fut in futures:
            with pytest.raises(RuntimeError, match="out of memory"):
                fut.result()
    broken.fail = False
    assert batcher.generate(PROMPTS[2], 3, do_sample=False) == alone(tiny, PROMPTS[2], 3)


def test_max_batch_must_be_positive(tiny: Any) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Batcher(tiny, pad_token_id=PAD, eos_token_ids=[EOS], max_batch=0)


def test_prompts_of_very_different_lengths_are_split_where_padding_costs_more() -> None:
    from persona.agents.batching import _Request

    batcher = Batcher(object(), pad_token_id=PAD, eos_token_ids=[EOS], step_tokens=24)

    def lengths(sizes: list[int], max_new: int = 10) -> list[list[int]]:
        reqs = [_Request([1] * n, max_new, ()) for n in sizes]
        return [[len(r.input_ids) for r in part] for part in batcher._split(reqs)]

    # 5 x 520 padded + one pass (2,840) vs 15 + 1,040 + two passes (1,535)
    assert lengths([500, 3, 520, 4, 5]) == [[3, 4, 5], [500, 520]]
    assert lengths([40, 41, 39, 40]) == [[39, 40, 40, 41]]  # similar lengths: one batch
    assert lengths([3, 500], max_new=200) == [[3, 500]]  # long decoding: sharing pays
    assert lengths([7]) == [[7]]
