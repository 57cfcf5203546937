"""PRELUDE's cost (word-level Levenshtein distance between answer and edit), and paired
comparisons of two learners' per-round costs on the same rounds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def edit_distance(a: str, b: str) -> int:
    """Insertions, deletions and substitutions of words (whitespace-split) turning ``a`` into ``b``.

    The common prefix and suffix are stripped, then the distance is computed with Hyyrö's
    bit-parallel form of Myers' algorithm on Python ints (one pass over the longer text, a few
    big-int operations per word): two unrelated 300-word texts take well under a millisecond,
    where the two-row dynamic programme takes tens of milliseconds in pure Python.
    """
    x, y = a.split(), b.split()
    start = 0
    while start < len(x) and start < len(y) and x[start] == y[start]:
        start += 1
    end_x, end_y = len(x), len(y)
    while end_x > start and end_y > start and x[end_x - 1] == y[end_y - 1]:
        end_x -= 1
        end_y -= 1
    x, y = x[start:end_x], y[start:end_y]
    if len(x) < len(y):
        x, y = y, x
    if not y:
        return len(x)
    # y (the shorter) is the pattern: bit i of peq[w] is set where y[i] == w.
    peq: dict[str, int] = {}
    for i, word in enumerate(y):
        peq[word] = peq.get(word, 0) | (1 << i)
    m = len(y)
    full = (1 << m) - 1
    top = 1 << (m - 1)
    pv, mv, score = full, 0, m  # vertical +1 / -1 deltas of the DP column; D[m][0] = m
    for word in x:
        eq = peq.get(word, 0)
        xv = eq | mv
        xh = ((((eq & pv) + pv) & full) ^ pv) | eq
        ph = (mv | ~(xh | pv)) & full
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & full  # | 1: row 0 of the DP grows by one per word (global)
        mh = (mh << 1) & full
        pv = (mh | ~(xv | ph)) & full
        mv = ph & xv
    return score


def paired_difference(
    costs: Sequence[int], baseline: Sequence[int], *, resamples: int = 4000, seed: int = 0
) -> dict[str, Any]:
    """How ``costs`` compare with ``baseline`` on the same rounds (a paired comparison).

    Returns the mean per-round difference (negative: fewer edits than the baseline), its 95%
    percentile-bootstrap interval over rounds, and how many rounds were cheaper / dearer. An
    interval that contains 0 means the run cannot tell the two apart.
    """
    import numpy as np

    if len(costs) != len(baseline):
        raise ValueError(f"paired costs differ in length: {len(costs)} vs {len(baseline)}")
    diff = np.asarray(costs, dtype=float) - np.asarray(baseline, dtype=float)
    if not len(diff):
        return {"mean_per_round": None, "ci95": None, "rounds_cheaper": 0, "rounds_dearer": 0}
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {
        "mean_per_round": round(float(diff.mean()), 3),
        "ci95": [round(float(low), 3), round(float(high), 3)],
        "rounds_cheaper": int((diff < 0).sum()),
        "rounds_dearer": int((diff > 0).sum()),
    }


def normal_interval(diffs: Sequence[float]) -> list[float]:
    """``[low, mean, high]``: the mean of per-round differences and its 95 % normal-theory
    interval (mean ± 1.96 standard errors), rounded to 2 places; what the session tables
    under ``benchmarks/follow`` report for paired rounds pooled over seeds."""
    n = len(diffs)
    if n < 2:
        raise ValueError(f"an interval needs at least 2 differences, got {n}")
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = 1.96 * sd / math.sqrt(n)
    return [round(mean - half, 2), round(mean, 2), round(mean + half, 2)]


def repeats(text: str, n: int = 6) -> bool:
    """True when some run of ``n`` words occurs twice in ``text``: the answer loops."""
    words = text.lower().split()
    seen: set[tuple[str, ...]] = set()
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        if gram in seen:
            return True
        seen.add(gram)
    return False


#: An answer with fewer words than this is too short to be a summary or an email.
SHORT_WORDS = 12


def content_words(text: str) -> int:
    """Words of ``text`` that hold a letter or a digit (markup such as ``#`` or ``-`` is not
    counted)."""
    return sum(any(ch.isalnum() for ch in word) for word in text.split())


def is_short(text: str) -> bool:
    """True for an answer under :data:`SHORT_WORDS` words: it costs few edits because it says
    almost nothing, so the edit cost alone would count it as a good answer."""
    return content_words(text) < SHORT_WORDS
