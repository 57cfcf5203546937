"""The edit benchmark's mechanics with fakes, and a short real run with the local model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from persona.agents.fakes import ScriptedChatModel
from persona.bench.edits import EditsConfig, run_edits, write_results
from persona.bench.env import latent_preferences
from persona.bench.learners import LEARNERS, make_learner
from persona.errors import InvalidInputError
from persona.learn.cipher_text import clauses
from persona.store.embed import HashEmbedder

AGENT_ANSWER = "The council approved the plan after a long debate on Monday night!"


def fake_run(tmp_path: Path, learners: list[str], rounds: int = 8, jobs: int = 0) -> dict:
    agent = ScriptedChatModel(responses=[AGENT_ANSWER])
    learner_llm = ScriptedChatModel(responses=["short sentences and a question at the end"])
    return run_edits(
        learners,
        agent=agent,
        learner_llm=learner_llm,
        user_llm=learner_llm,
        embedder=HashEmbedder(64),
        config=EditsConfig(
            task="summarization", rounds=rounds, seed=3, min_similarity=0.0, jobs=jobs
        ),
    )


def test_every_learner_runs_the_same_rounds(tmp_path: Path) -> None:
    doc = fake_run(tmp_path, list(LEARNERS))
    assert [r["learner"] for r in doc["results"]] == list(LEARNERS)
    assert len(doc["rounds_sources"]) == 8
    for res in doc["results"]:
        assert len(res["costs"]) == 8 and res["cumulative_cost"] == sum(res["costs"])
        assert res["wall_s"] >= 0 and set(res["tokens"]) >= {"agent_in", "agent_out"}
    by = {r["learner"]: r for r in doc["results"]}
    # the agent always answers the same text, so with no learning every round costs the same
    # for a source: the scripted user's edits are deterministic
    assert by["no-learning"]["preference_accuracy"] is None
    assert by["oracle"]["preference_accuracy"] == 1.0  # its description is the latent one
    assert by["cipher-5"]["retrieved_items"] > 0
    assert 0.0 <= by["cipher-5"]["retrieval_accuracy"] <= 1.0
    assert by["icl-edit-5"]["retrieved_items"] > 0
    assert by["cipher-5"]["tokens"]["learner_in"] > 0
    # per round: what conditioned the answer, and what CIPHER stored from the edit
    assert by["no-learning"]["descriptions"] == [None] * 8 and "learned" not in by["no-learning"]
    latents = latent_preferences("summarization")
    assert by["oracle"]["descriptions"] == [latents[s] for s in doc["rounds_sources"]]
    cipher = by["cipher-5"]
    assert len(cipher["descriptions"]) == len(cipher["learned"]) == 8
    assert cipher["descriptions"][0] is None  # nothing learned before the first round
    assert sum(d is not None for d in cipher["descriptions"]) == cipher["rounds_with_description"]
    assert any(cipher["learned"]) and all(t is None or t.strip() for t in cipher["learned"])
    assert doc["llm"] and doc["embedder"] == "hash:64"
    # each round's answer is kept, and a 12-word answer is not a short one
    assert by["no-learning"]["answers"] == [AGENT_ANSWER] * 8
    assert by["no-learning"]["short_answer_rate"] == 0.0
    comparisons = doc["comparisons"]
    assert set(comparisons) == {f"{n} vs no-learning" for n in LEARNERS[1:]} | {
        "cipher-5 vs icl-edit-5"
    }  # cipher-1 has no icl-edit-1 to compare with in this run
    vs = comparisons["oracle vs no-learning"]
    diff = [a - b for a, b in zip(by["oracle"]["costs"], by["no-learning"]["costs"], strict=True)]
    assert vs["mean_per_round"] == round(sum(diff) / len(diff), 3)
    assert vs["rounds_cheaper"] == sum(d < 0 for d in diff)
    by_source = by["cipher-5"]["mean_cost_by_source"]
    assert set(by_source) == set(doc["rounds_sources"])
    first = doc["rounds_sources"][0]
    pairs = zip(doc["rounds_sources"], by["cipher-5"]["costs"], strict=True)
    firsts = [c for s, c in pairs if s == first]
    assert by_source[first] == round(sum(firsts) / len(firsts), 2)


def short_answers_run(user: str) -> dict:
    agent = ScriptedChatModel(responses=["# # #\n\n# # #", AGENT_ANSWER, "# A title only"])
    doc = run_edits(
        ["no-learning"],
        agent=agent,
        learner_llm=agent,
        user_llm=agent,
        embedder=HashEmbedder(64),
        config=EditsConfig(task="email", rounds=3, seed=1, user=user),
    )
    (res,) = doc["results"]
    return res


def test_answers_that_say_almost_nothing_are_counted_and_rewritten() -> None:
    res = short_answers_run("scripted")
    assert res["answers"] == ["# # #\n\n# # #", AGENT_ANSWER, "# A title only"]
    assert res["short_answer_rate"] == pytest.approx(2 / 3)
    assert res["user_rewrote"] == 2  # the user wrote those two answers themselves
    lenient = short_answers_run("scripted-atoms-only")  # the user of the older tables
    assert "user_rewrote" not in lenient
    assert lenient["costs"][1] == res["costs"][1]  # a real answer costs the same with both
    for short in (0, 2):  # an empty answer costs what writing one costs, not less
        assert res["costs"][short] >= 25 and res["costs"][short] > lenient["costs"][short]


def test_learners_run_at_once_give_what_they_give_one_after_another(tmp_path: Path) -> None:
    def strip(doc: dict) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "wall_s"} for r in doc["results"]]

    together = fake_run(tmp_path, list(LEARNERS), rounds=6, jobs=0)
    in_turn = fake_run(tmp_path, list(LEARNERS), rounds=6, jobs=1)
    assert strip(together) == strip(in_turn)
    assert together["config"]["jobs"] == 0 and in_turn["config"]["jobs"] == 1


def test_negative_jobs_is_refused_before_any_round(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="jobs must be 0 .* got -2"):
        fake_run(tmp_path, ["no-learning"], rounds=1, jobs=-2)


def test_batched_upgrades_only_an_unbatched_local_model() -> None:
    from persona.agents.models import LocalChatModel
    from persona.bench.edits import batched

    local = LocalChatModel(model_dir="/nowhere")
    assert batched(local, 6).batch_size == 6  # type: ignore[attr-defined]
    assert local.batch_size == 1  # a copy; the caller's model is unchanged
    assert batched(local, 1) is local
    served = ScriptedChatModel(responses=["x"])
    assert batched(served, 6) is served


def test_results_are_written_as_json_and_png(tmp_path: Path) -> None:
    doc = fake_run(tmp_path, ["no-learning", "cipher-1"], rounds=3)
    paths = write_results(doc, tmp_path / "edits")
    assert [p.name for p in paths] == ["summarization.json", "summarization.png"]
    again = json.loads(paths[0].read_text())
    assert again["results"][1]["learner"] == "cipher-1"
    assert paths[1].stat().st_size > 1000


def test_cipher_aggregation_modes_are_learners(tmp_path: Path) -> None:
    doc = fake_run(tmp_path, ["cipher-5-list", "cipher-5-vote"], rounds=4)
    by = {r["learner"]: r for r in doc["results"]}
    # the scripted inference always names the same preference: the list and the vote agree
    assert by["cipher-5-vote"]["descriptions"][1:] == by["cipher-5-list"]["descriptions"][1:]
    assert by["cipher-5-vote"]["descriptions"][3] == "short sentences and a question at the end"
    assert by["cipher-5-vote"]["learned"] == ["short sentences and a question at the end"] * 4


def test_truth_learner_stores_each_round_s_true_preference(tmp_path: Path) -> None:
    doc = fake_run(tmp_path, ["cipher-5-vote+truth"], rounds=6)
    [res] = doc["results"]
    latents = latent_preferences("summarization")
    assert res["learned"] == [latents[s] for s in doc["rounds_sources"]]
    assert res["tokens"]["learner_in"] > 0  # inference still goes through the layer's CIPHER
    served = [d for d in res["descriptions"] if d]
    assert served and all(
        set(clauses(d)) <= set(clauses("; ".join(latents.values()))) for d in served
    )


def test_truth_learner_with_llm_aggregation_asks_the_llm_only_to_aggregate(
    tmp_path: Path,
) -> None:
    doc = fake_run(tmp_path, ["cipher-5+truth"], rounds=6)  # the LLM answers every call alike
    [res] = doc["results"]
    latents = latent_preferences("summarization")
    assert res["learned"] == [latents[s] for s in doc["rounds_sources"]]
    aggregated = [d for d in res["descriptions"] if d and d not in latents.values()]
    assert aggregated and set(aggregated) == {"short sentences and a question at the end"}


def test_background_aggregation_serves_the_llm_aggregate_once_a_set_comes_back(
    tmp_path: Path,
) -> None:
    doc = fake_run(tmp_path, ["cipher-5-background+truth"], rounds=12)
    [res] = doc["results"]
    latents = set(latent_preferences("summarization").values())
    aggregate = "short sentences and a question at the end"  # the fake LLM's every answer
    served = [d for d in res["descriptions"] if d]
    # each round: the vote of true preferences, or the LLM's aggregate of a set seen before
    assert all(
        d == aggregate or set(clauses(d)) <= set(clauses("; ".join(latents))) for d in served
    )
    by = res["aggregate_served"]
    assert by["aggregate"] + by["neighbour"] == served.count(aggregate) > 0
    assert served[0] != aggregate  # a new set is never waited for


@pytest.mark.parametrize("name", ["cipher-5-vote+oracle", "cipher-5-list+", "cipher-5+truth+"])
def test_only_truth_follows_a_plus(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInputError, match="cipher-5-vote\\+truth"):
        make_learner(
            name,
            llm=ScriptedChatModel(responses=["x"]),
            embedder=HashEmbedder(8),
            user=None,  # type: ignore[arg-type]
            home=str(tmp_path),
            min_similarity=0.0,
        )


def test_unknown_learner_and_user(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="unknown learner 'gpt'"):
        make_learner(
            "gpt",
            llm=ScriptedChatModel(responses=["x"]),
            embedder=HashEmbedder(8),
            user=None,  # type: ignore[arg-type]
            home=str(tmp_path),
            min_similarity=0.0,
        )
    with pytest.raises(InvalidInputError, match="scripted"):
        run_edits(
            ["no-learning"],
            agent=ScriptedChatModel(responses=["x"]),
            learner_llm=ScriptedChatModel(responses=["x"]),
            user_llm=ScriptedChatModel(responses=["x"]),
            embedder=HashEmbedder(8),
            config=EditsConfig(rounds=1, user="robot"),
        )


@pytest.mark.slow
def test_short_real_run_with_the_local_model_and_minilm(tmp_path: Path) -> None:
    from persona.agents.models import load_chat_model
    from persona.store.embed import MiniLMEmbedder

    llm = load_chat_model("local")
    doc = run_edits(
        ["no-learning", "cipher-5"],
        agent=llm,
        learner_llm=llm,
        user_llm=llm,
        embedder=MiniLMEmbedder(),
        config=EditsConfig(task="email", rounds=3, seed=1, max_tokens=48),
    )
    assert "SmolLM2-135M-Instruct" in doc["llm"]
    cipher = doc["results"][1]
    assert len(cipher["costs"]) == 3 and cipher["tokens"]["agent_out"] > 0
    assert set(latent_preferences("email")) >= set(doc["rounds_sources"])
    write_results(doc, tmp_path)


def test_corpus_same_source_measures_how_the_embedder_groups_sources() -> None:
    import numpy as np

    from persona.bench.edits import corpus_same_source
    from persona.bench.env import instruction, load_corpus

    corpus = load_corpus("email")
    names = sorted({c.source for c in corpus})
    source_of = {instruction(c): names.index(c.source) for c in corpus}

    class BySource:  # an embedder that sees the source perfectly
        dim = len(names)

        def embed(self, texts: list[str]) -> np.ndarray:
            return np.eye(self.dim, dtype=np.float32)[[source_of[t] for t in texts]]

    class Blind(BySource):  # one that sees nothing: a fixed order of ties, mixed sources
        def embed(self, texts: list[str]) -> np.ndarray:
            return np.ones((len(texts), 1), dtype=np.float32)

    assert corpus_same_source("email", BySource()) == 1.0
    assert corpus_same_source("email", Blind()) < 0.5
    assert 0.0 <= corpus_same_source("summarization", HashEmbedder(64)) <= 1.0


@pytest.mark.parametrize("name", ["cipher-5", "cipher-5-vote", "cipher-5-vote+truth", "adapter-4"])
def test_cipher_learners_take_the_edit_facts_choices(tmp_path: Path, name: str) -> None:
    for facts, infer, kept in ((False, "llm", False), (True, "facts", True), (False, "both", True)):
        learner = make_learner(
            name,
            llm=ScriptedChatModel(responses=["x"]),
            embedder=HashEmbedder(8),
            user=None,  # type: ignore[arg-type]
            home=str(tmp_path / f"{name}-{facts}-{infer}"),
            min_similarity=0.0,
            cipher_edit_facts=facts,
            cipher_infer=infer,
            cipher_keep_shown=kept,
        )
        layer = learner.layer  # type: ignore[attr-defined]
        try:
            assert layer.cipher.config.edit_facts is facts
            assert layer.cipher.config.infer == infer
            assert layer.cipher.config.keep_shown is kept
        finally:
            layer.close()
