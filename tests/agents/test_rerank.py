"""Reranking toward the preferences: the local model's ``rerank``.

Checked on a tiny random Llama: the candidates are the call's own answer and seeded samples,
each is scored by the per-token pointwise mutual information its tokens have with the
preferences (computed here again, one answer at a time, by a plain forward pass), and the call
answers with the best of them, the same way invoked, streamed or batched.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage

from persona.agents import rerank
from persona.agents.likelihood import full_pass
from persona.agents.models import LocalChatModel
from persona.errors import InvalidInputError

REQUEST = "Summarize: the meeting moved to Friday because the room was booked."
STATED = f"{REQUEST}\n\nThe user prefers: start with 'TL;DR:'"
MESSAGES: list[BaseMessage] = [HumanMessage(STATED)]
NEGATIVE: list[BaseMessage] = [HumanMessage(REQUEST)]


@pytest.fixture(scope="module")
def tiny(tiny_local: LocalChatModel) -> LocalChatModel:
    return tiny_local.model_copy(update={"max_new_tokens": 8, "rerank": 4})


def _stop_ids(tokenizer: Any) -> list[int]:
    return sorted({tokenizer.eos_token_id, tokenizer.pad_token_id} - {None})


def test_the_answer_kept_is_the_one_the_preference_explains_best(tiny: LocalChatModel) -> None:
    model, tokenizer = tiny.load()
    _, _, gen, n_in, negative = tiny._prepare(MESSAGES, [], negative_messages=NEGATIVE)
    answers = rerank.candidates(model, gen, 4, _stop_ids(tokenizer))
    # The call's own (greedy) answer first, then three samples, not all the same.
    own = model.generate(**gen)[0, n_in:].tolist()
    assert len(answers) == 4 and answers[0] == rerank._until(own, _stop_ids(tokenizer))
    assert len({tuple(a) for a in answers}) > 1
    # Seeded by the prompt: the same candidates again.
    assert rerank.candidates(model, gen, 4, _stop_ids(tokenizer)) == answers

    prompt_ids = gen["input_ids"][0].tolist()
    negative_ids = negative["input_ids"][0].tolist()
    scores = rerank.pmi(model, prompt_ids, negative_ids, answers)
    by_hand = [
        (
            full_pass(model, prompt_ids + a, len(prompt_ids))
            - full_pass(model, negative_ids + a, len(negative_ids))
        )
        / len(a)
        if a
        else float("-inf")
        for a in answers
    ]
    assert scores == pytest.approx(by_hand, abs=1e-4)

    kept = answers[rerank.best(scores)]
    reply = tiny.invoke(MESSAGES, negative_messages=NEGATIVE)
    assert reply.content == tokenizer.decode(kept, skip_special_tokens=True)
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] == len(kept)


def test_reranked_calls_answer_alike_invoked_streamed_or_batched(tiny: LocalChatModel) -> None:
    reply = tiny.invoke(MESSAGES, negative_messages=NEGATIVE)
    assert tiny.invoke(MESSAGES, negative_messages=NEGATIVE).content == reply.content
    chunks = list(tiny.stream(MESSAGES, negative_messages=NEGATIVE))
    assert "".join(str(c.content) for c in chunks) == reply.content
    assert chunks[-1].usage_metadata == reply.usage_metadata  # type: ignore[attr-defined]
    batched = tiny.model_copy(update={"batch_size": 4})  # reranked calls skip the batcher
    assert batched.invoke(MESSAGES, negative_messages=NEGATIVE).content == reply.content


def test_without_a_negative_prompt_or_with_rerank_1_the_answer_is_greedy(
    tiny: LocalChatModel,
) -> None:
    greedy = tiny.model_copy(update={"rerank": 1}).invoke(MESSAGES).content
    assert tiny.invoke(MESSAGES).content == greedy
    assert tiny.invoke(MESSAGES, negative_messages=MESSAGES).content == greedy  # same prompt
    off = tiny.model_copy(update={"rerank": 1})
    assert off.invoke(MESSAGES, negative_messages=NEGATIVE).content == greedy


def test_reranking_combines_with_guidance(
    tiny: LocalChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every candidate is guided: the call's own answer by the call's processor, the samples
    by one of their own, with a row of the negative prompt per sample."""
    both = tiny.model_copy(update={"guidance_scale": 2.0})
    guided_own = both.model_copy(update={"rerank": 1}).invoke(MESSAGES, negative_messages=NEGATIVE)
    seen: list[tuple[dict[str, Any], Any]] = []
    real = rerank.candidates

    def spy(model: Any, gen: dict[str, Any], n: int, stop_ids: Any, samples: Any = None) -> Any:
        seen.append((gen, samples))
        return real(model, gen, n, stop_ids, samples)

    monkeypatch.setattr(rerank, "candidates", spy)
    reply = both.invoke(MESSAGES, negative_messages=NEGATIVE)
    assert reply.content == both.invoke(MESSAGES, negative_messages=NEGATIVE).content
    (gen, samples), _ = seen
    assert gen["logits_processor"][0].scale == 2.0  # the call's own answer is guided
    assert samples[0].scale == 2.0 and samples[0].ids.shape[0] == 3  # so are the 3 samples
    # The first candidate is the guided greedy answer (a fresh processor: each holds a cache).
    model, tokenizer = both.load()
    gen = both._prepare(MESSAGES, [], negative_messages=NEGATIVE)[2]
    (own,) = real(model, gen, 1, _stop_ids(tokenizer))
    assert tokenizer.decode(own, skip_special_tokens=True) == guided_own.content


def test_the_choice_rules() -> None:
    assert rerank.best([0.1, 0.3, 0.3, -1.0]) == 1  # the first of equals
    assert rerank.best([float("-inf"), -5.0]) == 1  # an empty answer never wins
    assert rerank._until([5, 6, 2, 7], [2]) == [5, 6]
    assert rerank._until([5, 6], [2]) == [5, 6]


def test_candidates_are_the_greedy_answer_then_seeded_samples(tiny_local: LocalChatModel) -> None:
    """``LocalChatModel.candidates``: what CIPHER's inference chooses among."""
    tiny = tiny_local.model_copy(update={"max_new_tokens": 8})
    written = tiny.candidates(MESSAGES, 4)
    texts = [m.text for m in written]
    own = tiny.invoke(MESSAGES)
    assert len(texts) == 4 and texts[0] == own.text
    assert written[0].usage_metadata == own.usage_metadata  # the prompt read, the tokens written
    assert len(set(texts)) > 1
    assert [m.text for m in tiny.candidates(MESSAGES, 4)] == texts  # seeded by the prompt
    assert [m.text for m in tiny.candidates(MESSAGES, 1)] == texts[:1]
    # the samples' temperature is theirs alone (the tiny model's logits are nearly flat, so
    # even a low one samples other words)
    cold = [m.text for m in tiny.candidates(MESSAGES, 4, temperature=0.01)]
    assert cold[0] == texts[0] and cold != texts
    for bad in (0, 17, True, 2.0):
        with pytest.raises(InvalidInputError, match="whole number of candidates"):
            tiny.candidates(MESSAGES, bad)  # type: ignore[arg-type]
    for hot in (0, 2.5, "1", True):
        with pytest.raises(InvalidInputError, match="temperature"):
            tiny.candidates(MESSAGES, 2, temperature=hot)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="adapter"):
        tiny.candidates(MESSAGES, 2, adapter="/nowhere")
