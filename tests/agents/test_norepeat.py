"""The no-repeat rule bans the answer's own repeated n-grams and lets it copy its prompt."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor

from persona.agents.norepeat import AnswerNoRepeat, answer_no_repeat

VOCAB = 12


def banned(processor: object, ids: list[list[int]]) -> list[set[int]]:
    scores = torch.zeros(len(ids), VOCAB)
    out = processor(torch.tensor(ids), scores)  # type: ignore[operator]
    return [set(torch.nonzero(row == float("-inf")).flatten().tolist()) for row in out]


def test_an_answer_may_copy_its_prompt() -> None:
    prompt = [1, 2, 3, 4, 5, 6]
    answer = [1, 2, 3]  # copying the prompt's "1 2 3 4"
    assert banned(NoRepeatNGramLogitsProcessor(4), [prompt + answer]) == [{4}]  # transformers
    assert banned(AnswerNoRepeat(4, len(prompt)), [prompt + answer]) == [set()]


def test_an_answer_never_repeats_its_own_ngram() -> None:
    prompt = [9, 9]
    answer = [1, 2, 3, 4, 7, 1, 2, 3]  # "1 2 3" again: 4 would repeat "1 2 3 4"
    assert banned(AnswerNoRepeat(4, len(prompt)), [prompt + answer]) == [{4}]
    assert banned(AnswerNoRepeat(4, len(prompt)), [prompt + answer[:-1]]) == [set()]
    assert banned(AnswerNoRepeat(1, 2), [[9, 9, 3, 5]]) == [{3, 5}]


def test_with_no_prompt_it_is_transformers_rule_on_every_row() -> None:
    generator = torch.Generator().manual_seed(0)
    for size in (1, 2, 3, 6):
        ids = torch.randint(0, 4, (5, 30), generator=generator).tolist()  # many repeats
        for length in range(1, 31):
            rows = [row[:length] for row in ids]
            ours = banned(AnswerNoRepeat(size, 0), rows)
            assert ours == banned(NoRepeatNGramLogitsProcessor(size), rows), (size, length)


def test_rows_of_a_batch_are_apart_and_off_means_no_processor() -> None:
    prompt = [0, 0, 0]
    rows = [prompt + [1, 2, 1], prompt + [3, 4, 3]]
    assert banned(AnswerNoRepeat(2, 3), rows) == [{2}, {4}]
    assert answer_no_repeat(0, 3) == []
    with pytest.raises(ValueError):
        AnswerNoRepeat(0, 3)
