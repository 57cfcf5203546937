"""A user's adapter training data, assembled from all three signals, with a data version.

What each signal contributes (one preference pair = prompt, chosen ≻ rejected):

- an **edit** (CIPHER's signal): the context, the user's edited answer ≻ the model's answer
  (an edit that changes nothing teaches nothing and is left out);
- a **verbal feedback** with its C3PO dataset: each in-scope prompt, the model's revision ≻ its
  baseline; the near- and out-of-scope prompts with the model's own baseline answers as the
  two SFT constraint sets (C3PO's "keep behaviour elsewhere" terms);
- a **label** (FSPO's signal): the prompt, chosen ≻ rejected.

A user with no feedback still gets a constraint set: ``constraint_prompts`` requests from the
shipped general pool (seeded by the user), answered by the base model, so a DPO step on a few
edits cannot drift the model everywhere else.

Baseline and revised answers of C3PO rows come from the model being trained, so they are
filled in at training time (:func:`persona.adapters.c3po.fill_answers`). The **data version**
therefore hashes the signals, not the generated answers: the same edits, feedback datasets and
labels give the same version, and an adapter whose recorded version differs is stale.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from persona.store.base import Store

#: Bumped when the assembly below changes meaning, so every adapter becomes stale.
DATA_FORMAT = 1


@dataclass(frozen=True)
class Pair:
    """One preference pair; ``source`` names the event it came from (``edit:3``)."""

    prompt: str
    chosen: str
    rejected: str
    source: str
    split: str = "train"  # "train" | "test" (held out for the pair accuracy)

    def dpo_row(self) -> dict[str, Any]:
        """A conversational row as trl's DPO trainer takes it."""
        return {
            "prompt": [{"role": "user", "content": self.prompt}],
            "chosen": [{"role": "assistant", "content": self.chosen}],
            "rejected": [{"role": "assistant", "content": self.rejected}],
        }


@dataclass(frozen=True)
class UserData:
    """Everything one user's adapter is trained on (before answers are generated)."""

    user_id: str
    pairs: tuple[Pair, ...] = ()
    #: C3PO datasets of the user's feedback (``feedback:ID`` → dataset), answered at training.
    feedback: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: General requests whose base-model answers constrain the adapter (pool sample).
    constraint_prompts: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def signals(self) -> int:
        """Events that teach something: edits that changed the answer, feedback, labels."""
        return (
            self.counts.get("edits", 0)
            + self.counts.get("feedback", 0)
            + self.counts.get("labels", 0)
        )

    @property
    def version(self) -> str:
        """A hash of the signals (and of the assembly's format): equal data, equal version."""
        doc = {
            "format": DATA_FORMAT,
            "pairs": [[p.prompt, p.chosen, p.rejected, p.source, p.split] for p in self.pairs],
            "feedback": {
                key: {k: ds.get(k) for k in ("feedback", "in_scope", "near_scope", "out_of_scope")}
                for key, ds in sorted(self.feedback.items())
            },
            "constraints": list(self.constraint_prompts),
        }
        blob = json.dumps(doc, sort_keys=True, ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]


def _split(source: str, user_id: str, test_share: float) -> str:
    """A stable train/test split by the event's id (the same event always lands the same)."""
    digest = hashlib.sha256(f"{user_id}\x00{source}".encode()).digest()
    return "test" if digest[0] / 256 < test_share else "train"


def assemble(
    store: Store,
    user_id: str,
    *,
    test_share: float = 0.2,
    constraint_prompts: int = 8,
    out_of_scope_limit: int = 16,
) -> UserData:
    """The user's training data, read from ``store`` in one pass over its events."""
    pairs: list[Pair] = []
    edits = [e for e in store.list_edits(user_id) if e.edited.strip() != e.output.strip()]
    for e in edits:
        src = f"edit:{e.id}"
        pairs.append(Pair(e.context, e.edited, e.output, src, _split(src, user_id, test_share)))
    labels = store.list_labels(user_id)
    for lab in labels:
        src = f"label:{lab.id}"
        pairs.append(
            Pair(lab.prompt, lab.chosen, lab.rejected, src, _split(src, user_id, test_share))
        )
    feedback = {
        f"feedback:{fb.id}": for_adapter(fb.dataset, out_of_scope_limit)
        for fb in store.list_feedback(user_id)
        if fb.dataset
    }
    _keep_one_train(pairs)
    constraints: tuple[str, ...] = ()
    if constraint_prompts > 0:
        from persona.learn.c3po_data import load_pool

        pool = list(load_pool())
        rnd = random.Random(hashlib.sha256(user_id.encode("utf-8")).hexdigest())
        constraints = tuple(rnd.sample(pool, min(constraint_prompts, len(pool))))
    counts = {
        "edits": len(edits),
        "feedback": len(store.list_feedback(user_id)),
        "labels": len(labels),
        "pairs": len(pairs),
        "feedback_datasets": len(feedback),
    }
    return UserData(user_id, tuple(pairs), feedback, constraints, counts)


def for_adapter(dataset: dict[str, Any], out_of_scope_limit: int = 16) -> dict[str, Any]:
    """A feedback's C3PO dataset as the adapter trains on it: the user's own example
    requests join the in-scope (``user_in_scope``) and near-scope (``user_out_of_scope``)
    training prompts, and at most ``out_of_scope_limit`` pool requests are answered for the
    out-of-scope constraint (each costs a generation)."""
    out = dict(dataset)
    for key, extra in (("in_scope", "user_in_scope"), ("near_scope", "user_out_of_scope")):
        split = dict(dataset.get(key) or {})
        split.setdefault("test", [])
        split["train"] = list(dict.fromkeys([*split.get("train", []), *dataset.get(extra, [])]))
        out[key] = split
    pool = dict(dataset.get("out_of_scope") or {})
    pool["train"] = list(pool.get("train", []))[:out_of_scope_limit]
    pool.setdefault("test", [])
    out["out_of_scope"] = pool
    return out


def _keep_one_train(pairs: list[Pair]) -> None:
    """At least one pair trains: a user whose only pairs hashed to "test" would train on
    nothing, so the first of them moves to "train"."""
    if pairs and all(p.split == "test" for p in pairs):
        first = pairs[0]
        pairs[0] = Pair(first.prompt, first.chosen, first.rejected, first.source, "train")


def training_rows(
    data: UserData, answered: dict[str, dict[str, Any]], constraint_answers: Sequence[str]
) -> tuple[list[Pair], list[dict[str, str]], list[dict[str, str]]]:
    """(pairs, near-scope SFT rows, out-of-scope SFT rows) once answers are generated.

    ``answered`` maps each feedback key to its dataset with ``answers`` filled in;
    ``constraint_answers`` are the base model's answers to ``data.constraint_prompts``.
    """
    from persona.adapters.c3po import build_rows

    pairs = list(data.pairs)
    near: list[dict[str, str]] = []
    outside = [
        {"prompt": p, "answer": a}
        for p, a in zip(data.constraint_prompts, constraint_answers, strict=True)
        if a.strip()
    ]
    for key, dataset in sorted(answered.items()):
        for split in ("train", "test"):
            dpo, near_rows, out_rows, _ = build_rows(dataset, split)
            for row in dpo:
                pairs.append(
                    Pair(
                        row["prompt"][0]["content"],
                        row["chosen"][0]["content"],
                        row["rejected"][0]["content"],
                        key,
                        split,
                    )
                )
            if split == "train":
                near += near_rows
                outside += out_rows
    return pairs, near, outside
