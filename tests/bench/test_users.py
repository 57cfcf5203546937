"""Simulated users: the scripted (atom-based) user and PRELUDE's LLM user."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from persona.bench.atoms import apply_atoms
from persona.bench.env import SOURCES, TASKS, Context, instruction, load_corpus
from persona.bench.metrics import edit_distance, is_short
from persona.bench.text import has_body, with_body
from persona.bench.users import (
    JUDGE_PROMPT,
    OWN_TEXT_WORDS,
    REVISE_PROMPT,
    LLMUser,
    ScriptedUser,
    SimulatedUser,
    clean_revision,
    own_text,
)
from persona.errors import InvalidInputError

CTX = Context("email", "review", "The paper is clear. The baselines are weak.", "r-1")
LATENT = SOURCES["email"]["review"].latent


class _Broken(BaseChatModel):
    """A chat model whose endpoint is down."""

    @property
    def _llm_type(self) -> str:
        return "broken"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise ConnectionError("connection refused: http://127.0.0.1:9/v1")


class _Recording(BaseChatModel):
    """Replies in order, records the prompts, and reports token usage."""

    replies: list[str]
    prompts: list[str] = []

    @property
    def _llm_type(self) -> str:
        return "recording"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.prompts.append(str(messages[-1].content))
        text = self.replies[len(self.prompts) - 1]
        usage = {"input_tokens": 100, "output_tokens": 7, "total_tokens": 107}
        message = AIMessage(content=text, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])


def test_users_follow_the_protocol() -> None:
    assert isinstance(ScriptedUser(), SimulatedUser)
    assert isinstance(LLMUser(FakeListChatModel(responses=["yes"])), SimulatedUser)


@pytest.mark.parametrize("task", TASKS)
def test_scripted_user_costs_nothing_when_satisfied(task: str) -> None:
    user = ScriptedUser()
    for ctx in load_corpus(task):
        source = SOURCES[task][ctx.source]
        assert user.latent(ctx) == source.latent
        edited = user.edit(ctx, ctx.text)  # the raw document violates its source's preference
        assert edit_distance(ctx.text, edited) > 0
        assert edited == apply_atoms(source.atoms, ctx.text)
        assert user.edit(ctx, edited) == edited  # satisfied: no edit, cost 0
        assert edit_distance(edited, user.edit(ctx, edited)) == 0


@pytest.mark.parametrize("task", TASKS)
def test_own_text_is_the_document_s_lead_in_whole_sentences(task: str) -> None:
    for ctx in load_corpus(task):
        text = own_text(ctx)
        assert ctx.text.startswith(text)
        assert len(text.split()) >= OWN_TEXT_WORDS and text[-1] in ".!?"
    short = Context(task, "x", "One sentence. And a second one.")
    assert own_text(short) == short.text  # shorter than the floor: all of it


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("answer", ["# # #", "", "# A title\n\nPlease reply to confirm."])
def test_scripted_user_writes_the_content_when_the_answer_says_almost_nothing(
    task: str, answer: str
) -> None:
    user, lenient = ScriptedUser(), ScriptedUser(rewrite_short=False)
    for ctx in load_corpus(task)[:12]:
        atoms = SOURCES[task][ctx.source].atoms
        edited = user.edit(ctx, answer)
        assert edited == apply_atoms(atoms, own_text(ctx))
        # the cost is about that of writing the answer, not that of fixing its form
        assert edit_distance(answer, edited) >= 25
        assert edit_distance(answer, edited) > edit_distance(answer, lenient.edit(ctx, answer))
        assert user.edit(ctx, edited) == edited  # what the user wrote satisfies them
        assert lenient.edit(ctx, answer) == apply_atoms(atoms, answer)  # atoms only
    assert (user.rewritten, lenient.rewritten) == (12, 0)


FRAME_ONLY = {
    "summarization": "TL;DR: The council approved the park budget after a long debate on costs."
    "\n\n# Park budget approved",
    "email": "Subject: The review of the paper you sent us\n\nDear Sam,\n\nBest regards,\nAlex",
}


@pytest.mark.parametrize("task", TASKS)
def test_scripted_user_writes_the_body_of_an_answer_that_is_all_frame(task: str) -> None:
    answer = FRAME_ONLY[task]
    assert not is_short(answer) and not has_body(answer)
    user, lenient = ScriptedUser(), ScriptedUser(rewrite_short=False)
    for ctx in load_corpus(task)[:12]:
        atoms = SOURCES[task][ctx.source].atoms
        edited = user.edit(ctx, answer)
        assert has_body(edited)
        assert edited == apply_atoms(atoms, with_body(answer, own_text(ctx)))
        # body preferences are not met by having no body: writing it costs
        assert edit_distance(answer, edited) >= 25
        assert user.edit(ctx, edited) == edited
        assert lenient.edit(ctx, answer) == apply_atoms(atoms, answer)
    assert (user.rewritten, lenient.rewritten) == (12, 0)


def test_scripted_user_rejects_an_unknown_source() -> None:
    with pytest.raises(InvalidInputError, match="'tweet'"):
        ScriptedUser().edit(Context("email", "tweet", "x"), "answer")


def test_llm_user_satisfied() -> None:
    user = LLMUser(FakeListChatModel(responses=["Yes, it is."]))
    assert user.edit(CTX, "Some answer!") == "Some answer!"
    assert (user.calls, user.failures) == (1, 0)
    assert user.latent(CTX) == LATENT


def test_llm_user_revises() -> None:
    revision = (
        'Here is the revised answer:\n\n"Dear all,\n\n1. The paper is clear.\n\nBest regards,"'
    )
    user = LLMUser(FakeListChatModel(responses=["No.", revision]))
    assert user.edit(CTX, "answer!") == "Dear all,\n\n1. The paper is clear.\n\nBest regards,"
    assert (user.calls, user.failures) == (2, 0)


def test_llm_user_prompts_and_tokens() -> None:
    model = _Recording(replies=["no", "Dear all,\n\n1. Fine.\n\nBest regards,"], prompts=[])
    user = LLMUser(model)
    user.edit(CTX, "my answer")
    judge, revise = model.prompts
    fields = {"task": "write an email", "instruction": instruction(CTX), "answer": "my answer"}
    assert judge == JUDGE_PROMPT.format(**fields, latent=LATENT)
    assert revise == REVISE_PROMPT.format(**fields, latent=LATENT)
    assert f"Is the above answer good for a user who prefers: {LATENT}?" in judge
    assert "Answer yes or no." in judge
    assert (user.tokens_in, user.tokens_out) == (200, 14)


def test_llm_user_junk_answers_leave_the_output_unchanged() -> None:
    user = LLMUser(FakeListChatModel(responses=["Hmm, hard to say.", "   "]))
    assert user.edit(CTX, "answer") == "answer"  # unclear verdict: asks; empty revision: fails
    assert (user.calls, user.failures) == (2, 1)
    user = LLMUser(FakeListChatModel(responses=["no", 'Here is the revised email: ""']))
    assert user.edit(CTX, "answer") == "answer"
    assert user.failures == 1


def test_llm_user_dead_model_counts_a_failure() -> None:
    user = LLMUser(_Broken())
    assert user.edit(CTX, "answer") == "answer"
    assert user.edit(CTX, "answer") == "answer"
    assert user.failures == 2
    assert (user.tokens_in, user.tokens_out) == (0, 0)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("plain text", "plain text"),
        ('"quoted"', "quoted"),
        ("Here is the revised answer:\nThe text.", "The text."),
        ("Sure! Here's the revised email:\n\nDear all,\n\nText.", "Dear all,\n\nText."),
        ("```\n- a\n- b\n```", "- a\n- b"),
        ("Here is the summary: short", "short"),
        ("  “curly”  ", "curly"),
        ("The answer: keep this colon", "The answer: keep this colon"),
    ],
)
def test_clean_revision(raw: str, clean: str) -> None:
    assert clean_revision(raw) == clean
