"""``persona bench labels``: synthetic label users, the benchmark slice, best-of-n."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from persona.bench import labels as L
from persona.cli import app
from persona.errors import InvalidInputError
from persona.learn.fspo_scorer import Shot
from persona.store.embed import HashEmbedder

SMALL = L.LabelsConfig(users=8, heldout=3, train_pairs=6, shots=2, test_pairs=4, prompts=2)


@pytest.fixture(scope="module")
def users() -> list[L.LabelUser]:
    return L.make_users(SMALL)


def test_users_are_seeded_split_and_their_pairs_verified(users: list[L.LabelUser]) -> None:
    assert [u.split for u in users] == ["train"] * 5 + ["heldout"] * 3
    assert L.make_users(SMALL) == users  # seeded
    for user in users:
        assert 2 <= len(user.wants) <= 3
        for pair in (*user.shots, *user.test):
            assert user.satisfaction(pair.chosen) == 1.0  # chosen has every want
            assert user.satisfaction(pair.rejected) < 1.0  # rejected violates at least one
    train = [u for u in users if u.split == "train"]
    assert not any(u.novel for u in train)  # held-out values are never meta-trained on
    held = [u for u in users if u.split == "heldout"]
    assert all(len(u.shots) == 2 and len(u.test) == 4 and len(u.prompts) == 2 for u in held)
    train_prompts = {p.prompt for u in train for p in u.shots}
    held_prompts = {p.prompt for u in held for p in (*u.shots, *u.test)}
    assert not train_prompts & held_prompts  # held-out users label other documents


def test_preferences_conflict_across_users() -> None:
    users = L.make_users(L.LabelsConfig(users=60, heldout=10, train_pairs=1, shots=1, test_pairs=1))
    wanted = {(w.dimension, w.value) for u in users for w in u.wants}
    assert {("structure", "bullets"), ("structure", "single_paragraph")} <= wanted
    assert {("length", "max_words_50"), ("length", None)} <= wanted
    assert {("greeting", "formal"), ("greeting", "casual_greeting")} <= wanted


def test_asking_for_more_pairs_than_documents_says_so() -> None:
    with pytest.raises(InvalidInputError, match="test_pairs=900 is more than"):
        L.make_users(L.LabelsConfig(test_pairs=900))
    with pytest.raises(InvalidInputError, match="at least 1 held-out user"):
        L.make_users(L.LabelsConfig(users=4, heldout=0))


def test_a_want_of_none_means_no_atom_of_its_dimension() -> None:
    text = "Hey team,\n\n- first point\n- second point"
    assert L.Want("structure", "bullets").satisfied(text)
    assert not L.Want("greeting", None).satisfied(text)
    assert L.Want("header", None).satisfied(text)


class SlowJudge:
    """A scorer without the learned scorers' fast path: prefers the shorter answer."""

    name = "slow-judge"

    def __init__(self) -> None:
        self.calls = 0

    def score(self, shots: Sequence[Shot], prompt: str, responses: Sequence[str]) -> list[float]:
        self.calls += 1
        return [-float(len(r)) for r in responses]


def test_a_small_slice_runs_end_to_end(users: list[L.LabelUser], tmp_path: Path) -> None:
    judge, ticks = SlowJudge(), []
    emb = L.CachedEmbedder(HashEmbedder(dim=32))
    result = L.run_labels_bench(
        users,
        emb,
        shots=(1, 2),
        draws=2,
        extra_scorers=[judge],
        slow_users=2,
        slow_pairs=3,
        tick=ticks.append,
    )
    assert result["scorers"] == [
        "learned+prior",
        "learned",
        "mean-direction",
        "baseline",
        "slow-judge",
    ]
    for accs in result["accuracy"].values():
        assert set(accs) == {"1", "2"} and all(0.0 <= a <= 1.0 for a in accs.values())
    assert result["slow_scorer_subsets"]["slow-judge"] == {"users": 2, "pairs": 3, "draws": 1}
    assert judge.calls == 2 * 2 * 3  # users x N x pairs, one draw
    assert sum(ticks) == 5 * 3  # one per scorer and held-out user
    assert result["users"]["meta_train"] == 5 and result["users"]["held_out"] == 3
    assert result["prior"]["users"] == 5
    L.plot({**result, "embedder": "hash:32"}, str(tmp_path / "labels.png"))
    assert (tmp_path / "labels.png").stat().st_size > 1000
    with pytest.raises(InvalidInputError, match="raise LabelsConfig.shots"):
        L.run_labels_bench(users, emb, shots=(4,))


def test_the_command_writes_json_and_a_plot(tmp_path: Path) -> None:
    args = ["bench", "labels", "--embedder", "hash", "--users", "6", "--heldout", "2"]
    args += ["--shots", "1,2", "--test-pairs", "3", "--draws", "1", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "labels.json").read_text())
    assert data["benchmark"] == "labels" and data["embedder"] == "hash:384"
    assert data["command"].startswith("persona ") and "machine" in data
    assert set(data["accuracy"]) == {"learned+prior", "learned", "mean-direction", "baseline"}
    assert (tmp_path / "labels.png").exists()
    assert "N=2" in result.output


def test_fit_prior_writes_a_loadable_prior(tmp_path: Path) -> None:
    from persona.learn.fspo_scorer import Prior

    target = tmp_path / "prior.json"
    args = ["bench", "labels", "--fit-prior", "--embedder", "hash", "--users", "7", "--heldout"]
    args += ["2", "--prior-out", str(target), "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    prior = Prior.from_json(json.loads(target.read_text()))
    assert prior.embedder == "hash:384" and prior.meta["users"] == 5
    assert "meta-train" in prior.meta["data"]
    assert json.loads((tmp_path / "fspo-prior.json").read_text())["grid"]


def test_best_of_n_picks_what_the_scorer_prefers(users: list[L.LabelUser]) -> None:
    held = [u for u in users if u.split == "heldout"]
    asked: list[tuple[str, int]] = []

    def generate(prompt: str, n: int) -> list[str]:
        asked.append((prompt, n))
        user = next(u for u in held if prompt in u.prompts)
        good, bad = user.test[0].chosen, user.test[0].rejected
        return [bad, good, bad][:n]

    class Oracle:
        name = "oracle"

        def score(
            self, shots: Sequence[Shot], prompt: str, responses: Sequence[str]
        ) -> list[float]:
            user = next(u for u in held if prompt in u.prompts)
            return [user.satisfaction(r) for r in responses]

    result = L.best_of_n_satisfaction(users, generate, Oracle(), 3, shots=2)
    assert len(asked) == 2 * 3 and all(n == 3 for _, n in asked)
    assert result["prompts"] == 6 and result["picked"] == result["oracle"] == 1.0
    assert result["random"] < 1.0 and result["scorer"] == "oracle"
    with pytest.raises(InvalidInputError, match="n >= 1"):
        L.best_of_n_satisfaction(users, generate, Oracle(), 0)


def test_judge_adapter_is_checked_before_any_scoring(tmp_path: Path) -> None:
    args = ["bench", "labels", "--embedder", "hash", "--users", "6", "--heldout", "2"]
    args += ["--shots", "1", "--test-pairs", "3", "--out", str(tmp_path), "--llm-judge"]
    args += ["--llm", "fake:", "--judge-adapter", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "holds no adapter_config.json" in result.output
    (tmp_path / "adapter_config.json").write_text("{}")
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "needs the local model" in result.output
    assert not (tmp_path / "labels.json").exists()


def test_any_shot_list_draws_the_same_users_and_pairs(tmp_path: Path) -> None:
    """Runs with different --shots compare pair for pair (the LLM judge is measured in
    separate runs): the population does not depend on the list."""
    wants = []
    for i, shots in enumerate(("1,2", "4")):
        args = ["bench", "labels", "--embedder", "hash", "--users", "6", "--heldout", "2"]
        args += ["--shots", shots, "--test-pairs", "3", "--draws", "1"]
        result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / str(i))])
        assert result.exit_code == 0, result.output
        data = json.loads((tmp_path / str(i) / "labels.json").read_text())
        wants.append(data["users"]["held_out_wants"])
    assert wants[0] == wants[1]
