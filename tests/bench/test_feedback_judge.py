"""The LLM judge of ``persona bench feedback``'s qualitative feedbacks (fake LLMs, real
scope models)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from langchain_core.messages import BaseMessage
from pydantic import ConfigDict
from typer.testing import CliRunner

from persona.agents.fakes import ReplyChatModel, ScriptedChatModel
from persona.bench.feedback import GROUPS, run_feedback_bench
from persona.bench.feedback_checks import load_feedback_set
from persona.bench.feedback_judge import JUDGE_PROMPT, LLMJudge
from persona.errors import InvalidInputError
from persona.store.embed import MiniLMEmbedder


class RuleChatModel(ReplyChatModel):
    """Replies with ``rule(last message text)``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    rule: Callable[[str], str]

    @property
    def _llm_type(self) -> str:
        return "test-rule"

    def _reply(self, messages: list[BaseMessage]) -> str:
        return self.rule(str(messages[-1].text))


def _qualitative() -> dict:
    return next(f for f in load_feedback_set("test") if not f["checker"])


def test_judge_parses_yes_and_no_and_counts_the_rest() -> None:
    llm = ScriptedChatModel(responses=["Yes.", " no, it does not", "Maybe", "Yesterday"])
    judge = LLMJudge(llm)
    fb = {"text": "Keep it calm."}
    assert [judge(fb, "r", a) for a in ("a", "b", "c", "d")] == [True, False, None, None]
    assert judge.calls == 4 and judge.unparsed == 2
    assert judge(fb, "r", "a") is True and judge.calls == 4  # the same question is asked once
    assert llm.seen[0].endswith(
        JUDGE_PROMPT.format(feedback="Keep it calm.", request="r", answer="a")
    )


def test_a_judge_scores_qualitative_feedback_and_the_checker_the_rest() -> None:
    fb = _qualitative()
    quantitative = next(f for f in load_feedback_set("test") if f["checker"])
    # the answer follows the feedback exactly when the feedback is in the prompt
    answers = RuleChatModel(rule=lambda t: "CALM. " + t[:20] if fb["text"][:30] in t else "LOUD!")
    judge = LLMJudge(RuleChatModel(rule=lambda t: "Yes" if "CALM." in t else "No"))
    result = run_feedback_bench(
        [fb, quantitative], llm=None, embedder=MiniLMEmbedder(), answer_model=answers, judge=judge
    )
    judged, checked = result["feedbacks"]
    assert judged["judged_by"] == "llm judge" and checked["judged_by"] == "checker"
    for group in GROUPS:
        b = judged["behaviour"][group]
        assert b["no_feedback"] == [False] * len(fb[group]) and b["counted"] == len(fb[group])
        assert b["in_context"] == [True] * len(fb[group])
        applied = judged["decisions"][group]["c3po_scope"]
        assert b["c3po_scope"] == applied  # followed exactly where the scope applied it
    assert result["summary"]["judged_feedbacks"] == {"checker": 1, "llm judge": 1, "not judged": 0}
    assert judge.calls > 0 and judge.unparsed == 0


def test_without_a_judge_answers_are_kept_and_judged_later() -> None:
    fb = _qualitative()
    answers = RuleChatModel(rule=lambda t: "CALM." if fb["text"][:30] in t else "LOUD!")
    embedder = MiniLMEmbedder()
    first = run_feedback_bench([fb], llm=None, embedder=embedder, answer_model=answers)
    row = first["feedbacks"][0]
    assert row["judged_by"] == "not judged"
    assert row["behaviour"]["in_scope"]["counted"] == 0
    assert set(row["behaviour"]["in_scope"]["no_feedback"]) == {None}
    assert row["behaviour"]["near_scope"]["answers"]["in_context"][0] == "CALM."
    assert first["summary"]["judged_feedbacks"]["not judged"] == 1
    assert first["summary"]["applied_rate"]["in_context"]["in_scope"]["n"] == 0
    # a later run judges the kept answers: no answer model, no new answers
    judge = LLMJudge(RuleChatModel(rule=lambda t: "yes" if "CALM." in t else "no"))
    later = run_feedback_bench([fb], llm=None, embedder=embedder, answers_from=first, judge=judge)
    again = later["feedbacks"][0]
    assert again["judged_by"] == "llm judge"
    assert again["behaviour"]["in_scope"]["in_context"] == [True] * len(fb["in_scope"])
    assert later["summary"]["applied_rate"]["in_context"]["near_and_out"]["rate"] == 1.0
    assert judge.calls == 2 * sum(len(fb[g]) for g in GROUPS)
    # a run from before answers were kept cannot be judged again, and says so
    for group in GROUPS:
        del row["behaviour"][group]["answers"]
    with pytest.raises(InvalidInputError, match="kept no answers"):
        run_feedback_bench([fb], llm=None, embedder=embedder, answers_from=first, judge=judge)


@pytest.mark.parametrize("judge", ["fake:No.", None])
def test_cli_records_the_judge(tmp_path: Path, judge: str | None) -> None:
    from persona.cli import app

    skip = str(next(i for i, f in enumerate(load_feedback_set("test")) if not f["checker"]))
    args = ["bench", "feedback", "--llm", "fake:Sure.", "--categories", "0"]
    args += ["--skip", skip, "--limit", "1", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, *(["--judge", judge] if judge else [])])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "feedback.json").read_text())
    if judge is None:
        assert "no LLM judge" in data["judge"]
        assert data["feedbacks"][0]["judged_by"] == "not judged"
        return
    assert "scripted" in data["judge"]["qualitative"] and data["judge"]["unparsed_replies"] == 0
    assert data["judge"]["calls"] == sum(
        len(data["feedbacks"][0]["behaviour"][g]["no_feedback"]) for g in GROUPS
    )
    assert data["feedbacks"][0]["behaviour"]["in_scope"]["counted"] == 12


def test_exported_questions_replay_as_the_judges_verdicts(tmp_path: Path) -> None:
    """``benchmarks/feedback/judge/record.py``: the questions it exports are the prompts the
    judge sends, so a recording of verdicts judges a kept run with nothing missed."""
    import importlib.util

    from persona.agents.models import load_chat_model

    path = Path(__file__).parents[2] / "benchmarks" / "feedback" / "judge" / "record.py"
    spec = importlib.util.spec_from_file_location("judge_record", path)
    assert spec is not None and spec.loader is not None
    record = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(record)
    fb = _qualitative()
    answers = RuleChatModel(rule=lambda t: "CALM." if fb["text"][:30] in t else "LOUD!")
    embedder = MiniLMEmbedder()
    first = run_feedback_bench([fb], llm=None, embedder=embedder, answer_model=answers)
    run = tmp_path / "feedback.json"
    run.write_text(json.dumps(first))
    record.export(run, tmp_path / "questions", 2)
    for part in (tmp_path / "questions").glob("part-*.json"):
        items = json.loads(part.read_text())
        for item in items:
            item["verdict"] = "yes" if item["answer"] == "CALM." else "no"
        part.write_text(json.dumps(items))
    record.replay(tmp_path / "questions", tmp_path / "verdicts.json", "a test judge")
    judge = LLMJudge(load_chat_model(f"replay:{tmp_path / 'verdicts.json'}"))
    later = run_feedback_bench([fb], llm=None, embedder=embedder, answers_from=first, judge=judge)
    assert judge.unparsed == 0 and not judge.llm.missed  # type: ignore[attr-defined]
    assert later["feedbacks"][0]["behaviour"]["in_scope"]["in_context"] == [True] * len(
        fb["in_scope"]
    )
