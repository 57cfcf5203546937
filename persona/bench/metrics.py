"""PRELUDE's cost: word-level Levenshtein distance between the answer and the user's edit."""

from __future__ import annotations


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
