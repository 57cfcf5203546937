"""FSPO's personalized reward on a light model: a per-user Bradley–Terry scorer with a prior
meta-learned across users (Singh et al. 2025's "users as tasks"), no LLM at request time.

**Features.** A response is described by φ = [e(text), e(first line), e(last line), stats]:
the embedding of the whole answer, of how it opens and of how it closes (where greetings,
headers, sign-offs and final questions live), and a few generic surface statistics of a text
(:data:`STATS`: length, lines, list-marker lines, paragraphs, question and exclamation marks,
emoji, sentence length, capitals). The prompt is not a feature: in a linear Bradley–Terry model
any feature of the prompt alone cancels in φ(chosen) − φ(rejected), and prompt × response
interactions need far more than a user's 16 labels.

**Per user.** P(chosen ≻ rejected) = σ(w·(φ(chosen) − φ(rejected))), with a Gaussian prior
w ~ N(μ, Σ). The MAP weight lies in μ + Σ Dᵀα (D: the user's difference rows), so the fit is
Newton's method on α, n numbers for n shots, whatever the feature dimension: a few ms.

**The prior.** Σ = c·V diag(s) Vᵀ + τ²·I: a low-rank subspace of the directions in which
training users' preferences differ, plus an isotropic term so a preference outside that
subspace can still be learned from enough shots. :func:`fit_prior` meta-learns it from
training users (tasks): each user's weight is fitted on all their pairs; μ is their mean (or
zero), V and s the principal directions and variances of the weights around it; the rank, c,
τ² and whether μ transfers are chosen by few-shot accuracy on training users left out of the
estimate (cross-validation over users, never over the held-out users a benchmark reports).
Without a prior the same model uses N(0, I): a plain L2-regularized logistic fit. The mean
weight is kept apart as the non-personalized reward (:class:`BaselineScorer`).
"""

from __future__ import annotations

import base64
import json
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Protocol

import numpy as np

from persona.errors import InvalidInputError, PersonaError
from persona.store.embed import Embedder, embedder_id

PRIOR_FILE = "fspo_prior.json"
REFIT = "run `persona bench labels --fit-prior` to rebuild it (or pass prior=None)"


class Shot(Protocol):
    """One labeled pair; :class:`persona.types.Label` satisfies it."""

    @property
    def prompt(self) -> str: ...
    @property
    def chosen(self) -> str: ...
    @property
    def rejected(self) -> str: ...


class Scorer(Protocol):
    """A personalized reward: higher = this user (known by ``shots``) prefers it more."""

    name: str

    def score(
        self, shots: Sequence[Shot], prompt: str, responses: Sequence[str]
    ) -> list[float]: ...


# --------------------------------------------------------------------------- features

_MARKER_BULLET = re.compile(r"^\s*[-*•+]\s+")
_MARKER_NUMBER = re.compile(r"^\s*\d+[.)]\s+")
_SENT = re.compile(r"[.!?]+(?:\s|$)")
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2300-\u23ff\u2b00-\u2bff]")

#: Generic surface statistics of a text, in the order of :func:`text_stats`.
STATS = (
    "log_words",
    "log_lines",
    "log_paragraphs",
    "bullet_lines",
    "numbered_lines",
    "questions",
    "exclamations",
    "emoji",
    "sentence_words",
    "capitals",
    "words_per_line",
)


def text_stats(text: str) -> np.ndarray:
    """:data:`STATS` of ``text``, each scaled to vary by about one unit across answers."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    words = text.split()
    letters = [c for c in text if c.isalpha()]
    n_lines = max(len(lines), 1)
    sentences = max(len(_SENT.findall(text)), 1)
    return np.array(
        [
            np.log1p(len(words)) / 2,
            np.log1p(len(lines)),
            np.log1p(len([p for p in re.split(r"\n\s*\n", text) if p.strip()])),
            sum(bool(_MARKER_BULLET.match(ln)) for ln in lines) / n_lines,
            sum(bool(_MARKER_NUMBER.match(ln)) for ln in lines) / n_lines,
            np.log1p(text.count("?")),
            np.log1p(text.count("!")),
            np.log1p(len(_EMOJI.findall(text))),
            np.log1p(len(words) / sentences) / 2,
            10 * sum(c.isupper() for c in letters) / max(len(letters), 1),
            np.log1p(len(words) / n_lines) / 2,
        ],
        dtype=np.float64,
    )


class Featurizer:
    """φ(response): three embeddings and :data:`STATS`, with a bounded cache of embeddings
    (a user's shots are featurized again at every call)."""

    def __init__(self, embedder: Embedder, cache_size: int = 20_000) -> None:
        self.embedder = embedder
        self.dim = 3 * embedder.dim + len(STATS)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._size = cache_size

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vec in zip(missing, self.embedder.embed(missing), strict=True):
                self._cache[text] = np.asarray(vec, dtype=np.float64)
        out = np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0))
        for t in texts:
            self._cache.move_to_end(t)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return out

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim))
        lines = [[ln.strip() for ln in t.splitlines() if ln.strip()] or [t] for t in texts]
        vecs = self._embed([*texts, *(ln[0] for ln in lines), *(ln[-1] for ln in lines)])
        n = len(texts)
        stats = np.stack([text_stats(t) for t in texts])
        return np.hstack([vecs[:n], vecs[n : 2 * n], vecs[2 * n :], stats])

    def differences(self, shots: Sequence[Shot]) -> np.ndarray:
        if not shots:
            return np.zeros((0, self.dim))
        phi = self([*(s.chosen for s in shots), *(s.rejected for s in shots)])
        return phi[: len(shots)] - phi[len(shots) :]


# --------------------------------------------------------------------------- the prior


def _pack(a: np.ndarray, dtype: Any) -> str:
    return base64.b64encode(np.asarray(a, dtype=dtype).tobytes()).decode("ascii")


def _unpack(text: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).astype(np.float64).reshape(shape)


@dataclass(frozen=True)
class Prior:
    """w ~ N(mean, scale·basisᵀ diag(variances) basis + isotropic·I), meta-learned; and the
    population's average weight, the non-personalized reward."""

    embedder: str  # embedder_id the features were made with: a prior only fits its embedder
    mean: np.ndarray = field(repr=False)  # (F,) the prior mean (the population's, or 0)
    basis: np.ndarray = field(repr=False)  # (k, F) orthonormal rows; k may be 0
    variances: np.ndarray = field(repr=False)  # (k,)
    scale: float  # c: how far a user's weight strays along the basis
    isotropic: float  # τ²: room for preferences outside the basis
    population: np.ndarray = field(repr=False)  # (F,) training users' mean weight
    meta: dict[str, Any] = field(default_factory=dict, compare=False)  # how it was fitted

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def cov_times(self, x: np.ndarray) -> np.ndarray:
        """Σ @ x for x of shape (F, m), without forming Σ."""
        low = self.basis.T @ ((self.scale * self.variances)[:, None] * (self.basis @ x))
        return low + self.isotropic * x

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "embedder": self.embedder,
            "features": ["embedding", "first_line", "last_line", *STATS],
            "dim": self.dim,
            "rank": int(self.basis.shape[0]),
            "scale": self.scale,
            "isotropic": self.isotropic,
            "mean": _pack(self.mean, np.float32),
            "basis": _pack(self.basis, np.float16),
            "variances": _pack(self.variances, np.float32),
            "population": _pack(self.population, np.float32),
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prior:
        try:
            if data.get("version") != 1:
                raise ValueError(f"version {data.get('version')!r} is not 1")
            dim, k = int(data["dim"]), int(data["rank"])
            return cls(
                str(data["embedder"]),
                _unpack(data["mean"], np.float32, (dim,)),
                _unpack(data["basis"], np.float16, (k, dim)),
                _unpack(data["variances"], np.float32, (k,)),
                float(data["scale"]),
                float(data["isotropic"]),
                _unpack(data["population"], np.float32, (dim,)),
                dict(data.get("meta") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PersonaError(f"the FSPO prior is not a valid prior ({exc}); {REFIT}.") from exc


@cache
def load_prior() -> Prior:
    """The shipped prior (``persona/learn/corpus/fspo_prior.json``), read once."""
    path = resources.files("persona.learn").joinpath("corpus", PRIOR_FILE)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PersonaError(f"the FSPO prior {PRIOR_FILE} is missing; {REFIT}.") from exc
    except (OSError, ValueError) as exc:
        raise PersonaError(f"the FSPO prior {PRIOR_FILE} is unreadable ({exc}); {REFIT}.") from exc
    return Prior.from_json(data)


# --------------------------------------------------------------------------- fitting


def fit_map(diffs: np.ndarray, mean: np.ndarray, cov_times: Any, steps: int = 30) -> np.ndarray:
    """MAP weight of Bradley–Terry on ``diffs`` (n, F) under N(mean, Σ) (``cov_times(x)`` =
    Σ x). With w = mean + Σ Dᵀα the Newton step on α is (W K + I)⁻¹(α − σ(−z)), K = D Σ Dᵀ."""
    if not len(diffs):
        return np.array(mean, dtype=np.float64)
    sd = cov_times(diffs.T)  # (F, n) = Σ Dᵀ
    kmat = diffs @ sd
    z0 = diffs @ mean
    alpha = np.zeros(len(diffs))
    eye = np.eye(len(diffs))
    for _ in range(steps):
        z = z0 + kmat @ alpha
        s = 1.0 / (1.0 + np.exp(np.clip(z, -30, 30)))  # σ(−z)
        weight = s * (1 - s)
        step = np.linalg.solve(weight[:, None] * kmat + eye, alpha - s)
        alpha -= step
        if np.abs(step).max() < 1e-6:
            break
    return np.asarray(mean + sd @ alpha, dtype=np.float64)


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(
            f"{what} is {value!r}; pass non-empty text (a labeled pair needs both answers, "
            "a response to score needs its text)."
        )
    return value


def _check(shots: Sequence[Shot], prompt: str, responses: Sequence[str]) -> list[str]:
    _check_text(prompt, "prompt")
    if isinstance(responses, str):
        raise InvalidInputError(
            f"responses is a single string ({responses[:40]!r}); pass a list of responses."
        )
    for i, shot in enumerate(shots):
        _check_text(shot.chosen, f"shots[{i}].chosen")
        _check_text(shot.rejected, f"shots[{i}].rejected")
        if shot.chosen == shot.rejected:
            raise InvalidInputError(
                f"shots[{i}] has chosen == rejected ({shot.chosen[:40]!r}); a label needs two "
                "different answers: drop it."
            )
    return [_check_text(r, f"responses[{i}]") for i, r in enumerate(responses)]


class LearnedScorer:
    """Per-user Bradley–Terry on φ differences, MAP under the meta-learned prior (or N(0, I))."""

    def __init__(
        self,
        embedder: Embedder,
        prior: Prior | None = None,
        *,
        isotropic: float = 1.0,  # τ² without a prior: plain L2-regularized logistic fit
    ) -> None:
        self.featurizer = Featurizer(embedder)
        if prior is not None and prior.embedder != embedder_id(embedder):
            raise InvalidInputError(
                f"the FSPO prior was fitted with embedder {prior.embedder!r}, not "
                f"{embedder_id(embedder)!r}; use that embedder, or {REFIT}."
            )
        if prior is not None and prior.dim != self.featurizer.dim:
            raise InvalidInputError(
                f"the FSPO prior has {prior.dim} features, not {self.featurizer.dim}; {REFIT}."
            )
        self.prior = prior
        self.isotropic = isotropic
        self.name = "learned+prior" if prior is not None else "learned"

    def weights(self, shots: Sequence[Shot]) -> np.ndarray:
        """The user's MAP weight from ``shots`` (the prior's mean when there are none)."""
        diffs = self.featurizer.differences(shots)
        if self.prior is not None:
            return fit_map(diffs, self.prior.mean, self.prior.cov_times)
        return fit_map(diffs, np.zeros(self.featurizer.dim), lambda x: self.isotropic * x)

    def score_with(self, weights: np.ndarray, responses: Sequence[str]) -> list[float]:
        return [float(v) for v in self.featurizer(list(responses)) @ weights] if responses else []

    def score(self, shots: Sequence[Shot], prompt: str, responses: Sequence[str]) -> list[float]:
        texts = _check(shots, prompt, responses)
        return self.score_with(self.weights(shots), texts) if texts else []


class BaselineScorer(LearnedScorer):
    """Non-personalized: the training users' mean weight, what they prefer on average.
    The shots are ignored; on users whose preferences conflict it lands near chance."""

    def __init__(self, embedder: Embedder, prior: Prior) -> None:
        super().__init__(embedder, prior)
        self.name = "baseline"

    def weights(self, shots: Sequence[Shot]) -> np.ndarray:
        assert self.prior is not None
        return self.prior.population


class MeanDirectionScorer:
    """The mean of e(chosen) − e(rejected) over the shots; score = its dot with e(response).
    The simple reference the issue names (about 0.7 at 8 shots)."""

    name = "mean-direction"

    def __init__(self, embedder: Embedder) -> None:
        self.featurizer = Featurizer(embedder)

    def weights(self, shots: Sequence[Shot]) -> np.ndarray:
        dim = self.featurizer.embedder.dim
        if not shots:
            return np.zeros(dim)
        texts = [*(s.chosen for s in shots), *(s.rejected for s in shots)]
        vecs = self.featurizer._embed(texts)
        return np.asarray((vecs[: len(shots)] - vecs[len(shots) :]).mean(axis=0))

    def score_with(self, weights: np.ndarray, responses: Sequence[str]) -> list[float]:
        return [float(v) for v in self.featurizer._embed(list(responses)) @ weights]

    def score(self, shots: Sequence[Shot], prompt: str, responses: Sequence[str]) -> list[float]:
        texts = _check(shots, prompt, responses)
        return self.score_with(self.weights(shots), texts) if texts else []


# --------------------------------------------------------------------------- meta-learning


def _user_weights(diffs: Sequence[np.ndarray], dim: int) -> np.ndarray:
    """Each training user's weight from all their pairs, under N(0, I)."""
    zero = np.zeros(dim)
    return np.stack([fit_map(d, zero, lambda x: x) for d in diffs])


def _moments(weights: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, top-``rank`` principal directions and their variances of users' weights."""
    mean = weights.mean(axis=0)
    _, sing, vt = np.linalg.svd(weights - mean, full_matrices=False)
    rank = min(rank, len(sing))
    return mean, vt[:rank], sing[:rank] ** 2 / max(len(weights) - 1, 1)


def few_shot_accuracy(
    prior: Prior, diffs: Sequence[np.ndarray], shots: Sequence[int], seed: int = 0
) -> dict[int, float]:
    """Mean accuracy on each user's other pairs after learning from ``n`` of them (two random
    draws per user): the score by which the meta-learning chooses the hyperparameters."""
    rng = np.random.default_rng(seed)
    out: dict[int, float] = {}
    for n in shots:
        accs = []
        for d in diffs:
            if len(d) < n + 4:
                continue
            for _ in range(2):
                order = rng.permutation(len(d))
                w = fit_map(d[order[:n]], prior.mean, prior.cov_times)
                z = d[order[n:]] @ w
                accs.append(float(np.mean((z > 0) + 0.5 * (z == 0))))
        if accs:
            out[n] = float(np.mean(accs))
    return out


@dataclass(frozen=True)
class MetaConfig:
    """The hyperparameters :func:`fit_prior` chooses among, by cross-validation over users."""

    ranks: tuple[int, ...] = (0, 8, 16, 32)  # 0: no subspace, the isotropic term alone
    scales: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    isotropics: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0)
    # 1: users start from the population's mean weight; 0: from zero. The mean of a few dozen
    # users whose preferences conflict is mostly noise, so whether it transfers is chosen too.
    mean_weights: tuple[float, ...] = (0.0, 1.0)
    shots: tuple[int, ...] = (1, 2, 4, 8)  # the few-shot regimes the choice is scored on
    folds: int = 4
    seed: int = 0
    tolerance: float = 0.002  # mean accuracy within which candidates count as tied


def fit_prior_from_differences(
    diffs: Sequence[np.ndarray], embedder: str, config: MetaConfig = MetaConfig()
) -> Prior:
    """The prior from training users' difference rows (one (n_u, F) array per user).

    Each candidate (rank, scale, τ², mean weight) is scored by few-shot accuracy on the users
    of one fold with the moments estimated from the other folds' users; the chosen candidate's
    moments are then estimated from every training user.
    """
    folds = config.folds
    if len(diffs) < max(folds, 2) or any(not len(d) for d in diffs):
        raise InvalidInputError(
            f"fit_prior needs at least {max(folds, 2)} training users with labeled pairs each "
            f"(got {len(diffs)}, sizes {[len(d) for d in diffs]}); add users or pairs."
        )
    dim = int(diffs[0].shape[1])
    weights = _user_weights(diffs, dim)
    fold_of = np.random.default_rng(config.seed).permutation(len(diffs)) % folds
    moments = {
        (f, r): _moments(weights[fold_of != f], r) for f in range(folds) for r in config.ranks
    }
    candidates = {
        (rank, 1.0 if rank == 0 else scale, iso, m)
        for rank in config.ranks
        for scale in config.scales
        for iso in config.isotropics
        for m in config.mean_weights
    }
    grid: list[dict[str, Any]] = []
    for rank, scale, iso, m in sorted(candidates):
        accs: dict[int, list[float]] = {n: [] for n in config.shots}
        for f in range(folds):
            mean, basis, var = moments[(f, rank)]
            prior = Prior(embedder, m * mean, basis, var, scale, iso, mean)
            val = [d for d, g in zip(diffs, fold_of, strict=True) if g == f]
            for n, acc in few_shot_accuracy(prior, val, config.shots, config.seed).items():
                accs[n].append(acc)
        per_n = {str(n): round(float(np.mean(a)), 4) for n, a in accs.items() if a}
        params = {"rank": rank, "scale": scale, "isotropic": iso, "mean_weight": m}
        grid.append({**params, "cv_accuracy": per_n})

    # The simplest candidate (lowest rank, then no mean, smallest scale, largest τ²) among
    # those within `tolerance` of the best: many are tied within the noise of ~40 users.
    def mean_acc(g: dict[str, Any]) -> float:
        return float(np.mean(list(g["cv_accuracy"].values())))

    top = max(mean_acc(g) for g in grid)
    best = min(
        (g for g in grid if mean_acc(g) >= top - config.tolerance),
        key=lambda g: (g["rank"], g["mean_weight"], g["scale"], -g["isotropic"]),
    )
    plain = [g for g in grid if g["rank"] == 0 and g["mean_weight"] == 0 and g["isotropic"] == 1]
    mean, basis, variances = _moments(weights, best["rank"])
    meta = {
        "users": len(diffs),
        "pairs": int(sum(len(d) for d in diffs)),
        "folds": folds,
        "chosen": best,
        "no_prior_cv_accuracy": plain[0]["cv_accuracy"] if plain else None,
        "grid": grid,
    }
    m, scale, iso = best["mean_weight"], best["scale"], best["isotropic"]
    return Prior(embedder, m * mean, basis, variances, scale, iso, mean, meta)


def fit_prior(
    users: Sequence[Sequence[Shot]], embedder: Embedder, config: MetaConfig = MetaConfig()
) -> Prior:
    """Meta-learn the prior from training users, each a task given by their labeled pairs."""
    featurizer = Featurizer(embedder)
    diffs = [featurizer.differences(list(pairs)) for pairs in users]
    return fit_prior_from_differences(diffs, embedder_id(embedder), config)
