"""``persona bench feedback`` on a small slice: real scope models (MiniLM), fake LLMs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage
from typer.testing import CliRunner

from persona.agents.models import LocalChatModel
from persona.bench.feedback import (
    GROUPS,
    METHODS,
    answer_all,
    fit_scope,
    run_feedback_bench,
    scope_features,
    steered,
    summarize,
    with_feedback,
)
from persona.bench.feedback_checks import load_feedback_set
from persona.errors import InvalidInputError
from persona.learn.c3po_data import DatasetConfig
from persona.learn.scope import FEATURES
from persona.store.embed import MiniLMEmbedder


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_slice_without_an_llm_reports_every_method(minilm: MiniLMEmbedder) -> None:
    feedbacks = [f for f in load_feedback_set("test") if f["checker"]][:2]
    answers = FakeListChatModel(responses=["Sure! Here it is 🎉", "Done.", "A plain answer."])
    result = run_feedback_bench(feedbacks, llm=None, embedder=minilm, answer_model=answers)
    summary = result["summary"]
    assert set(summary["scope_accuracy"]) == set(METHODS)
    always = summary["scope_accuracy"]["in_context"]
    assert always["in_scope"] == 1.0 and always["near_scope"] == always["out_of_scope"] == 0.0
    for row in result["feedbacks"]:
        assert row["cost"]["llm_calls"] == 0
        for group in GROUPS:
            assert len(row["decisions"][group]["c3po_scope"]) == len(feedbacks[0][group])
        assert set(row["behaviour"]) == set(GROUPS)
    assert set(summary["applied_rate"]) == {"in_context", "c3po_scope"}


def test_summary_arithmetic() -> None:
    row = {
        "cost": {
            "llm_calls": 2,
            "tokens_in": 10,
            "tokens_out": 5,
            "seconds": 1.0,
            "failed_steps": 0,
        },
        "decisions": {
            "in_scope": {"c3po_scope": [True, False], "similarity_rule": [True, True]},
            "near_scope": {"c3po_scope": [False, False], "similarity_rule": [True, False]},
            "out_of_scope": {"c3po_scope": [False, True], "similarity_rule": [False, False]},
        },
        "behaviour": {
            "in_scope": {"in_context": [True, True], "c3po_scope": [True, None]},
            "near_scope": {"in_context": [True, False], "c3po_scope": [False, False]},
            "out_of_scope": {"in_context": [True, True], "c3po_scope": [False, True]},
        },
    }
    s = summarize([row])
    assert s["scope_accuracy"]["c3po_scope"]["all"] == round(4 / 6, 3)
    assert s["scope_accuracy"]["similarity_rule"]["near_scope"] == 0.5
    assert s["scope_accuracy"]["in_context"]["all"] == round(2 / 6, 3)
    assert s["applied_rate"]["in_context"]["near_and_out"] == {"rate": 0.75, "n": 4}
    assert s["applied_rate"]["c3po_scope"]["near_and_out"] == {"rate": 0.25, "n": 4}
    assert s["over_generalization_cut"] == round(1 - 0.25 / 0.75, 3)
    assert s["in_scope_adherence_change"] == 0.0


def test_fit_scope_on_the_dev_set(minilm: MiniLMEmbedder) -> None:
    dev = load_feedback_set("dev")[:3]
    x, y, owners = scope_features(
        dev, llm=None, embedder=minilm, dataset=DatasetConfig(), simulate=True
    )
    assert x.shape == (len(y), len(FEATURES)) and set(y) == {0, 1}
    fitted = fit_scope(x, y, owners)
    assert len(fitted["weights"]) == len(FEATURES) + 1
    assert 0.5 < fitted["leave_one_feedback_out_accuracy"] <= 1.0


def test_cli_fits_both_combiners_on_the_dev_set(tmp_path: Path) -> None:
    """``--fit-scope``: one combiner for scopes without example requests (no LLM + user
    examples), one for scopes with them (user examples + the LLM's datasets)."""
    from persona.cli import app

    recording = Path(__file__).parents[2] / "benchmarks" / "feedback" / "llm-written"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "feedback",
            "--fit-scope",
            "--llm",
            f"replay:{recording / 'replay.json'}",
            "--limit",
            "2",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "scope-weights.json").read_text())
    bare, shown = record["weights"], record["weights_with_examples"]
    assert bare["fitted_on"] == ["no LLM", "user examples"]
    assert shown["fitted_on"] == ["user examples", "dataset by the LLM"]
    assert len(bare["weights"]) == len(shown["weights"]) == len(FEATURES) + 1
    assert bare["weights"] != shown["weights"]
    lofo = shown["leave_one_feedback_out_accuracy_at_0.4"]
    assert set(lofo) == {"user examples", "dataset by the LLM"}
    assert all(0.0 <= v <= 1.0 for v in lofo.values())
    assert "recorded answers" in record["llm"] and record["command"].startswith("persona ")


def test_cli_writes_json_and_plot(tmp_path: Path) -> None:
    from persona.cli import app

    result = CliRunner().invoke(
        app,
        [
            "bench",
            "feedback",
            "--llm",
            "fake",
            "--no-answers",
            "--limit",
            "1",
            "--skip",
            "2",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "feedback.json").read_text())
    assert [r["id"] for r in data["feedbacks"]] == [load_feedback_set("test")[2]["id"]]
    assert data["embedder"].startswith("all-MiniLM") or "MiniLM" in data["embedder"]
    assert data["command"].startswith("persona ") and data["machine"]["cores"]
    assert (tmp_path / "feedback.png").stat().st_size > 1000


def test_cli_answers_with_another_llm_than_the_one_writing_datasets(tmp_path: Path) -> None:
    """``--answer-llm``: the recorded datasets replay, another model answers."""
    from persona.cli import app

    recording = Path(__file__).parents[2] / "benchmarks" / "feedback" / "llm-written"
    args = ["bench", "feedback", "--llm", f"replay:{recording / 'replay.json'}"]
    result = CliRunner().invoke(
        app,
        [*args, "--answer-llm", "fake:Sure.", "--limit", "1", "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "feedback.json").read_text())
    assert "recorded answers" in data["llm"] and "scripted" in data["answer_model"]
    assert data["feedbacks"][0]["cost"]["llm_calls"] == 10
    assert data["feedbacks"][0]["behaviour"]["in_scope"]["sample"]["plain"] == "Sure."


def test_cli_scores_another_feedback_set_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    """``--split fresh``: the set written later, never tuned on; a typo is refused by name."""
    from persona.cli import app

    args = ["bench", "feedback", "--llm", "fake", "--no-answers", "--categories", "0"]
    result = CliRunner().invoke(
        app, [*args, "--split", "fresh", "--limit", "1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "feedback.json").read_text())
    assert data["split"] == "fresh"
    assert [r["id"] for r in data["feedbacks"]] == [load_feedback_set("fresh")[0]["id"]]
    bad = CliRunner().invoke(app, [*args, "--split", "final", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "--split 'final'" in bad.output
    fit = CliRunner().invoke(
        app, [*args, "--split", "fresh", "--fit-scope", "--out", str(tmp_path)]
    )
    assert fit.exit_code != 0 and "dev set" in fit.output


def test_generated_datasets_are_cached_and_reused(tmp_path: Path) -> None:
    from persona.bench.feedback import CachedBuilder

    replies = [
        "emails to my boss",
        "Status updates\nRequests",
        "Email my manager the weekly numbers for the sales team",
        "Text my sister about the picnic on Sunday afternoon",
        "Ask my boss by email for Friday afternoon off next week",
        "Message my neighbour about borrowing the ladder tomorrow",
    ]
    cfg = DatasetConfig(categories=2, per_category=1)
    first = CachedBuilder(FakeListChatModel(responses=replies), cfg, tmp_path)
    data, cost = first.build("No emojis in emails to my boss.")
    assert cost.calls > 0 and first.hits == 0 and len(list(tmp_path.glob("*.json"))) == 1
    # same feedback, sizes and LLM: read back with no call
    same = CachedBuilder(FakeListChatModel(responses=["unused"]), cfg, tmp_path)
    data2, cost2 = same.build("No emojis in emails to my boss.")
    assert same.hits == 1 and data2 == data and cost2.calls == cost.calls
    other = CachedBuilder(FakeListChatModel(responses=replies), cfg, tmp_path)
    other.build("No emojis in texts to my sister.")  # another feedback: generated, kept
    assert other.hits == 0 and len(list(tmp_path.glob("*.json"))) == 2


def test_a_new_reading_of_the_scope_words_builds_the_dataset_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feedback's own scope phrases are stored in the dataset; a cached one read by an
    older extractor must not stand in for today's reading."""
    import persona.bench.feedback as bench
    import persona.learn.c3po_data as data_mod
    from persona.bench.feedback import CachedBuilder

    cfg = DatasetConfig(generate=False)
    feedback = "No emojis in emails to my boss."
    data, _ = CachedBuilder(None, cfg, tmp_path).build(feedback)
    assert data["scope"] == ["emails to my boss"]
    older = lambda text: ["emojis"]  # noqa: E731 - another reading of the same words
    monkeypatch.setattr(bench, "scope_phrases", older)
    monkeypatch.setattr(data_mod, "scope_phrases", older)
    again = CachedBuilder(None, cfg, tmp_path)
    data2, _ = again.build(feedback)
    assert again.hits == 0 and data2["scope"] == ["emojis"]
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_user_examples_are_learned_from_and_not_scored(minilm: MiniLMEmbedder) -> None:
    fb = load_feedback_set("test")[0]
    result = run_feedback_bench([fb], llm=None, embedder=minilm, examples=4)
    row = result["feedbacks"][0]
    assert len(row["decisions"]["in_scope"]["c3po_scope"]) == len(fb["in_scope"]) - 4
    assert len(row["decisions"]["near_scope"]["c3po_scope"]) == len(fb["near_scope"]) - 4
    assert len(row["decisions"]["out_of_scope"]["c3po_scope"]) == len(fb["out_of_scope"])


def test_adapters_only_for_feedback_the_plain_model_breaks(
    minilm: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import persona.bench.feedback as bench

    trained: list[str] = []

    def fake_adapter(fb: dict[str, object], *args: object, **kwargs: object) -> dict[str, object]:
        trained.append(str(fb["id"]))
        return {"train": {}, **{g: {"counted": 0, "adapter": []} for g in GROUPS}}

    monkeypatch.setattr(bench, "adapter_behaviour", fake_adapter)
    feedbacks = [f for f in load_feedback_set("test") if f["checker"] == "no_emoji"][:1]
    polite = FakeListChatModel(responses=["A plain answer with no emoji."])
    run_feedback_bench(feedbacks, llm=None, embedder=minilm, answer_model=polite, adapters=1)
    assert trained == []  # every plain answer complies: nothing to measure, no adapter
    cheerful = FakeListChatModel(responses=["Sure! Here it is 🎉"])
    run_feedback_bench(feedbacks, llm=None, embedder=minilm, answer_model=cheerful, adapters=1)
    assert trained == [feedbacks[0]["id"]]

    def failing_adapter(*args: object, **kwargs: object) -> dict[str, object]:
        raise InvalidInputError("no usable in-scope pair for feedback 'x'")

    monkeypatch.setattr(bench, "adapter_behaviour", failing_adapter)
    result = run_feedback_bench(
        feedbacks, llm=None, embedder=minilm, answer_model=cheerful, adapters=1
    )
    (row,) = result["feedbacks"]  # the bench goes on; the failure is recorded
    assert "adapter" not in row and "no usable in-scope pair" in row["adapter_error"]


def test_questions_bench_answers_the_layers_questions_from_the_past_half(
    minilm: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persona import PreferenceLayer
    from persona.bench.feedback_questions import run_questions_bench

    feedback = load_feedback_set("test")[1]
    asked: list[list[str]] = []
    original = PreferenceLayer.scope_questions

    def spy(self: PreferenceLayer, *args: object, **kwargs: object) -> object:
        questions = original(self, *args, **kwargs)  # type: ignore[arg-type]
        asked.append([q.request for q in questions])
        return questions

    monkeypatch.setattr(PreferenceLayer, "scope_questions", spy)
    result = run_questions_bench([feedback], embedder=minilm, ks=(2,), seeds=1)
    assert result["k"] == [0, 2]
    past = {t for g in GROUPS for t in feedback[g][: len(feedback[g]) // 2]}
    assert len(asked) == 1 and len(asked[0]) == 2 and set(asked[0]) <= past
    summary = result["summary"]
    assert summary["asked"]["0"] == summary["random"]["0"]  # nothing answered: the same scope
    for strategy in ("asked", "random"):
        for k in ("0", "2"):
            acc = summary[strategy][k]
            assert all(0.0 <= acc[g] <= 1.0 for g in ("all", *GROUPS))  # type: ignore[operator]
    assert result["feedbacks"][0]["id"] == feedback["id"]


def test_cli_questions_writes_json_and_plot(tmp_path: Path) -> None:
    from persona.cli import app

    args = ["bench", "feedback", "--llm", "fake", "--questions", "1", "--limit", "1"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "questions.json").read_text())
    assert data["k"] == [0, 1] and data["embedder"] and data["command"].startswith("persona ")
    assert (tmp_path / "questions.png").stat().st_size > 1000
    bad = CliRunner().invoke(app, [*args[:-4], "--questions", "-1", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "--questions -1" in bad.output


def test_rescope_judges_earlier_answers_under_new_decisions() -> None:
    """With the decisions the answers were made under, the earlier verdicts come back exactly;
    with others, only which answer is judged changes."""
    from persona.bench.feedback import rescope

    path = Path(__file__).parents[2] / "benchmarks/feedback/local-answers-no-llm/feedback.json"
    earlier = json.loads(path.read_text())
    by_id = {f["id"]: f for f in load_feedback_set("test")}
    rows = [r for r in earlier["feedbacks"] if "behaviour" in r]
    assert rows
    for row in rows:
        fb = by_id[row["id"]]
        again = rescope(earlier, fb, row["decisions"])
        for group in GROUPS:
            assert again[group]["c3po_scope"] == row["behaviour"][group]["c3po_scope"]
        everywhere = {g: {"c3po_scope": [True] * len(fb[g])} for g in GROUPS}
        nowhere = {g: {"c3po_scope": [False] * len(fb[g])} for g in GROUPS}
        for group in GROUPS:
            told = row["behaviour"][group]["in_context"]
            assert rescope(earlier, fb, everywhere)[group]["c3po_scope"] == told
            withheld = rescope(earlier, fb, nowhere)[group]["c3po_scope"]
            assert withheld == [None if t is None else False for t in told]
    with pytest.raises(InvalidInputError, match="no answers for feedback"):
        rescope({"feedbacks": []}, by_id[rows[0]["id"]], rows[0]["decisions"])
    short = {g: {"c3po_scope": [True]} for g in GROUPS}
    with pytest.raises(InvalidInputError, match="same --examples"):
        rescope(earlier, by_id[rows[0]["id"]], short)


def test_cli_answers_from_reuses_the_answers(tmp_path: Path) -> None:
    from persona.cli import app

    earlier = Path(__file__).parents[2] / "benchmarks/feedback/local-answers-no-llm/feedback.json"
    args = ["bench", "feedback", "--llm", "fake", "--categories", "0", "--limit", "1"]
    result = CliRunner().invoke(
        app, [*args, "--answers-from", str(earlier), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "feedback.json").read_text())
    assert data["answers_from"] == str(earlier)
    assert data["answer_model"] == json.loads(earlier.read_text())["answer_model"]
    row = data["feedbacks"][0]
    assert row["behaviour"] and len(row["decisions"]["in_scope"]["c3po_probability"]) == 12
    (tmp_path / "empty.json").write_text('{"feedbacks": []}')
    bad = CliRunner().invoke(
        app, [*args, "--answers-from", str(tmp_path / "empty.json"), "--out", str(tmp_path)]
    )
    assert bad.exit_code != 0 and "holds no answers" in bad.output


def test_the_recorded_llm_datasets_still_answer_every_prompt_the_builder_sends() -> None:
    """The README's "written by Claude" figures replay recorded answers: if the builder's
    prompts change, every step would fail quietly and the figures could not be remade."""
    from persona.agents.models import load_chat_model
    from persona.agents.replay import ReplayChatModel
    from persona.bench.feedback_checks import load_feedback_set
    from persona.learn.c3po_data import DatasetBuilder, DatasetConfig

    root = Path(__file__).parents[2] / "benchmarks" / "feedback" / "llm-written"
    llm = load_chat_model(f"replay:{root / 'replay.json'}")
    assert isinstance(llm, ReplayChatModel)
    for categories in (4, 8):  # the default, and the wider datasets
        cfg = DatasetConfig(categories=categories, per_category=5)
        for split in ("dev", "test", "fresh"):
            for fb in load_feedback_set(split):
                data, cost = DatasetBuilder(llm, cfg).build(fb["text"])
                assert not cost.failed_steps, (fb["text"], categories, cost.failed_steps)
                assert cost.calls == 2 + 2 * categories
                assert len(data["categories"]) == categories
    assert llm.missed == []


class _Steered(FakeListChatModel):
    """A fake that says it guides (as the local model with ``guidance_scale`` set) and records
    the ``negative_messages=`` of every call."""

    guidance_scale: float = 2.0
    seen: list[tuple[str, str | None]] = []

    def _call(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> str:
        negative = kw.get("negative_messages")
        self.seen.append((messages[-1].text, negative[-1].text if negative else None))
        return super()._call(messages, stop, run_manager, **kw)


def test_steered_answers_to_a_feedback_come_with_the_request_alone(
    minilm: MiniLMEmbedder,
) -> None:
    """With --guidance / --rerank the answers with the feedback are given the request without
    it, as the layer's runnable gives it; the plain answers are not steered."""
    fb = [f for f in load_feedback_set("test") if f["checker"]][0]
    model = _Steered(responses=["An answer."])
    run_feedback_bench([fb], llm=None, embedder=minilm, answer_model=model)
    requests = [r for g in GROUPS for r in fb[g]]
    told = {with_feedback(r, fb["text"]): r for r in requests}
    assert len(model.seen) == 2 * len(requests)
    assert sorted(p for p, n in model.seen if n is None) == sorted(requests)
    assert sorted((p, n) for p, n in model.seen if n is not None) == sorted(told.items())
    # a model that does not steer is never given the request alone
    plain = FakeListChatModel(responses=["An answer."])
    assert not steered(plain) and answer_all(plain, list(told), 8, alone=requests)


def test_a_steered_local_model_answers_as_it_does_when_the_layer_calls_it(
    tiny_local: LocalChatModel,
) -> None:
    guided = tiny_local.model_copy(update={"max_new_tokens": 6, "guidance_scale": 3.0})
    requests = ["Write a tweet about our new sourdough.", "Plan three days in Rome."]
    told = [with_feedback(r, "Keep tweets under 40 words") for r in requests]
    answers = answer_all(guided, told, 6, alone=requests)
    assert answers == [
        guided.invoke([HumanMessage(t)], negative_messages=[HumanMessage(r)]).text
        for t, r in zip(told, requests, strict=True)
    ]
    assert answers != answer_all(guided, told, 6)  # without the requests alone: unguided


def test_cli_refuses_steering_where_it_writes_no_answers_or_the_model_cannot(
    tmp_path: Path,
) -> None:
    from persona.cli import app

    args = ["bench", "feedback", "--llm", "fake", "--categories", "0", "--limit", "1"]
    for extra, names in (
        (["--no-answers", "--guidance", "2"], "--no-answers"),
        (["--answer-llm", "fake:Sure.", "--rerank", "4"], "local model"),
    ):
        result = CliRunner().invoke(app, [*args, *extra, "--out", str(tmp_path)])
        assert result.exit_code != 0 and names in result.output, result.output
    assert not (tmp_path / "feedback.json").exists()
