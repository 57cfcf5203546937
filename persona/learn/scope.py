"""C3PO's scope at prompt level: does a feedback apply to this request? No LLM at request time.

A :class:`ScopeModel` is fitted per feedback from its dataset (:mod:`persona.learn.c3po_data`):

- **anchors**: the feedback's own text and the phrases naming its scope ("emails to my boss");
- **positives**: in-scope prompts (generated, and the user's own ``in_scope`` examples);
- **negatives**: near-scope prompts (similar requests where it must not apply) and the user's
  ``out_of_scope`` examples;
- **pool**: general prompts from the shipped pool, C3PO's out-of-scope set.

A request is described by six cosine features against those sets (nearest anchor, nearest
positive, nearest negative, nearest pool prompt, the positive margin over the negatives and the
positive similarity standardized against the pool's own — the per-feedback calibration), and a
logistic combiner turns them into the probability that the feedback applies. The combiner's
weights are shared by every feedback: they were fitted on a development set of feedbacks that
the benchmark never uses (``persona bench feedback --fit-scope`` refits them) — users as tasks,
so a new feedback is served well from its own few examples.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from persona.store.embed import Embedder

#: Feature names, in the order of :data:`WEIGHTS`.
FEATURES = ("anchor", "positive", "negative", "pool", "margin", "z")

#: The shared logistic combiner (bias last), fitted on the development feedbacks with MiniLM.
WEIGHTS = (3.0, 6.0, -4.0, -2.0, 4.0, 0.6, -4.0)

#: Probability at or above which the feedback applies.
THRESHOLD = 0.5


def _pack(matrix: np.ndarray) -> str:
    return base64.b64encode(np.asarray(matrix, dtype=np.float16).tobytes()).decode("ascii")


def _unpack(text: str, dim: int) -> np.ndarray:
    flat = np.frombuffer(base64.b64decode(text), dtype=np.float16).astype(np.float32)
    return flat.reshape(-1, dim)


def _nearest(query: np.ndarray, matrix: np.ndarray) -> tuple[float, int]:
    if not len(matrix):
        return 0.0, -1
    sims = matrix @ query
    i = int(np.argmax(sims))
    return float(sims[i]), i


@dataclass(frozen=True)
class Decision:
    """The scope model's answer for one request."""

    applies: bool
    probability: float
    reason: str  # for people: the nearest example on each side


@dataclass
class ScopeModel:
    """One feedback's scope: the embedded sets and the pool's calibration."""

    anchors: list[str]
    positives: list[str]
    negatives: list[str]
    embedder: str
    anchor_vecs: np.ndarray
    positive_vecs: np.ndarray
    negative_vecs: np.ndarray
    pool_vecs: np.ndarray
    pool_mean: float
    pool_std: float
    weights: tuple[float, ...] = WEIGHTS
    threshold: float = THRESHOLD

    # -- fitting ----------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        embedder: Embedder,
        embedder_name: str,
        *,
        anchors: Sequence[str],
        positives: Sequence[str],
        negatives: Sequence[str],
        pool: Sequence[str],
    ) -> ScopeModel:
        """Embed the sets (one batch) and calibrate against the pool."""
        anchors, positives, negatives = list(anchors), list(positives), list(negatives)
        texts = [*anchors, *positives, *negatives, *pool]
        vecs = embedder.embed(texts) if texts else np.zeros((0, embedder.dim), np.float32)
        a, p, n = len(anchors), len(positives), len(negatives)
        anchor_vecs, positive_vecs = vecs[:a], vecs[a : a + p]
        negative_vecs, pool_vecs = vecs[a + p : a + p + n], vecs[a + p + n :]
        # How similar general prompts are to this feedback's positives: the per-feedback scale
        # on which a request's own similarity is read (a broad scope sits higher).
        both = np.concatenate([anchor_vecs, positive_vecs]) if p else anchor_vecs
        if len(pool_vecs) and len(both):
            pool_sims = (pool_vecs @ both.T).max(axis=1)
            mean, std = float(pool_sims.mean()), float(max(pool_sims.std(), 0.02))
        else:
            mean, std = 0.0, 0.1
        return cls(
            anchors,
            positives,
            negatives,
            embedder_name,
            anchor_vecs,
            positive_vecs,
            negative_vecs,
            pool_vecs,
            mean,
            std,
        )

    # -- deciding ---------------------------------------------------------------------------
    def features(self, query: np.ndarray) -> np.ndarray:
        """The six features of one request (see :data:`FEATURES`)."""
        anchor, _ = _nearest(query, self.anchor_vecs)
        pos, _ = _nearest(query, np.concatenate([self.anchor_vecs, self.positive_vecs]))
        neg, _ = _nearest(query, self.negative_vecs) if len(self.negative_vecs) else (0.0, -1)
        pool, _ = _nearest(query, self.pool_vecs)
        hard = max(neg, pool)
        return np.array(
            [anchor, pos, neg, pool, pos - hard, (pos - self.pool_mean) / self.pool_std],
            dtype=np.float64,
        )

    def probability(self, query: np.ndarray) -> float:
        w = np.asarray(self.weights, dtype=np.float64)
        logit = float(self.features(query) @ w[:-1] + w[-1])
        return float(1.0 / (1.0 + np.exp(-np.clip(logit, -30, 30))))

    def decide(self, query: np.ndarray) -> Decision:
        prob = self.probability(query)
        applies = prob >= self.threshold
        all_pos = [*self.anchors, *self.positives]
        pos, i = _nearest(query, np.concatenate([self.anchor_vecs, self.positive_vecs]))
        neg, j = _nearest(query, self.negative_vecs)
        parts = [f"nearest in-scope example {all_pos[i]!r:.70} ({pos:.2f})"] if i >= 0 else []
        if j >= 0:
            parts.append(f"nearest out-of-scope example {self.negatives[j]!r:.70} ({neg:.2f})")
        verdict = "in scope" if applies else "out of scope"
        reason = f"{verdict} (p={prob:.2f}, applies at >= {self.threshold:.2f}): " + "; ".join(
            parts
        )
        return Decision(applies, prob, reason)

    # -- storage ----------------------------------------------------------------------------
    def to_json(self) -> dict[str, object]:
        return {
            "version": 1,
            "embedder": self.embedder,
            "dim": int(self.anchor_vecs.shape[1]) if self.anchor_vecs.ndim == 2 else 0,
            "anchors": self.anchors,
            "positives": self.positives,
            "negatives": self.negatives,
            "anchor_vecs": _pack(self.anchor_vecs),
            "positive_vecs": _pack(self.positive_vecs),
            "negative_vecs": _pack(self.negative_vecs),
            "pool_vecs": _pack(self.pool_vecs),
            "pool_mean": self.pool_mean,
            "pool_std": self.pool_std,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ScopeModel:
        dim = int(data["dim"])  # type: ignore[call-overload]
        return cls(
            list(data["anchors"]),  # type: ignore[call-overload]
            list(data["positives"]),  # type: ignore[call-overload]
            list(data["negatives"]),  # type: ignore[call-overload]
            str(data["embedder"]),
            _unpack(str(data["anchor_vecs"]), dim),
            _unpack(str(data["positive_vecs"]), dim),
            _unpack(str(data["negative_vecs"]), dim),
            _unpack(str(data["pool_vecs"]), dim),
            float(data["pool_mean"]),  # type: ignore[arg-type]
            float(data["pool_std"]),  # type: ignore[arg-type]
        )


def fit_weights(
    features: np.ndarray, labels: np.ndarray, *, l2: float = 0.01, steps: int = 200
) -> tuple[float, ...]:
    """The shared combiner: L2-regularized logistic regression by Newton's method."""
    x = np.hstack([features, np.ones((len(features), 1))])
    y = labels.astype(np.float64)
    w = np.zeros(x.shape[1])
    reg = l2 * np.eye(x.shape[1])
    reg[-1, -1] = 0.0  # the bias is not shrunk
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) / len(y) + reg @ w
        hess = (x.T * (p * (1 - p))) @ x / len(y) + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return tuple(round(float(v), 4) for v in w)
