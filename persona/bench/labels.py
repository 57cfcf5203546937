"""``persona bench labels``: synthetic users who label pairs, and few-shot scorer accuracy.

A synthetic user's hidden preference is a few **wants** over style dimensions, each dimension
a set of executable :mod:`~persona.bench.atoms` that exclude one another (a list is bullets,
numbered or one paragraph; a greeting is formal, casual or absent, ...). A want names one value
of a dimension, and ``None`` is a value too ("no header", "full length"), so preferences
conflict across users: one wants bullets, another one paragraph; one wants it short, another
long. Values are drawn uniformly, so over many users every value is chosen and rejected
equally often and a scorer that ignores the user lands at chance (if not, the benchmark
leaks).

A labeled pair (FSPO's signal): a prompt built from a real document of the packaged corpora
(summarize it / write an email from notes); two **base answers**, each a contiguous span of
its sentences (real text, no LLM; two answers to one prompt differ in content too); the
**chosen** answer = one base with the user's wanted values applied, the **rejected** one = the
other base with the same values except a non-empty subset of the user's dimensions moved to
another value. Dimensions the user does not care about are **noise**: a random value applied
to both answers, so they vary across pairs but carry no signal. Every pair is verified with
the atoms' checkers (chosen satisfies every want, rejected violates at least one); a draw that
fails (atoms that do not compose on that text) is redrawn.

Splits, all seeded: users are meta-train or held-out; documents are split too (held-out users
label other documents); the values in :data:`HELD_OUT_VALUES` are never wanted by a meta-train
user, so accuracy on held-out users whose wants include one measures preferences the prior
never saw.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from persona.bench import atoms as A
from persona.errors import InvalidInputError
from persona.learn import prompts
from persona.learn.fspo_scorer import (
    BaselineScorer,
    LearnedScorer,
    MeanDirectionScorer,
    Prior,
    Scorer,
    fit_prior,
)
from persona.store.embed import Embedder

# --------------------------------------------------------------------------- preferences


@dataclass(frozen=True)
class Dimension:
    """A style dimension: its values are atom names (or ``None``: none of them holds)."""

    name: str
    values: tuple[str | None, ...]

    @property
    def atoms(self) -> tuple[str, ...]:
        return tuple(v for v in self.values if v is not None)


#: The style dimensions, in the order their atoms are applied (headers and structure before
#: the endings and the word limit, lowercase last), so that the atoms compose.
DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("greeting", ("formal", "casual_greeting", None)),
    Dimension("header", ("tldr", "title", None)),
    Dimension("structure", ("bullets", "numbered", "single_paragraph")),
    Dimension("sentences", ("short_sentences_10", None)),
    Dimension("ending", ("question_end", "call_to_action", "ends_with_emoji", None)),
    Dimension("tag", ("hashtag", None)),
    Dimension("length", ("max_words_50", None)),
    Dimension("case", ("lowercase", None)),
)
_DIMS = {d.name: d for d in DIMENSIONS}

#: Values no meta-train user wants (they still occur as noise): accuracy on held-out users who
#: want one of them is accuracy on preferences the meta-learned prior never saw.
HELD_OUT_VALUES: frozenset[tuple[str, str | None]] = frozenset(
    {("ending", "call_to_action"), ("header", "title")}
)


@dataclass(frozen=True)
class Want:
    """One dimension's wanted value."""

    dimension: str
    value: str | None

    def satisfied(self, text: str) -> bool:
        """The text has the wanted value: its atom holds (``None``: no atom of it holds)."""
        dim = _DIMS[self.dimension]
        if self.value is None:
            return not any(A.ATOMS[a].check(text) for a in dim.atoms)
        return A.ATOMS[self.value].check(text)

    def __str__(self) -> str:
        return f"{self.dimension}={self.value or 'none'}"


@dataclass(frozen=True)
class Pair:
    """One labeled pair: ``chosen`` ≻ ``rejected`` for ``prompt`` (a :class:`Shot`)."""

    prompt: str
    chosen: str
    rejected: str


@dataclass(frozen=True)
class LabelUser:
    """A synthetic user: hidden wants, labeled pairs to learn from, held-out pairs to test."""

    id: str
    wants: tuple[Want, ...]
    split: str  # "train" (meta-train) | "heldout"
    shots: tuple[Pair, ...]  # the pairs a scorer may learn from (the first N are used)
    test: tuple[Pair, ...]  # held-out pairs: accuracy is measured on these
    prompts: tuple[str, ...] = field(default=(), repr=False)  # unlabeled prompts (best-of-n)

    @property
    def novel(self) -> bool:
        """True when a want is one of :data:`HELD_OUT_VALUES` (unseen in meta-training)."""
        return any((w.dimension, w.value) in HELD_OUT_VALUES for w in self.wants)

    def satisfaction(self, text: str) -> float:
        """The fraction of this user's wants that ``text`` satisfies."""
        return sum(w.satisfied(text) for w in self.wants) / len(self.wants)


@dataclass(frozen=True)
class LabelsConfig:
    users: int = 64  # the issue asks for at least 50
    heldout: int = 24  # of them, never seen in meta-training
    wants: tuple[int, int] = (2, 3)  # dimensions a user cares about (min, max)
    train_pairs: int = 24  # pairs per meta-train user (the prior is fitted on them)
    shots: int = 16  # labeled pairs per held-out user (the largest N)
    test_pairs: int = 24  # held-out pairs per held-out user
    prompts: int = 4  # unlabeled prompts per held-out user (best-of-n)
    seed: int = 0
    # False: chosen and rejected answer the prompt with two different spans of the document,
    # so they differ in content as well as in style (as two sampled answers do). True: one
    # span, styled two ways (style differences only: an easier, cleaner signal).
    same_base: bool = False


# --------------------------------------------------------------------------- the documents

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")


@dataclass(frozen=True)
class Document:
    id: str
    kind: str  # "document" (summarize it) | "notes" (write an email from them)
    text: str

    @property
    def prompt(self) -> str:
        if self.kind == "notes":
            return prompts.EMAIL.format(notes=self.text)
        return prompts.SUMMARIZE.format(document=self.text)

    @property
    def sentences(self) -> list[str]:
        return [s.strip() for s in _SENTENCE.split(" ".join(self.text.split())) if s.strip()]


@cache
def documents() -> tuple[Document, ...]:
    """Every packaged document and set of notes (edit benchmark and follow corpora)."""
    docs: list[Document] = []
    for task in ("summarization", "email"):
        path = resources.files("persona.bench").joinpath("corpus", f"{task}.json")
        for row in json.loads(path.read_text(encoding="utf-8")):
            kind = "notes" if task == "email" else "document"
            docs.append(Document(row["id"], kind, row["text"]))
    path = resources.files("persona.follow").joinpath("corpus", "inputs.json")
    for row in json.loads(path.read_text(encoding="utf-8")):
        if row["kind"] in ("document", "notes"):
            docs.append(Document(row["id"], row["kind"], row["text"]))
    return tuple(d for d in docs if len(d.sentences) >= 4)


def base_answer(doc: Document, rng: random.Random) -> str:
    """A contiguous span of 3–5 of the document's sentences, at least 55 words when it can
    (so that a 50-word limit changes it): an extractive answer, real text."""
    sents = doc.sentences
    for _ in range(8):
        k = rng.randint(3, min(5, len(sents)))
        start = rng.randint(0, len(sents) - k)
        text = " ".join(sents[start : start + k])
        if len(text.split()) >= 55:
            break
    return text


# --------------------------------------------------------------------------- pairs


def render(base: str, values: dict[str, str | None]) -> str:
    """``base`` with each dimension's value applied, in :data:`DIMENSIONS` order."""
    wanted = [A.ATOMS[v] for d in DIMENSIONS if (v := values.get(d.name))]
    return A.apply_atoms(wanted, base)


def _holds(text: str, values: dict[str, str | None]) -> bool:
    return all(Want(d, v).satisfied(text) for d, v in values.items())


def make_pair(
    doc: Document,
    wants: Sequence[Want],
    rng: random.Random,
    tries: int = 20,
    same_base: bool = False,
) -> Pair | None:
    """One verified pair for ``wants`` on ``doc``, or None if the atoms do not compose on it.

    The two answers are two spans of the document (two answers to one prompt differ in
    content too), or with ``same_base`` the same span (they differ in style only)."""
    cared = {w.dimension: w.value for w in wants}
    for _ in range(tries):
        base = base_answer(doc, rng)
        other = base if same_base else base_answer(doc, rng)
        noise = {d.name: rng.choice(d.values) for d in DIMENSIONS if d.name not in cared}
        good = {**noise, **cared}
        flip = rng.sample(sorted(cared), rng.randint(1, len(cared)))
        bad = dict(good)
        for name in flip:
            bad[name] = rng.choice([v for v in _DIMS[name].values if v != cared[name]])
        chosen, rejected = render(base, good), render(other, bad)
        if chosen != rejected and _holds(chosen, good) and _holds(rejected, bad):
            return Pair(doc.prompt, chosen, rejected)
    return None


def _draw_wants(rng: random.Random, config: LabelsConfig, heldout: bool) -> tuple[Want, ...]:
    k = rng.randint(*config.wants)
    dims = rng.sample(DIMENSIONS, k)
    wants: list[Want] = []
    for d in dims:
        values = [v for v in d.values if heldout or (d.name, v) not in HELD_OUT_VALUES]
        wants.append(Want(d.name, rng.choice(values)))
    return tuple(sorted(wants, key=lambda w: [d.name for d in DIMENSIONS].index(w.dimension)))


def _pairs(
    wants: Sequence[Want],
    docs: Sequence[Document],
    n: int,
    rng: random.Random,
    same_base: bool = False,
) -> list[Pair] | None:
    """``n`` verified pairs on ``docs``; None when the wants do not compose (formal and
    lowercase, say), which shows as documents failing before any succeeds."""
    out: list[Pair] = []
    order = list(docs)
    rng.shuffle(order)
    failed = 0
    for doc in order * 3:  # each document at most three times (other spans, other noise)
        if len(out) == n:
            break
        pair = make_pair(doc, wants, rng, same_base=same_base)
        if pair is not None:
            out.append(pair)
        elif (failed := failed + 1) >= 5 and failed > len(out):
            return None
    return out if len(out) == n else None


def make_users(
    config: LabelsConfig = LabelsConfig(), tick: Callable[[int], None] | None = None
) -> list[LabelUser]:
    """``config.users`` seeded synthetic users; the last ``config.heldout`` are held out.

    Meta-train and held-out users label disjoint halves of the documents; a held-out user's
    shots, test pairs and unlabeled prompts come from disjoint documents too.
    """
    if config.heldout < 1 or config.users - config.heldout < 2:
        raise InvalidInputError(
            f"users={config.users}, heldout={config.heldout}: need at least 1 held-out user "
            "and 2 meta-train users; raise users or lower heldout."
        )
    rng = random.Random(config.seed)
    docs = list(documents())
    rng.shuffle(docs)
    half = len(docs) // 2
    train_docs, heldout_docs = docs[:half], docs[half:]
    cut = len(heldout_docs) * 2 // 5  # a held-out user's shots come from the first 2/5
    room = {"train_pairs": 3 * half, "shots": 3 * cut, "test_pairs": 3 * (len(docs) - half - cut)}
    for name, most in room.items():
        if getattr(config, name) > most:
            raise InvalidInputError(
                f"{name}={getattr(config, name)} is more than the documents give (at most "
                f"{most}: three pairs per document); lower it."
            )
    users: list[LabelUser] = []
    n_train = config.users - config.heldout
    for i in range(config.users):
        heldout = i >= n_train
        for _ in range(50):  # redraw a user whose wants do not compose
            wants = _draw_wants(rng, config, heldout)
            if not heldout:
                pairs = _pairs(wants, train_docs, config.train_pairs, rng, config.same_base)
                if pairs is not None:
                    user = LabelUser(f"train-{i:03d}", wants, "train", tuple(pairs), ())
                    break
                continue
            pool = list(heldout_docs)
            rng.shuffle(pool)
            shots = _pairs(wants, pool[:cut], config.shots, rng, config.same_base)
            test = _pairs(wants, pool[cut:], config.test_pairs, rng, config.same_base)
            if shots is not None and test is not None:
                unlabeled = tuple(d.prompt for d in pool[cut:][: config.prompts])
                user = LabelUser(
                    f"heldout-{i - n_train:03d}",
                    wants,
                    "heldout",
                    tuple(shots),
                    tuple(test),
                    unlabeled,
                )
                break
        else:  # pragma: no cover - most wants compose on most documents
            raise InvalidInputError(f"could not draw user {i} in 50 tries; change the seed.")
        users.append(user)
        if tick:
            tick(1)
    return users


# --------------------------------------------------------------------------- the benchmark


class CachedEmbedder:
    """An embedder with an unbounded text → vector cache, so that the scorers of a run share
    one embedding of each text (same ``name`` and ``dim``, hence the same embedder id)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.dim = inner, inner.dim
        self.name = getattr(inner, "name", type(inner).__name__)
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            self._cache.update(zip(missing, self.inner.embed(missing), strict=True))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

    def prefetch(self, texts: Sequence[str], tick: Callable[[int], None] | None = None) -> None:
        """Embed ``texts`` and their first and last lines (what the features use) in batches."""
        lines = [[ln.strip() for ln in t.splitlines() if ln.strip()] or [t] for t in texts]
        todo = dict.fromkeys([*texts, *(ln[0] for ln in lines), *(ln[-1] for ln in lines)])
        missing = [t for t in todo if t not in self._cache]
        for start in range(0, len(missing), 128):
            batch = missing[start : start + 128]
            self.embed(batch)
            if tick:
                tick(len(batch))


def texts_of(users: Sequence[LabelUser]) -> list[str]:
    """Every answer of ``users``' pairs, once."""
    pairs = [p for u in users for p in (*u.shots, *u.test)]
    return list(dict.fromkeys(t for p in pairs for t in (p.chosen, p.rejected)))


def accuracy(scorer: Scorer, shots: Sequence[Pair], test: Sequence[Pair]) -> float:
    """Share of ``test`` pairs whose chosen answer the scorer ranks first (a tie counts ½)."""
    fit = getattr(scorer, "weights", None)
    if fit is not None:  # the learned scorers: fit once, score every answer in one batch
        answers = [t for p in test for t in (p.chosen, p.rejected)]
        s = np.asarray(scorer.score_with(fit(shots), answers))  # type: ignore[attr-defined]
        z = s[0::2] - s[1::2]
    else:
        scores = [scorer.score(shots, p.prompt, [p.chosen, p.rejected]) for p in test]
        z = np.array([c - r for c, r in scores])
    return float(np.mean((z > 0) + 0.5 * (z == 0)))


def _draws(user: LabelUser, n: int, draws: int, rng: random.Random) -> list[list[Pair]]:
    """The first ``n`` shots, then ``draws - 1`` other random sets of ``n`` (one if n is all)."""
    out = [list(user.shots[:n])]
    if n < len(user.shots):
        out += [rng.sample(list(user.shots), n) for _ in range(draws - 1)]
    return out


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    se = float(arr.std(ddof=1) / np.sqrt(len(arr))) if len(arr) > 1 else 0.0
    return round(float(arr.mean()), 4), round(se, 4)


def run_labels_bench(
    users: Sequence[LabelUser],
    embedder: Embedder,
    *,
    shots: Sequence[int] = (1, 2, 4, 8, 16),
    draws: int = 3,
    prior: Prior | None = None,
    prior_source: str = "given",
    extra_scorers: Sequence[Scorer] = (),
    slow_users: int = 6,
    slow_pairs: int = 8,
    seed: int = 0,
    tick: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Held-out pair accuracy vs shots for each scorer, on the held-out users.

    Without ``prior``, the prior is meta-learned here from the meta-train users. A scorer
    without the learned scorers' ``weights`` (an LLM judge: two forward passes per answer)
    is measured on the first ``slow_users`` held-out users, ``slow_pairs`` test pairs each,
    one draw of shots. ``tick(k)``: k units of work done, one per held-out user and scorer.
    """
    train = [u for u in users if u.split == "train"]
    held = [u for u in users if u.split == "heldout"]
    if not held or any(n > len(u.shots) for u in held for n in shots):
        raise InvalidInputError(
            f"shots={list(shots)} needs held-out users with at least {max(shots)} labeled "
            f"pairs each ({len(held)} held-out users); raise LabelsConfig.shots or lower N."
        )
    timings: dict[str, float] = {}
    if prior is None:
        t0 = time.perf_counter()
        prior = fit_prior([u.shots for u in train], embedder)
        prior_source = f"meta-learned in this run from {len(train)} meta-train users"
        timings["prior_s"] = round(time.perf_counter() - t0, 2)
    scorers: list[Scorer] = [
        LearnedScorer(embedder, prior),
        LearnedScorer(embedder),
        MeanDirectionScorer(embedder),
        BaselineScorer(embedder, prior),
        *extra_scorers,
    ]
    # user id -> accuracy, per scorer and N (a slow scorer sees a subset: slow_users, slow_pairs)
    per_user: dict[str, dict[int, dict[str, float]]] = {}
    subsets: dict[str, dict[str, int]] = {}
    for scorer in scorers:
        t0 = time.perf_counter()
        rng = random.Random(seed)
        fast = hasattr(scorer, "weights")
        group = held if fast else held[:slow_users]
        if not fast:
            subsets[scorer.name] = {"users": len(group), "pairs": slow_pairs, "draws": 1}
        table = per_user[scorer.name] = {n: {} for n in shots}
        for user in group:
            test = user.test if fast else user.test[:slow_pairs]
            for n in shots:
                sets = _draws(user, n, draws if fast else 1, rng)
                table[n][user.id] = float(np.mean([accuracy(scorer, s, test) for s in sets]))
            if tick:
                tick(1)
        if tick and len(group) < len(held):
            tick(len(held) - len(group))
        timings[f"{scorer.name}_s"] = round(time.perf_counter() - t0, 2)
    novel = {u.id for u in held if u.novel}

    def summary(keep: Callable[[str], bool], stat: int = 0) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        for name, table in per_user.items():
            vals = {n: [a for uid, a in accs.items() if keep(uid)] for n, accs in table.items()}
            out[name] = {str(n): (_mean_se(v)[stat] if v else None) for n, v in vals.items()}
        return out

    return {
        "shots": list(shots),
        "draws": draws,
        "scorers": [s.name for s in scorers],
        "accuracy": summary(lambda uid: True),
        "stderr_over_users": summary(lambda uid: True, stat=1),
        "accuracy_users_with_seen_values": summary(lambda uid: uid not in novel),
        "accuracy_users_with_held_out_values": summary(lambda uid: uid in novel),
        "slow_scorer_subsets": subsets,
        "users": {
            "meta_train": len(train),
            "held_out": len(held),
            "held_out_with_held_out_values": len(novel),
            "held_out_values": sorted(f"{d}={v or 'none'}" for d, v in HELD_OUT_VALUES),
            "test_pairs_per_user": len(held[0].test),
            "held_out_wants": {u.id: [str(w) for w in u.wants] for u in held},
        },
        "prior": {
            "source": prior_source,
            "embedder": prior.embedder,
            **{k: v for k, v in prior.meta.items() if k != "grid"},
        },
        "per_user": {
            name: {str(n): {u: round(a, 4) for u, a in accs.items()} for n, accs in table.items()}
            for name, table in per_user.items()
        },
        "timings": timings,
    }


def plot(result: dict[str, Any], path: str) -> None:
    """Left: held-out pair accuracy vs shots per scorer (± standard error over users). Right:
    the learned scorers on held-out users whose wants were all seen in meta-training (solid)
    and on those who want a held-out value (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    shots, users = result["shots"], result["users"]
    for name, accs in result["accuracy"].items():
        se = [result["stderr_over_users"][name][str(n)] for n in shots]
        ys = [accs[str(n)] for n in shots]
        left.errorbar(shots, ys, yerr=se, marker="o", capsize=3, label=name)
    groups = (
        ("accuracy_users_with_seen_values", "-"),
        ("accuracy_users_with_held_out_values", "--"),
    )
    for k, name in enumerate(n for n in result["accuracy"] if n.startswith("learned")):
        for key, style in groups:
            ys = [result[key][name][str(n)] for n in shots]
            which = "seen values" if style == "-" else "a held-out value"
            right.plot(shots, ys, style, marker="o", color=f"C{k}", label=f"{name}, {which}")
    for ax in (left, right):
        ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log", base=2)
        ax.set_xticks(shots)
        ax.set_xticklabels([str(n) for n in shots])
        ax.set_ylim(0.3, 1.0)
        ax.set_xlabel("labeled pairs of the user (shots)")
        ax.legend(fontsize=8)
    left.set_ylabel("held-out pair accuracy")
    left.set_title(
        f"{users['held_out']} held-out users ({users['meta_train']} meta-train); "
        f"{result.get('embedder', '')}",
        fontsize=9,
    )
    right.set_title(
        f"users wanting a held-out value ({users['held_out_with_held_out_values']}: "
        f"{', '.join(users['held_out_values'])}) vs the others",
        fontsize=9,
    )
    fig.suptitle("persona bench labels", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def best_of_n_satisfaction(
    users: Sequence[LabelUser],
    generate: Callable[[str, int], list[str]],
    scorer: Scorer,
    n: int,
    *,
    shots: int = 8,
    tick: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Best-of-n: for each held-out user's unlabeled prompts, sample ``n`` answers with
    ``generate(prompt, n)``, keep the one ``scorer`` (given the user's first ``shots`` labels)
    ranks first, and measure the share of the user's wants it satisfies (the atoms'
    checkers), beside a random pick (the mean over the n answers) and the best possible."""
    if n < 1:
        raise InvalidInputError(f"n={n!r}: best-of-n needs n >= 1 answers per prompt.")
    picked, random_pick, oracle = [], [], []
    for user in (u for u in users if u.split == "heldout"):
        for prompt in user.prompts:
            answers = [a for a in generate(prompt, n) if a.strip()]
            if answers:
                scores = scorer.score(user.shots[:shots], prompt, answers)
                sat = [user.satisfaction(a) for a in answers]
                picked.append(sat[int(np.argmax(scores))])
                random_pick.append(float(np.mean(sat)))
                oracle.append(max(sat))
            if tick:
                tick(1)
    return {
        "n": n,
        "shots": shots,
        "scorer": scorer.name,
        "prompts": len(picked),
        "picked": round(float(np.mean(picked)), 4) if picked else None,
        "random": round(float(np.mean(random_pick)), 4) if picked else None,
        "oracle": round(float(np.mean(oracle)), 4) if picked else None,
    }
