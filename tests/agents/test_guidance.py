"""Classifier-free guidance toward the preferences: the local model's ``guidance_scale``
(and, where they share a way in, its ``rerank``: :mod:`persona.agents.rerank`).

Checked on a tiny random Llama: the guided token is the one CFG's formula picks from the
two prompts' log-probabilities, guidance reaches ``generate`` only where it means something,
and every way in (the runnable, the layer option, the benchmarks) passes the request without
its preferences as the negative prompt.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from typer.testing import CliRunner

from persona import PreferenceLayer
from persona.agents import models
from persona.agents.guidance import PLAUSIBILITY
from persona.agents.models import LocalChatModel, load_chat_model
from persona.agents.runnable import PreferenceRunnable
from persona.bench.edits import decoding, model_label
from persona.cli import app
from persona.errors import InvalidInputError
from persona.follow.generate import generate
from persona.store.embed import HashEmbedder
from persona.types import AppliedPreference, Conditioning, Why

REQUEST = "Summarize: the meeting moved to Friday because the room was booked."
STATED = f"{REQUEST}\n\nThe user prefers: start with 'TL;DR:'"


@pytest.fixture(scope="module")
def tiny(tiny_local: LocalChatModel) -> LocalChatModel:
    return tiny_local.model_copy(update={"max_new_tokens": 1, "guidance_scale": 3.0})


def _next_logprobs(model: Any, tokenizer: Any, text: str) -> Any:
    import torch

    enc = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.inference_mode():
        logits = model(**enc).logits[0, -1]
    return torch.log_softmax(logits.float(), dim=-1)


def _guided_token(model: Any, tokenizer: Any, scale: float) -> int:
    """CFG's pick among the tokens within a factor PLAUSIBILITY of the prompt's likeliest."""
    cond = _next_logprobs(model, tokenizer, STATED)
    neg = _next_logprobs(model, tokenizer, REQUEST)
    guided = neg + scale * (cond - neg)
    implausible = cond < cond.max() + math.log(PLAUSIBILITY)
    return int(guided.masked_fill(implausible, -math.inf).argmax())


def test_the_guided_token_follows_cfg_formula(tiny: LocalChatModel) -> None:
    model, tokenizer = tiny.load()
    plain = int(_next_logprobs(model, tokenizer, STATED).argmax())
    # A scale where the formula changes the pick, so the test tells guided from unguided.
    scale = next(s for s in (3.0, 5.0, 8.0) if _guided_token(model, tokenizer, s) != plain)
    guided = _guided_token(model, tokenizer, scale)
    strong = tiny.model_copy(update={"guidance_scale": scale})
    messages: list[BaseMessage] = [HumanMessage(STATED)]
    negative: list[BaseMessage] = [HumanMessage(REQUEST)]
    _, _, gen, n_in, _ = strong._prepare(messages, [], negative_messages=negative)
    assert gen["logits_processor"][0].scale == scale
    out = model.generate(**gen)[0, n_in:].tolist()
    assert out == [guided] != [plain]
    # Off (scale 1), or the same prompt as negative: plain greedy decoding, no second pass.
    for m, neg in ((tiny.model_copy(update={"guidance_scale": 1.0}), negative), (strong, messages)):
        assert "logits_processor" not in m._prepare(messages, [], negative_messages=neg)[2]
    # The batched generator of the benchmarks picks the same token.
    text = generate(
        model,
        tokenizer,
        [STATED],
        max_new_tokens=1,
        no_repeat_ngram_size=0,
        negatives=[REQUEST],
        guidance_scale=scale,
    )[0]
    assert text == tokenizer.decode([guided], skip_special_tokens=True).strip()


def test_guided_calls_answer_and_stream_alike(tiny: LocalChatModel) -> None:
    model = tiny.model_copy(update={"max_new_tokens": 6})
    negative = [HumanMessage(REQUEST)]
    reply = model.invoke([HumanMessage(STATED)], negative_messages=negative)
    streamed = "".join(
        str(c.content) for c in model.stream([HumanMessage(STATED)], negative_messages=negative)
    )
    assert streamed == reply.content
    batched = model.model_copy(update={"batch_size": 4})  # guided calls skip the batcher
    assert batched.invoke([HumanMessage(STATED)], negative_messages=negative).content == (
        reply.content
    )


def test_bad_negative_messages_are_refused(tiny: LocalChatModel) -> None:
    with pytest.raises(InvalidInputError, match="negative_messages"):
        tiny.invoke(STATED, negative_messages=REQUEST)
    with pytest.raises(ValueError, match="1 negative prompts for 2 prompts"):
        model, tokenizer = tiny.load()
        generate(model, tokenizer, [STATED, REQUEST], negatives=[REQUEST], guidance_scale=2.0)


def test_the_scale_and_the_rerank_count_are_checked(persona_home: Path) -> None:
    with pytest.raises(ValueError, match="guidance_scale"):
        LocalChatModel(guidance_scale=-1.0)
    with pytest.raises(ValueError, match="rerank"):
        LocalChatModel(rerank=0)
    with pytest.raises(InvalidInputError, match="guidance_scale"):
        PreferenceLayer.open(persona_home, embedder=HashEmbedder(dim=16), guidance_scale="x")
    for bad in (0, 2.5, "4", True):
        with pytest.raises(InvalidInputError, match="rerank"):
            PreferenceLayer.open(persona_home, embedder=HashEmbedder(dim=16), rerank=bad)


def _conditioning() -> Conditioning:
    applied = (AppliedPreference(1, "start with 'TL;DR:'", 1.0, Why(None, "test")),)
    return Conditioning(preferences=applied, system_prompt="start with 'TL;DR:'")


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every LocalChatModel call's messages and arguments (no weights loaded)."""
    calls: list[dict[str, Any]] = []

    def fake_generate(self: LocalChatModel, messages: list[BaseMessage], **kw: Any) -> ChatResult:
        calls.append({"messages": messages, **kw})
        answer = "The council approved the plan after a long debate on Monday night."
        return ChatResult(generations=[ChatGeneration(message=AIMessage(answer))])

    monkeypatch.setattr(LocalChatModel, "_generate", fake_generate)
    return calls


# Guidance and reranking (persona.agents.rerank) both need the request without preferences.
STEERING = [({"guidance_scale": 2.0}, {"guidance_scale": 1.0}), ({"rerank": 4}, {"rerank": 1})]


@pytest.mark.parametrize(("on", "off"), STEERING)
def test_the_runnable_passes_the_request_without_preferences(
    seen: list[dict[str, Any]], on: dict[str, Any], off: dict[str, Any]
) -> None:
    config = {"configurable": {"user_id": "ada"}}
    guided = PreferenceRunnable(lambda u, c: _conditioning(), LocalChatModel(**on))
    guided.invoke(REQUEST, config=config)
    call = seen.pop()
    assert call["negative_messages"] == [HumanMessage(REQUEST)]
    assert "TL;DR" in call["messages"][-1].text  # the guided prompt carries the preference
    # No preference, steering off, or another kind of model: nothing extra.
    empty = PreferenceRunnable(lambda u, c: Conditioning(), LocalChatModel(**on))
    empty.invoke(REQUEST, config=config)
    plain = PreferenceRunnable(lambda u, c: _conditioning(), LocalChatModel(**off))
    plain.invoke(REQUEST, config=config)
    assert all("negative_messages" not in c for c in seen)
    fake = PreferenceRunnable(lambda u, c: _conditioning(), load_chat_model("fake"))
    assert fake.guidance_kwargs([HumanMessage(REQUEST)], [HumanMessage(STATED)]) == {}


def test_the_layer_option_and_the_cli_reach_the_local_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, persona_home: Path
) -> None:
    monkeypatch.setattr(models, "ensure_local_model", lambda home=None: tmp_path / "model")
    default = LocalChatModel.model_fields["guidance_scale"].default
    assert load_chat_model("local").guidance_scale == default  # type: ignore[attr-defined]
    assert load_chat_model("local").rerank == 1  # type: ignore[attr-defined]
    with PreferenceLayer.open(
        persona_home, llm="local", embedder=HashEmbedder(dim=16), guidance_scale=2.5, rerank=3
    ) as layer:
        for model in (layer.llm, layer.as_runnable("local").model):
            assert model.guidance_scale == 2.5  # type: ignore[attr-defined]
            assert model.rerank == 3  # type: ignore[attr-defined]
    for command in (["ui", "--help"], ["bench", "edits", "--help"], ["bench", "follow", "--help"]):
        result = CliRunner().invoke(app, command, env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "--guidance" in result.output
        assert "--rerank" in result.output  # the follow bench measures it beside the adapter


@pytest.mark.parametrize("on", [on for on, _ in STEERING])
def test_the_edit_benchmark_guides_toward_the_learned_preference(
    seen: list[dict[str, Any]], on: dict[str, Any]
) -> None:
    from persona.agents.fakes import ScriptedChatModel
    from persona.bench.edits import EditsConfig, run_edits

    llm = ScriptedChatModel(responses=["short sentences"])
    run_edits(
        ["no-learning", "oracle"],
        agent=LocalChatModel(**on),
        learner_llm=llm,
        user_llm=llm,
        embedder=HashEmbedder(64),
        config=EditsConfig(task="summarization", rounds=2, jobs=1),
    )
    guided = [c for c in seen if "negative_messages" in c]
    assert len(seen) == 4 and len(guided) == 2  # the oracle's rounds, not no-learning's
    for call in guided:
        (plain,) = call["negative_messages"]
        assert plain.text in call["messages"][-1].text != plain.text


def test_the_edit_benchmark_guides_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = LocalChatModel(model_dir=str(tmp_path))
    guided = decoding(local, guidance_scale=2.0)
    assert guided.guidance_scale == 2.0  # type: ignore[attr-defined]
    assert decoding(local) is local
    assert "classifier-free guidance 2" in model_label(guided)
    assert "guidance" not in model_label(local)
    # the dtype the weights run in is part of the label: greedy answers differ between them
    assert "transformers, float32)" in model_label(local.model_copy(update={"dtype": "float32"}))
    monkeypatch.setenv("PERSONA_DTYPE", "bfloat16")
    assert "transformers, bfloat16)" in model_label(local)
    with pytest.raises(InvalidInputError, match="--guidance"):
        decoding(load_chat_model("fake"), guidance_scale=2.0)
    reranked = decoding(local, rerank=4)
    assert reranked.rerank == 4  # type: ignore[attr-defined]
    assert "best of 4 answers" in model_label(reranked) and "best of" not in model_label(local)
    for bad in (0, 17, True):
        with pytest.raises(InvalidInputError, match="--rerank"):
            decoding(local, rerank=bad)  # type: ignore[arg-type]
