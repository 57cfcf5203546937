"""CIPHER's rules with a scripted LLM and the hash embedder."""

from __future__ import annotations

import contextlib
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from pydantic import Field

from persona import InvalidInputError, LearningError, ModelError, PreferenceLayer
from persona.agents.fakes import FailingChatModel, ScriptedChatModel
from persona.agents.models import LocalChatModel
from persona.config import MAX_TEXT_CHARS
from persona.learn.cipher_model import Cipher, CipherConfig, guided
from persona.learn.cipher_text import (
    clauses,
    clean_phrase,
    infer_prompt,
    vote,
    without_broken_limits,
    without_contradicted_ends,
    without_contradicted_features,
    word_diff,
)
from persona.store.embed import HashEmbedder

NEWS = "Summarize this news article about the city council vote on the new bike lanes"
NEWS2 = "Summarize this news article about the city council vote on the new bus lanes"
EMAIL = "Write an email to the landlord about the broken heater in the flat"


def open_layer(home: Path, responses: list[str], **options: object) -> PreferenceLayer:
    llm = ScriptedChatModel(responses=responses)
    return PreferenceLayer.open(home, llm=llm, embedder=HashEmbedder(64), **options)


def snapshot(layer: PreferenceLayer, user: str = "alice") -> tuple[int, int]:
    return len(layer.store.list_edits(user)), len(layer.store.list_preferences(user))


def test_word_diff_is_compact() -> None:
    diff = word_diff("The council voted yes on Monday.", "- The council voted yes.")
    assert diff.splitlines() == ["+ -", "- yes on Monday.", "+ yes."]
    assert word_diff("same text", "same  text") == "(no change)"
    long = word_diff("a " * 10, "b " * 200, max_words=20)
    assert long.count("b") <= 20 and "..." in long


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("bullet points", "bullet points"),
        ('"Concise bullet points."', "Concise bullet points"),
        ("The user's preference is: short sentences.\nMore text here.", "short sentences"),
        ("- a one-line TL;DR first", "a one-line TL;DR first"),
        ("Preference: formal greeting", "formal greeting"),
    ],
)
def test_clean_phrase_accepts_and_tidies(raw: str, want: str) -> None:
    assert clean_phrase(raw) == want


@pytest.mark.parametrize("raw", ["", "   ", "Original answer: blah", "12345 !!!", "<|im_end|>"])
def test_clean_phrase_rejects_junk(raw: str) -> None:
    with pytest.raises(LearningError):
        clean_phrase(raw)


def test_clean_phrase_rambling() -> None:
    assert clean_phrase("short bullets. " + "and then " * 30) == "short bullets"
    with pytest.raises(LearningError, match="short"):
        clean_phrase("word " * 40)


def test_edit_infers_and_stores_with_context_and_provenance(persona_home: Path) -> None:
    with open_layer(persona_home, ['"Bullet points."']) as layer:
        [pref] = layer.learn_from_edit("alice", NEWS, "The council voted.", "- The council voted.")
        [edit] = layer.store.list_edits("alice")
        assert pref.text == "Bullet points" and pref.source == "edit"
        assert pref.provenance == (f"edit:{edit.id}",) and pref.context == NEWS
        seen = layer.llm.seen[0]  # type: ignore[attr-defined]
        assert "Revised answer by the user:\n- The council voted." in seen
        assert "Word-level changes" in seen and "writing style and formatting" in seen


def test_knn_retrieval_and_aggregation(persona_home: Path) -> None:
    llm_replies = [
        "bullet points",
        "short sentences",
        "formal greeting",
        "bullets and short sentences",
    ]
    with open_layer(
        persona_home, llm_replies, cipher_k=2, min_similarity=0.0, cipher_aggregate="sync"
    ) as layer:
        a = layer.learn_from_edit("alice", NEWS, "x y z", "- x y z")[0]
        b = layer.learn_from_edit("alice", NEWS2, "long sentence here", "Short. Here.")[0]
        c = layer.learn_from_edit("alice", EMAIL, "hey", "Dear landlord,")[0]
        cond = layer.condition("alice", NEWS)
        ids = [p.id for p in cond.preferences]
        assert ids == [a.id, b.id]  # the k=2 nearest contexts, nearest first; not the email
        assert c.id not in ids
        assert cond.preferences[0].score >= cond.preferences[1].score
        assert "CIPHER" in cond.preferences[0].why.scope
        assert cond.preferences[0].why.sources == a.provenance
        assert cond.summary == "bullets and short sentences"
        assert "- bullets and short sentences" in cond.system_prompt
        layer.llm.seen.clear()  # type: ignore[attr-defined]
        assert layer.condition("alice", NEWS).summary == cond.summary  # memoized, same result
        assert layer.llm.seen == []  # type: ignore[attr-defined]


def test_single_distinct_preference_needs_no_aggregation(persona_home: Path) -> None:
    with open_layer(persona_home, ["bullet points"]) as layer:
        layer.learn_from_edit("alice", NEWS, "x y z", "- x y z")
        layer.learn_from_edit("alice", NEWS2, "a b", "- a b")
        calls = len(layer.llm.seen)  # type: ignore[attr-defined]
        assert layer.condition("alice", NEWS).summary == "bullet points"
        assert len(layer.llm.seen) == calls  # type: ignore[attr-defined]


def test_junk_aggregate_falls_back_to_nearest(persona_home: Path) -> None:
    with open_layer(
        persona_home,
        ["bullet points", "short sentences", ""],
        min_similarity=0.0,
        cipher_aggregate="sync",
    ) as layer:
        layer.learn_from_edit("alice", NEWS, "x y z", "- x y z")
        layer.learn_from_edit("alice", NEWS2, "long one", "Short.")
        assert layer.condition("alice", NEWS).summary == "bullet points"


def test_accepting_unedited_restores_the_used_preference(persona_home: Path) -> None:
    with open_layer(persona_home, ["bullet points"]) as layer:
        assert layer.learn_from_edit("alice", NEWS, "fine", "fine") == []  # nothing used yet
        assert snapshot(layer) == (0, 0)
        first = layer.learn_from_edit("alice", NEWS, "x y z", "- x y z")[0]
        layer.condition("alice", NEWS2)
        [again] = layer.learn_from_edit("alice", NEWS2, "- a b c", "- a b c")
        assert again.text == "bullet points" and again.context == NEWS2
        edits = layer.store.list_edits("alice")
        assert again.provenance == (f"edit:{edits[-1].id}", f"preference:{first.id}")


def test_accept_without_remembered_conditioning_recomputes(persona_home: Path) -> None:
    with open_layer(persona_home, ["bullet points"]) as layer:
        layer.learn_from_edit("alice", NEWS, "x y z", "- x y z")
    with open_layer(persona_home, ["unused"]) as layer:  # a new process: nothing remembered
        [again] = layer.learn_from_edit("alice", NEWS2, "- a", "- a")
        assert again.text == "bullet points"


@pytest.mark.parametrize(
    ("llm", "error"),
    [
        (FailingChatModel(), ModelError),
        (ScriptedChatModel(responses=[""]), LearningError),
        (ScriptedChatModel(responses=["Original answer: the council"]), LearningError),
        (ScriptedChatModel(responses=["word " * 60]), LearningError),
    ],
)
def test_llm_failure_or_junk_leaves_store_unchanged(
    persona_home: Path, llm: object, error: type
) -> None:
    with PreferenceLayer.open(persona_home, llm=llm, embedder=HashEmbedder(64)) as layer:  # type: ignore[arg-type]
        layer.add_preference("alice", "keep")
        before = snapshot(layer)
        with pytest.raises(error):
            layer.learn_from_edit("alice", NEWS, "x y z", "- x y z")
        assert snapshot(layer) == before


@pytest.mark.parametrize(
    ("output", "edited", "match"),
    [
        ("x", "", "edited"),
        ("", "x", "output"),
        ("x", "y" * (MAX_TEXT_CHARS + 1), "limit"),
        ("x", " \n", "empty"),
    ],
)
def test_bad_edits_are_refused(persona_home: Path, output: str, edited: str, match: str) -> None:
    with open_layer(persona_home, ["bullet points"]) as layer:
        with pytest.raises(InvalidInputError, match=match):
            layer.learn_from_edit("alice", NEWS, output, edited)
        assert snapshot(layer) == (0, 0)


def test_cipher_threshold_keeps_edits_away_from_unrelated_requests(persona_home: Path) -> None:
    with open_layer(persona_home, ["bullet points"]) as layer:  # default: plain k nearest
        layer.learn_from_edit("alice", NEWS, "x y z", "- x y z")
        assert layer.condition("alice", "Tell me a joke about cats").summary == "bullet points"
    with open_layer(persona_home, ["unused"], cipher_min_similarity=0.3) as layer:
        assert layer.condition("alice", "Tell me a joke about cats").preferences == ()
        assert layer.condition("alice", NEWS2).summary == "bullet points"


@pytest.mark.parametrize(
    ("mode", "want"),
    [
        (None, "bullet points"),  # the default, "vote": 1 of 2 is no majority, so the nearest
        ("list", "bullet points; short sentences"),  # nearest first, deduplicated
    ],
)
def test_default_path_calls_no_llm_at_request_time(
    persona_home: Path, mode: str | None, want: str
) -> None:
    options = {"cipher_aggregate": mode} if mode else {}
    replies = ["bullet points", "short sentences"]
    with open_layer(persona_home, replies, cipher_k=2, **options) as layer:
        assert layer.cipher.config.aggregate == (mode or "vote")
        layer.learn_from_edit("alice", NEWS, "x y z", "- x y z")
        layer.learn_from_edit("alice", NEWS2, "long one", "Short.")
        calls = len(layer.llm.seen)  # type: ignore[attr-defined]
        cond = layer.condition("alice", NEWS)
        assert cond.summary == want
        assert len(cond.preferences) == 2  # both retrieved preferences are shown, with why
        assert "llm_ms" not in cond.timings
        assert len(layer.llm.seen) == calls  # type: ignore[attr-defined]


def test_background_aggregation_serves_the_vote_then_the_aggregate(persona_home: Path) -> None:
    replies = ["bullet points", "short sentences", "bullets, short sentences"]
    with open_layer(persona_home, replies, cipher_k=2, cipher_aggregate="background") as layer:
        layer.learn_from_edit("alice", NEWS, "x y z", "- x y z")
        layer.learn_from_edit("alice", NEWS2, "long one", "Short.")
        first = layer.condition("alice", NEWS)
        assert first.summary == "bullet points"  # the vote: 1 of 2 is no majority, the nearest
        assert "llm_ms" not in first.timings
        layer.cipher.drain()
        assert layer.condition("alice", NEWS).summary == "bullets, short sentences"
        calls = len(layer.llm.seen)  # type: ignore[attr-defined]
        layer.condition("alice", NEWS)
        assert len(layer.llm.seen) == calls  # type: ignore[attr-defined]  # memoized


def _hits(*prefs: tuple[int, str], user: str = "alice") -> tuple[Any, ...]:
    from persona.learn.base import Hit
    from persona.types import Preference

    return tuple(Hit(Preference(i, user, t, "edit"), 0.9 - i / 100) for i, t in prefs)


class Aggregates(ScriptedChatModel):
    """Aggregation: the texts it was given, sorted and joined with ' + ' (so a test can tell
    which set an aggregate was made for)."""

    def _reply(self, messages: list[Any]) -> str:  # type: ignore[override]
        prompt = str(messages[-1].content)
        got = [t for t in ("bullets", "short", "no emojis", "a title", "formal") if t in prompt]
        return " + ".join(sorted(got))


def _background_learner() -> Any:
    from persona.learn.cipher import CipherLearner

    config = CipherConfig(k=3, aggregate="background")
    return CipherLearner(lambda: Aggregates(responses=[]), lambda *a: [], config, keyword_embed)


def _serve(learner: Any, hits: tuple[Any, ...], user: str = "alice") -> str:
    from persona.learn.base import Request

    part = learner.contribute(Request(user, "ctx", np.zeros(4, np.float32), hits))
    return str(part.summary)


def test_background_serves_a_neighbouring_sets_aggregate_until_its_own_is_made() -> None:
    learner = _background_learner()
    first = _hits((1, "bullets"), (2, "short"), (3, "no emojis"))
    assert _serve(learner, first) == vote(["bullets", "short", "no emojis"], keyword_embed)
    learner.drain()
    assert _serve(learner, first) == "bullets + no emojis + short"  # its own aggregate
    # one preference differs: the first set's aggregate, while this one's is made
    second = _hits((1, "bullets"), (2, "short"), (4, "a title"), (3, "no emojis"))
    assert _serve(learner, second) == "bullets + no emojis + short"
    learner.drain()
    assert _serve(learner, second) == "a title + bullets + short"
    # two differ: no neighbour, the vote
    third = _hits((1, "bullets"), (5, "formal"), (6, "no emojis again"), (2, "short"))
    assert _serve(learner, third) == vote(["bullets", "formal", "no emojis again"], keyword_embed)
    assert learner.served == {"vote": 2, "aggregate": 2, "neighbour": 1}


@pytest.mark.parametrize(
    "change",
    [
        "deleted",  # the neighbour's third preference is no longer stored
        "edited",  # it is stored with other words
        "other user",  # the request is another user's
    ],
)
def test_background_never_serves_a_neighbour_with_words_no_longer_stored(change: str) -> None:
    learner = _background_learner()
    first = _hits((1, "bullets"), (2, "short"), (3, "no emojis"))
    _serve(learner, first)
    learner.drain()
    user = "bob" if change == "other user" else "alice"
    last = {"deleted": (), "edited": ((3, "formal"),), "other user": ((3, "no emojis"),)}[change]
    near = _hits((1, "bullets"), (2, "short"), (4, "a title"), *last, user=user)
    served = _serve(learner, near, user=user)
    assert "no emojis" not in served and learner.served["neighbour"] == 0


def test_unknown_aggregate_mode_is_refused(persona_home: Path) -> None:
    with pytest.raises(InvalidInputError, match="cipher_aggregate"):
        open_layer(persona_home, ["x"], cipher_aggregate="later")


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (
            "start with a one-line TL;DR; bullet points, short sentences",
            ["start with a one-line TL;DR", "bullet points", "short sentences"],
        ),
        (
            "formal greeting and closing ('Dear …,' / 'Best regards,'); no emojis.",
            ["formal greeting and closing ('Dear …,' / 'Best regards,')", "no emojis"],
        ),
        ('sign off with "Cheers, Sam"\n- no emojis', ['sign off with "Cheers, Sam"', "no emojis"]),
        ("at most 50 words,no commas", ["at most 50 words,no commas"]),
        (" ; ", []),
    ],
)
def test_clauses_split_outside_brackets_and_quotes(text: str, want: list[str]) -> None:
    assert clauses(text) == want


def keyword_embed(texts: list[str]) -> np.ndarray:
    """One direction per keyword (the first a text contains); any other text its own one."""
    keys = ("bullet", "tl;dr", "emoji", "formal")
    out = np.zeros((len(texts), 256), dtype=np.float32)
    for i, text in enumerate(texts):
        own = len(keys) + zlib.crc32(text.encode()) % (256 - len(keys))
        out[i, next((k for k, key in enumerate(keys) if key in text.lower()), own)] = 1.0
    return out


@pytest.mark.parametrize(
    ("texts", "want"),
    [
        # "bullets" is stated by 3 of 5 (in three wordings): kept once, in the nearest's words
        (
            [
                "use bullet points; casual tone",
                "a formal tone",
                "bullets",
                "no emojis",
                "bullet list",
            ],
            "use bullet points",
        ),
        # two clauses with a majority: both, nearest first
        (["a TL;DR; bullets", "bullet points, TL;DR first", "no emojis"], "a TL;DR; bullets"),
        # a repeated preference is a vote, not a duplicate to drop
        (["no emojis", "no emojis", "bullet points"], "no emojis"),
        # 2 of 4 is no majority: the nearest preference, as it is
        (["a formal tone, short", "bullet points", "formal", "bullets"], "a formal tone, short"),
    ],
)
def test_vote_keeps_what_a_majority_states(texts: list[str], want: str) -> None:
    assert vote(texts, keyword_embed, 0.4) == want


def test_vote_aggregation_in_the_layer_calls_no_llm(persona_home: Path) -> None:
    replies = ["bullet points; no emojis", "bullet points", "formal greeting"]
    with open_layer(persona_home, replies, cipher_k=3, cipher_aggregate="vote") as layer:
        layer.learn_from_edit("alice", NEWS, "x y z", "- x y z")
        layer.learn_from_edit("alice", NEWS2, "a b", "- a b")
        layer.learn_from_edit("alice", EMAIL, "hey", "Dear landlord,")
        # each learned phrase's clauses were embedded when it was learned, off the request path
        assert set(layer.cipher._vectors) == {"bullet points", "no emojis", "formal greeting"}
        calls = len(layer.llm.seen)  # type: ignore[attr-defined]
        cond = layer.condition("alice", NEWS)
        assert len(cond.preferences) == 3
        assert cond.summary == "bullet points"  # 2 of 3 state it; the rest only one each
        assert "- bullet points" in cond.system_prompt
        assert len(layer.llm.seen) == calls  # type: ignore[attr-defined]


def test_vote_without_an_embedder_says_what_to_pass() -> None:
    from persona.learn.cipher import CipherLearner

    learner = CipherLearner(
        lambda: ScriptedChatModel(responses=[]), lambda *a: [], CipherConfig(aggregate="vote")
    )
    with pytest.raises(InvalidInputError, match="embed="):
        learner.describe(["bullet points", "no emojis"])


OUT = "The council voted on Monday. The plan passed."
EDITED = "- The council voted on Monday.\n- The plan passed."


def test_inference_guidance_decodes_away_from_the_unchanged_prompt(
    tiny_local: LocalChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the local model, each inferred token is guided away from the same prompt with the
    revision equal to the answer; the copy that infers never reranks (that is for answers)."""
    answering = tiny_local.model_copy(update={"rerank": 3})
    seen: list[tuple[LocalChatModel, dict[str, Any], dict[str, Any]]] = []
    real = LocalChatModel._prepare

    def spy(self: LocalChatModel, messages: Any, stop: Any, **kwargs: Any) -> Any:
        out = real(self, messages, stop, **kwargs)
        seen.append((self, kwargs, out[2]))
        return out

    monkeypatch.setattr(LocalChatModel, "_prepare", spy)
    for scale in (2.0, 1.0):
        cipher = Cipher(answering, CipherConfig(infer_guidance=scale, infer_tokens=6))
        with contextlib.suppress(LearningError):  # the tiny model's words need not be a phrase
            cipher.infer(OUT, EDITED)
    (guided_model, kwargs, gen), (plain_model, plain_kwargs, plain_gen) = seen
    assert guided_model.guidance_scale == 2.0 and guided_model.rerank == 1
    [negative] = kwargs["negative_messages"]
    assert f"Revised answer by the user:\n{OUT}\n" in negative.text
    assert "(no change)" in negative.text and EDITED not in negative.text
    assert gen["logits_processor"][0].scale == 2.0
    assert plain_model is answering and "negative_messages" not in plain_kwargs
    assert "logits_processor" not in plain_gen


def test_inference_guidance_leaves_other_models_alone(persona_home: Path) -> None:
    assert guided(ScriptedChatModel(responses=["x"]), 2.0) is None
    with open_layer(persona_home, ["bullet points"], cipher_infer_guidance=2.0) as layer:
        assert layer.cipher.config.infer_guidance == 2.0
        [pref] = layer.learn_from_edit("alice", NEWS, "x y z", "- x y z")
        assert pref.text == "bullet points"
    for bad in (-1, 11, "2", True):
        with pytest.raises(InvalidInputError, match="cipher_infer_guidance"):
            open_layer(persona_home, ["x"], cipher_infer_guidance=bad)


def test_each_clause_is_embedded_once() -> None:
    from persona.learn.cipher import CipherLearner

    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return keyword_embed(texts)

    config = CipherConfig(aggregate="vote", cache_size=1)
    learner = CipherLearner(lambda: ScriptedChatModel(responses=[]), lambda *a: [], config, embed)
    texts = ["bullets", "no emojis", "bullet points"]
    assert learner.describe(texts) == learner.describe(texts) == "bullets"
    assert calls == [texts]  # one embedding for the first vote, none for the same texts again
    # a new set of known clauses embeds nothing; a new clause is embedded alone
    assert learner.describe(texts[:2]) == "bullets"  # 1 of 2 is no majority: the nearest
    assert learner.describe(["a formal tone; no emojis", "no emojis", "bullets"]) == "no emojis"
    assert calls == [texts, ["a formal tone"]]
    # the clause cache is bounded (16 x cache_size clauses), oldest dropped first
    many = [f"clause {i}" for i in range(40)]
    learner.describe(many)
    assert len(learner._vectors) == 16 and "bullets" not in learner._vectors


@pytest.mark.parametrize("mode", ["vote", "background"])
def test_deleting_a_user_leaves_no_copy_of_their_words_in_memory(
    persona_home: Path, mode: str
) -> None:
    replies = ["bullet points; no emojis", "short sentences", "bullets, short sentences"]
    with open_layer(persona_home, replies, cipher_k=2, cipher_aggregate=mode) as layer:
        layer.learn_from_edit("alice", NEWS, "x y z", "- x y z")
        layer.learn_from_edit("alice", NEWS2, "long one", "Short.")
        layer.condition("alice", NEWS)
        layer.cipher.drain()
        layer.condition("alice", NEWS)
        held = (layer.cipher._vectors, layer.cipher._cipher._cache if layer.cipher._cipher else {})
        assert any(held), "the caches held the user's words before the deletion"
        layer.delete_user("alice")
        assert not layer.cipher._vectors and not layer.cipher._used
        assert layer.cipher._cipher is None or not layer.cipher._cipher._cache


def test_an_aggregate_begun_before_a_forget_is_not_kept() -> None:
    from persona.learn.cipher import Cipher

    cipher = Cipher(ScriptedChatModel(responses=["bullets; short"]))

    class Clearing(ScriptedChatModel):
        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            cipher.clear()  # the user is deleted while the model is answering
            return super()._generate(*args, **kwargs)

    cipher.llm = Clearing(responses=["bullets; short"])
    assert cipher.aggregate(["bullets", "short"]) == "bullets; short"  # still served once
    assert cipher.cached(("bullets", "short")) is None


def test_clause_vectors_embedded_across_a_forget_are_not_kept() -> None:
    from persona.learn.cipher import CipherLearner

    learner: CipherLearner

    def embed(texts: list[str]) -> np.ndarray:
        learner.forget("alice")  # the user is deleted while their clauses are embedded
        return keyword_embed(texts)

    config = CipherConfig(aggregate="vote")
    learner = CipherLearner(lambda: ScriptedChatModel(responses=[]), lambda *a: [], config, embed)
    assert learner.describe(["bullets", "bullet points"]) == "bullets"
    assert not learner._vectors


def usage_of(tokens_in: int, tokens_out: int) -> UsageMetadata:
    return {
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "total_tokens": tokens_in + tokens_out,
    }


class Channel(ScriptedChatModel):
    """A local model's two ways in for CIPHER's choice among phrases: ``candidates`` (the
    scripted replies) and ``loglikelihood``, under which the revision is likelier than the
    original only when the prompt states ``explains``."""

    explains: str = ""
    scored: list[str] = Field(default_factory=list)

    def candidates(self, messages: list[Any], n: int, **kwargs: Any) -> list[AIMessage]:
        self.seen.append(messages[0].text)
        return [AIMessage(r, usage_metadata=usage_of(10, 2)) for r in self.responses[:n]]

    def loglikelihood(self, prompt: str, answers: list[str]) -> list[float]:
        self.scored.append(prompt)
        return [-5.0 if self.explains in prompt else -9.0, -7.0]


def test_inference_keeps_the_candidate_that_explains_the_edit(persona_home: Path) -> None:
    llm = Channel(
        responses=["bullet points", "Original answer: blah", "no emojis", "bullet points"],
        explains="prefers the following style: no emojis",
    )
    layer = PreferenceLayer.open(
        persona_home, llm=llm, embedder=HashEmbedder(64), cipher_infer_candidates=4
    )
    with layer:
        [pref] = layer.learn_from_edit("alice", NEWS, "Great news 🎉 for cyclists", "News.")
    assert pref.text == "no emojis"
    assert "Great news" in llm.seen[0] and "+ News." in llm.seen[0]  # CIPHER's inference prompt
    # each distinct usable phrase scored once, stated after the request as the layer states it
    assert llm.scored == [
        f"{NEWS}\n\nWrite it for a user who prefers the following style: {p}."
        for p in ("bullet points", "no emojis")
    ]


def test_inference_candidates_tie_junk_and_off(persona_home: Path) -> None:
    cipher = Cipher(Channel(responses=["bullets", "short"]), CipherConfig(infer_candidates=2))
    assert cipher.infer("a b", "a b c", NEWS) == "bullets"  # a tie: the greedy phrase
    assert (cipher.tokens_in, cipher.tokens_out) == (20, 4)  # every candidate's tokens count
    assert cipher.infer("a b", "a b c") == "bullets"  # no request to score against: greedy
    junk = Cipher(Channel(responses=["12345 !!!", ""]), CipherConfig(infer_candidates=2))
    with pytest.raises(LearningError, match="stronger model"):
        junk.infer("a b", "a b c", NEWS)
    llm = Channel(responses=["bullets", "short"], explains="short")
    assert Cipher(llm, CipherConfig(infer_candidates=1)).infer("a b", "a b c", NEWS) == "bullets"
    assert llm.scored == []  # one candidate: nothing to choose, the model is asked as usual
    for bad in (0, 17, 2.5, True):
        with pytest.raises(InvalidInputError, match="cipher_infer_candidates"):
            open_layer(persona_home, ["x"], cipher_infer_candidates=bad)


def test_inference_candidates_on_the_local_model(
    tiny_local: LocalChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the tiny Llama: its own candidates are scored by its own log-likelihoods."""
    scored: list[tuple[str, list[str]]] = []
    real = LocalChatModel.loglikelihood

    def spy(self: LocalChatModel, prompt: str, answers: Any, **kwargs: Any) -> list[float]:
        scored.append((prompt, list(answers)))
        return real(self, prompt, answers, **kwargs)

    monkeypatch.setattr(LocalChatModel, "loglikelihood", spy)
    cut = lambda raw, max_words=25: raw[:20]  # noqa: E731
    monkeypatch.setattr("persona.learn.cipher_model.clean_phrase", cut)
    cipher = Cipher(tiny_local, CipherConfig(infer_candidates=3, infer_tokens=6))
    phrase = cipher.infer(OUT, EDITED, NEWS)
    asked = infer_prompt(OUT, EDITED)
    written = tiny_local.candidates([HumanMessage(asked)], 3, max_tokens=6)
    options = list(dict.fromkeys(m.text[:20] for m in written))
    assert phrase in options and len(scored) == len(options) > 1
    assert all(answers == [EDITED, OUT] for _, answers in scored)


FORTY = " ".join(f"w{i}" for i in range(40))


@pytest.mark.parametrize(
    ("phrase", "revision", "want"),
    [
        # a limit on the whole answer that the revision breaks goes, with its connector
        (
            "start with a one-line TL;DR; no more than 10 words",
            FORTY,
            "start with a one-line TL;DR",
        ),
        ("open with 'Dear team,' and at most 20 words", FORTY, "open with 'Dear team,'"),
        ("no more than 10 words, a formal greeting", FORTY, "a formal greeting"),
        ("30 words or fewer; casual tone", FORTY, "casual tone"),
        ("keep it under 25 words", FORTY, ""),
        ("bullet points; at most 3 sentences", "One. Two. Three. Four.", "bullet points"),
        # kept: the revision keeps the limit, or the limit is on a part of the answer
        ("start with a one-line TL;DR; no more than 10 words", "w " * 9, None),
        ("at most 40 words", FORTY, None),
        ("sentences of at most 12 words", FORTY, None),
        ("a title of at most 8 words; no emoji", FORTY, None),
        ("each bullet under 6 words", FORTY, None),
        ("at most 3 sentences", "One. Two. Three.", None),
        ("no emoji; formal tone", FORTY, None),
    ],
)
def test_a_limit_the_revision_breaks_is_dropped(
    phrase: str, revision: str, want: str | None
) -> None:
    assert without_broken_limits(phrase, revision) == (phrase if want is None else want)


def test_both_keeps_the_counted_changes_when_the_phrase_was_only_a_broken_limit(
    persona_home: Path,
) -> None:
    """With cipher_infer="both", the counted changes still stand when the model's phrase was
    nothing but a limit the revision breaks."""
    with open_layer(persona_home / "both", ["at most 10 words"], cipher_infer="both") as layer:
        long = "The council voted on Monday and the plan passed after a debate about the lanes."
        [pref] = layer.learn_from_edit("alice", NEWS, long, long.lower())
        assert "10 words" not in pref.text and "no capital letters" in pref.text


ANNOUNCEMENT = "Subject: Portal maintenance\nTL;DR: the portal is down on Saturday.\nPlan ahead."


@pytest.mark.parametrize(
    ("phrase", "revision", "want"),
    [
        # a literal opening or ending the revision's own first or last line does not have goes
        ("start with a one-line TL;DR", ANNOUNCEMENT, ""),
        ("open with a one-line TL;DR; no bold text", ANNOUNCEMENT, "no bold text"),
        (
            "begin with 'Dear [Name],' and end with 'Cheers'",
            "Hi all,\nsee you\nCheers",
            "end with 'Cheers'",
        ),
        (
            "close with a 'Best regards' line, formal tone",
            "Dear Ana,\nThanks.\nBest,\nLi",
            "formal tone",
        ),
        ("finish with a P.S. line", "Hello\nBye", ""),
        # a clause cut at ", and": checked, and the kept one loses its "and"
        ("open with 'Dear Sam', and end with a TL;DR", "Hi Sam\nok\nTL;DR: ok", "end with a TL;DR"),
        ("open with 'Hi', and end with a one-line TL;DR", "Hi Sam\nok :)", "open with 'Hi'"),
        # kept: the revision has it (any case, any punctuation), or nothing literal is named
        ("start with a one-line TL;DR", "tldr - the portal is down\nmore", None),
        ("start with a one-line 'Subject: Po' line", ANNOUNCEMENT, None),
        ("open with 'Dear ...', close with 'Best regards'", "Dear Ana,\nok\n\nBest regards,", None),
        ("end with 'Thanks!'", "Body text.\nThanks! See you", None),
        ("open with the client's name: 'Hi Ana'", "Hi Ana,\nsee you", None),  # an apostrophe
        ("start with a greeting; end with a question", ANNOUNCEMENT, None),
        ("use bullet points", ANNOUNCEMENT, None),
        ("start with a one-line TL;DR", "", None),  # an empty revision shows nothing
    ],
)
def test_an_opening_or_ending_the_revision_lacks_is_dropped(
    phrase: str, revision: str, want: str | None
) -> None:
    assert without_contradicted_ends(phrase, revision) == (phrase if want is None else want)


MEETING = "TL;DR: launch moved.\n- QA ends Friday\n- Ana owns the notes\nWe're set."


@pytest.mark.parametrize(
    ("phrase", "revision", "want"),
    [
        # a ban on what the revision has goes: the user wrote it
        ("open with a TL;DR line; no lists", MEETING, "open with a TL;DR line"),
        ("no lists or bold formatting", MEETING, ""),
        ("avoid bullet points, keep it short", MEETING, "keep it short"),
        ("formal tone; no contractions", MEETING, "formal tone"),
        ("don't use emojis", "See you there 🎉", ""),
        ("never use exclamation marks; friendly", "Great news! We won.", "friendly"),
        # a request for what the revision lacks goes: the user did not write it
        ("use a numbered list; formal tone", MEETING, "formal tone"),
        ("end with an emoji and use hashtags", "Done 🙂", "end with an emoji"),
        (
            "open with a list, end with a call to action",
            "Subject: Hi\nCome!",
            "end with a call to action",
        ),
        # kept: the revision agrees, the clause is about how many or where, or names no feature
        ("use bullet points; no emoji", MEETING, None),
        ("no numbered lists", MEETING, None),  # dashes are not numbers
        ("no contractions", "Ana's report is ready.", None),  # a possessive is not one
        ("at most one emoji", "Hi 🙂 🎉", None),
        ("no emoji except at the end", "Hi 🙂", None),
        ("no more than two exclamation marks", "Yes! Yes! Yes!", None),
        ("use fewer lists", MEETING, None),
        ("no greeting; open by thanking the reader", MEETING, None),
        ("end with a call to action", "", None),
    ],
)
def test_a_feature_the_revision_contradicts_is_dropped(
    phrase: str, revision: str, want: str | None
) -> None:
    assert without_contradicted_features(phrase, revision) == (phrase if want is None else want)


@pytest.mark.parametrize(
    ("phrase", "kept", "output", "revision", "why"),
    [
        # the user wrote 40 words: "no more than 10 words" is not their preference
        ("bullet points; no more than 10 words", "bullet points", "x y z", FORTY, "length limit"),
        # the user's revision starts "Subject: ...": "start with a TL;DR" is not theirs either
        (
            "start with a one-line TL;DR; no bold text",
            "no bold text",
            "TL;DR: down",
            ANNOUNCEMENT,
            "opening or ending",
        ),
        # the user wrote bullet points: "no lists" is not theirs
        ("open with a TL;DR line; no lists", "open with a TL;DR line", "x y z", MEETING, "bans"),
    ],
)
def test_inference_drops_what_the_revision_contradicts(
    persona_home: Path, phrase: str, kept: str, output: str, revision: str, why: str
) -> None:
    """The rest of the phrase is stored; a phrase that is nothing else stores nothing and
    loses nothing."""
    with open_layer(persona_home, [phrase]) as layer:
        [pref] = layer.learn_from_edit("alice", NEWS, output, revision)
        assert pref.text == kept
    dropped = phrase.replace(kept, "").strip("; ")
    with open_layer(persona_home / "only", [dropped]) as layer:
        before = snapshot(layer)
        with pytest.raises(LearningError, match=f"revision contradicts.*{why}"):
            layer.learn_from_edit("alice", NEWS, output, revision)
        assert snapshot(layer) == before


def test_inference_keeps_an_opening_the_users_revision_has(persona_home: Path) -> None:
    """Checked and kept: the revision's first line has the TL;DR."""
    with open_layer(persona_home / "kept", ["start with a one-line TL;DR"]) as layer:
        [pref] = layer.learn_from_edit("alice", NEWS, "The portal is down.", "TL;DR: down\nok")
        assert pref.text == "start with a one-line TL;DR"


@pytest.mark.parametrize(
    ("phrase", "shown"),
    [
        ("start with 'TL;DR; bullet points", ["start with 'TL;DR", "bullet points"]),
        ('start with "Subject:"', []),  # the revision's first line is the TL;DR
        ('end with "Best regards," and use emojis', ['end with "Best regards,"']),
        ("no emoji; short sentences; at most 50 words; a formal tone", []),
        ("at most one list", []),
    ],
)
def test_shown_clauses_are_those_the_revision_visibly_has(phrase: str, shown: list[str]) -> None:
    from persona.learn.cipher_text import shown_clauses

    revision = (
        "TL;DR: the vote passed.\n- Work starts in May.\n- Comments until Friday.\nBest regards,"
    )
    assert shown_clauses(phrase, revision) == shown


def test_an_edit_keeps_what_the_user_left_of_the_preference_applied(persona_home: Path) -> None:
    """The edit shows only what changed: bullets added to an answer that already opened with
    the wanted TL;DR are stored with the TL;DR kept, traced to the preference it came from;
    a clause the revision removed is not kept, and with cipher_keep_shown=False nothing is."""
    first = "The council voted for the lanes. Work starts in May."
    tldr = "TL;DR: lanes approved.\n" + first
    listed = "TL;DR: lanes approved.\n- The council voted for the lanes.\n- Work starts in May."
    for keep in (True, False):
        with open_layer(
            persona_home / str(keep), [], cipher_infer="facts", cipher_keep_shown=keep
        ) as layer:
            [opening] = layer.learn_from_edit("alice", NEWS, first, tldr)
            assert opening.text == 'start with "TL;DR:"'
            assert layer.condition("alice", NEWS2).summary == opening.text  # served, remembered
            [pref] = layer.learn_from_edit("alice", NEWS2, tldr, listed)
            bullets = "bullet points (lines starting with '-')"
            if keep:
                assert pref.text == f'{bullets}; start with "TL;DR:"'
                assert f"preference:{opening.id}" in pref.provenance
            else:
                assert pref.text == bullets and len(pref.provenance) == 1
            # the user took the TL;DR out: it is not kept
            dropped = layer.learn_from_edit("alice", NEWS2, tldr, first.replace(". ", ".\n- "))
            assert "TL;DR" not in dropped[0].text
    with pytest.raises(InvalidInputError, match="cipher_keep_shown"):
        open_layer(persona_home / "bad", [], cipher_keep_shown="yes")
