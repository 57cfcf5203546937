"""Which requests to ask a user about, to sharpen one feedback's scope (active learning).

A feedback's scope model is least sure about requests whose probability sits near its
threshold; the user's answer on those moves the decision boundary most. On the development
feedbacks (half of each feedback's requests as the user's past requests, the other half held
out, no LLM, threshold 0.5), answering the 4 requests picked this way raised scope accuracy
from 0.773 to 0.816, where 4 picked at random gave 0.795; on the test feedbacks at 0.4, 0.785
to 0.831 against 0.812 (``persona bench feedback --questions 6``; README).

Near-duplicates are asked once: a request whose embedding is within :data:`SAME` cosine of
one already picked is skipped, so the questions cover different parts of the boundary. The
user's own requests (this chat's, edited, labeled) come before general ones while they are
unsure at all (within :data:`OWN_BAND` of the threshold): a person judges their own requests
at a glance, and those are the decisions they meet again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from persona.store.embed import Embedder, embedder_id

#: Cosine at or above which two candidate requests count as the same question.
SAME = 0.92
#: Most questions one call may ask.
MAX_QUESTIONS = 20
#: Longest candidate taken from the user's history (a pasted document is not a request one
#: can judge at a glance); requests given explicitly are never cut.
MAX_HISTORY_CHARS = 300
#: General requests from the shipped pool considered: those nearest the feedback's words.
POOL_CANDIDATES = 64
#: Distance from the threshold, on the logit scale, within which the user's own requests are
#: asked before general ones (1.5 around 0.4: probabilities from 0.13 to 0.75).
OWN_BAND = 1.5


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def pick_uncertain(
    probabilities: Sequence[float],
    vectors: np.ndarray,
    k: int,
    *,
    threshold: float,
    same: float = SAME,
    own: Sequence[bool] | None = None,
) -> list[int]:
    """Indices of up to ``k`` candidates, least certain first (nearest ``threshold`` on the
    logit scale), skipping near-duplicates of those already picked; ``own`` marks the user's
    own requests, which go first while within :data:`OWN_BAND` (with all or none marked,
    the order is by distance alone)."""
    if k <= 0 or not len(probabilities):
        return []
    probs = np.asarray(probabilities, dtype=np.float64)
    distance = np.abs(_logit(probs) - _logit(np.array([threshold]))[0])
    mine = np.zeros(len(probs), bool) if own is None else np.asarray(own, dtype=bool)
    later = ~(mine & (distance <= OWN_BAND))
    picked: list[int] = []
    for i in np.lexsort((distance, later)):
        if picked and float((vectors[picked] @ vectors[i]).max()) >= same:
            continue
        picked.append(int(i))
        if len(picked) == k:
            break
    return picked


def normalize(text: str) -> str:
    """The form under which two requests count as the same text."""
    return " ".join(text.lower().split())


def pool_vectors(embedder: Embedder, pool: Sequence[str], folder: Path | None) -> np.ndarray:
    """The pool's embeddings, kept in ``folder`` across processes (None: computed here).

    The file is named by the embedder and the pool's text, so a new embedder or pool never
    reads old vectors; it is written whole under a temporary name and then renamed, so a
    process killed mid-write leaves no partial file; one that cannot be read or written is
    recomputed, never an error (the cache only saves the ~15 s of a cold start).
    """
    if folder is None:
        return embedder.embed(list(pool))
    digest = hashlib.sha256("\n".join([embedder_id(embedder), *pool]).encode()).hexdigest()
    path = folder / f"pool-{digest[:20]}.npy"
    with contextlib.suppress(OSError, ValueError, EOFError):
        vecs = np.load(path, allow_pickle=False)
        if vecs.shape == (len(pool), embedder.dim) and np.isfinite(vecs).all():
            return vecs.astype(np.float32, copy=False)
    vecs = embedder.embed(list(pool))
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npy")
        np.save(tmp, vecs)
        os.replace(tmp, path)
    return vecs
