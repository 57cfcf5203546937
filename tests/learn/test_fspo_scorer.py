"""FSPO's learned scorer: per-user Bradley–Terry with a meta-learned prior."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest

from persona.bench.labels import CachedEmbedder, Pair, Want, documents, make_pair
from persona.bench.text import EMOJI
from persona.errors import InvalidInputError, PersonaError
from persona.learn.fspo_scorer import (
    BaselineScorer,
    LearnedScorer,
    MeanDirectionScorer,
    MetaConfig,
    Prior,
    Scorer,
    few_shot_accuracy,
    fit_prior,
    fit_prior_from_differences,
    load_prior,
    text_stats,
)
from persona.store.embed import HashEmbedder, embedder_id, load_embedder
from persona.types import Label

SMALL = MetaConfig(ranks=(0, 2), scales=(1.0,), isotropics=(1.0,), shots=(1, 2), folds=2)


def accuracy(scorer: Scorer, shots: Sequence[Pair], test: Sequence[Pair]) -> float:
    wins = []
    for p in test:
        chosen, rejected = scorer.score(shots, p.prompt, [p.chosen, p.rejected])
        wins.append(1.0 if chosen > rejected else 0.5 if chosen == rejected else 0.0)
    return float(np.mean(wins))


def pairs_for(wants: tuple[Want, ...], n: int, seed: int) -> list[Pair]:
    import random

    rng = random.Random(seed)
    out: list[Pair] = []
    for doc in documents()[seed * 40 :]:
        pair = make_pair(doc, wants, rng)
        if pair is not None:
            out.append(pair)
        if len(out) == n:
            return out
    raise AssertionError("not enough pairs")


def mirrored(pairs: Sequence[Pair]) -> list[Pair]:
    return [Pair(p.prompt, p.rejected, p.chosen) for p in pairs]


# --------------------------------------------------------------------------- real features


@pytest.fixture(scope="module")
def minilm():  # type: ignore[no-untyped-def]
    return CachedEmbedder(load_embedder("minilm"))


@pytest.mark.slow
def test_learned_scorer_beats_chance_with_minilm(minilm) -> None:  # type: ignore[no-untyped-def]
    """Two users who want opposite things; 8 labels each are enough to rank new pairs."""
    wants = (Want("structure", "bullets"), Want("length", "max_words_50"))
    pairs = pairs_for(wants, 20, seed=0)
    minilm.prefetch([t for p in pairs for t in (p.chosen, p.rejected)])  # one batch
    users = {"bullets, short": pairs, "prose, long": mirrored(pairs)}
    for name, user in users.items():
        acc = accuracy(LearnedScorer(minilm), user[:8], user[8:])
        assert acc >= 0.9, (name, acc)
    scores = MeanDirectionScorer(minilm).score(pairs[:8], "p", [pairs[9].chosen, pairs[9].rejected])
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)


# --------------------------------------------------------------------------- the prior


def synthetic_users(
    n_users: int, n_pairs: int, seed: int, dim: int = 60, rank: int = 3
) -> list[np.ndarray]:
    """Users whose weights share a 3-d subspace; answers differ in every direction, loudly."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(np.random.default_rng(99).normal(size=(dim, rank)))[0].T
    users = []
    for _ in range(n_users):
        w = 3.0 * rng.normal(size=rank) @ basis
        d = rng.normal(size=(n_pairs, dim))
        users.append(d * np.sign(d @ w)[:, None])  # rows oriented chosen − rejected
    return users


def test_prior_helps_at_one_and_two_shots() -> None:
    train, new = synthetic_users(40, 24, seed=1), synthetic_users(20, 24, seed=2)
    cfg = MetaConfig(ranks=(0, 3, 6), scales=(1.0, 4.0), isotropics=(0.01, 0.1, 1.0), folds=4)
    prior = fit_prior_from_differences(train, "test:60", cfg)
    assert prior.meta["chosen"]["rank"] > 0  # the meta-learning found the shared subspace
    plain = Prior("test:60", np.zeros(60), np.zeros((0, 60)), np.zeros(0), 1.0, 1.0, np.zeros(60))
    with_prior = few_shot_accuracy(prior, new, (1, 2))
    without = few_shot_accuracy(plain, new, (1, 2))
    for n in (1, 2):
        assert with_prior[n] >= without[n] + 0.05, (n, with_prior, without)


def test_prior_round_trips_through_json() -> None:
    prior = fit_prior_from_differences(synthetic_users(8, 12, seed=3), "test:60", SMALL)
    back = Prior.from_json(json.loads(json.dumps(prior.to_json())))
    assert (back.embedder, back.scale, back.isotropic) == (
        prior.embedder,
        prior.scale,
        prior.isotropic,
    )
    assert back.meta["chosen"] == prior.meta["chosen"]
    np.testing.assert_allclose(back.mean, prior.mean, atol=1e-5)
    np.testing.assert_allclose(back.population, prior.population, atol=1e-5)
    np.testing.assert_allclose(back.basis, prior.basis, atol=2e-3)  # float16 on disk
    x = np.random.default_rng(0).normal(size=(60, 3))
    np.testing.assert_allclose(back.cov_times(x), prior.cov_times(x), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize(
    "data", [{}, {"version": 2}, {"version": 1, "dim": 4}, {"version": 1, "dim": "x", "rank": 0}]
)
def test_a_corrupt_prior_says_how_to_rebuild_it(data: dict[str, object]) -> None:
    with pytest.raises(PersonaError, match="--fit-prior"):
        Prior.from_json(data)


def test_the_shipped_prior_loads() -> None:
    prior = load_prior()
    assert prior.embedder == "all-MiniLM-L6-v2:384"
    assert prior.dim == 3 * 384 + len(text_stats("x"))
    assert prior.meta["users"] >= 20 and "held-out" in prior.meta["data"]


# --------------------------------------------------------------------------- on fake features


def test_baseline_is_at_chance_on_conflicting_users(embedder: HashEmbedder) -> None:
    """Half the users want bullets, half a paragraph: the average user prefers neither."""
    wants = (Want("structure", "bullets"), Want("case", "lowercase"))
    pairs = pairs_for(wants, 12, seed=1)
    users = [pairs, mirrored(pairs), pairs, mirrored(pairs)]
    prior = fit_prior(users, embedder, SMALL)
    baseline = BaselineScorer(embedder, prior)
    accs = [accuracy(baseline, u[:4], u[4:]) for u in users]
    assert abs(float(np.mean(accs)) - 0.5) < 0.1
    learned = LearnedScorer(embedder, prior)
    assert learned.name == "learned+prior" and LearnedScorer(embedder).name == "learned"
    assert all(accuracy(learned, u[:4], u[4:]) >= 0.75 for u in users)


def test_labels_from_the_store_are_shots(embedder: HashEmbedder) -> None:
    shots = [
        Label(1, "u", "Summarize.", "- one\n- two", "One. Two."),
        Label(2, "u", "Hi", "- a", "A."),
    ]
    scores = LearnedScorer(embedder).score(shots, "Summarize.", ["- x\n- y", "X. Y."])
    assert len(scores) == 2 and scores[0] > scores[1]
    assert LearnedScorer(embedder).score([], "Hi", ["a", "b"]) == [0.0, 0.0]  # no labels: no view


def test_bad_input_names_the_value_and_the_fix(embedder: HashEmbedder) -> None:
    scorer = LearnedScorer(embedder)
    shot = Label(1, "u", "p", "good", "bad")
    assert scorer.score([shot], "p", []) == []
    with pytest.raises(InvalidInputError, match=r"responses\[1\] is ''.*non-empty"):
        scorer.score([shot], "p", ["fine", ""])
    with pytest.raises(InvalidInputError, match="prompt is '  '"):
        scorer.score([shot], "  ", ["fine"])
    with pytest.raises(InvalidInputError, match=r"shots\[0\].chosen"):
        scorer.score([Label(1, "u", "p", "", "bad")], "p", ["fine"])
    with pytest.raises(InvalidInputError, match="chosen == rejected.*drop it"):
        scorer.score([Label(1, "u", "p", "same", "same")], "p", ["fine"])
    with pytest.raises(InvalidInputError, match="list of responses"):
        scorer.score([shot], "p", "a single string")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="fit_prior needs at least"):
        fit_prior([[shot]], embedder, SMALL)


def test_a_prior_only_fits_its_embedder(embedder: HashEmbedder) -> None:
    other = HashEmbedder(dim=32)
    wants = (Want("structure", "bullets"), Want("tag", None))
    pairs = pairs_for(wants, 6, seed=2)
    prior = fit_prior([pairs, mirrored(pairs)] * 2, other, SMALL)
    assert prior.embedder == embedder_id(other)
    with pytest.raises(InvalidInputError, match="fitted with embedder 'hash:32'.*--fit-prior"):
        LearnedScorer(embedder, prior)


def test_text_stats_are_generic() -> None:
    plain, listed = "One sentence. Another one!", "- one\n- two\n- three?"
    a, b = text_stats(plain), text_stats(listed)
    assert a.shape == b.shape and np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    assert b[3] == 1.0 and a[3] == 0.0  # share of bullet-marker lines
    assert EMOJI.search("🙂") and text_stats("ok 🙂")[7] > 0
