"""Mixed operations on one layer, with the ledger of what each call acknowledged.

Used by the load tests (threads in one process, and worker processes on one directory) and by
the crash tests (a writer killed with SIGKILL). Every preference text is unique, so the store
can be compared with the ledger row by row: lost (acknowledged, absent), phantom (present,
never acknowledged) and duplicated writes are counted exactly.
"""

from __future__ import annotations

import json
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

from langchain_core.language_models.fake_chat_models import FakeListChatModel

from persona import PreferenceLayer
from persona.errors import NotFoundError
from persona.store.embed import HashEmbedder

USERS = ("alice", "bob", "carol", "dave")
CONTEXTS = (
    "Write an email to my boss about the budget",
    "Summarize this paper on protein folding",
    "Plan a weekend hike in the Alps",
    "Draft a birthday message for my sister",
    "Explain how interest rates work",
)


#: The PostgreSQL URL the worker processes open (unset: SQLite in their home directory).
DB_ENV = "PERSONA_RELIABILITY_DB"


def open_layer(home: str | Path, db: str | None = None, **options: object) -> PreferenceLayer:
    """The layer on ``home`` (SQLite), or on the PostgreSQL database ``db`` with ``home`` as
    this process's PERSONA_HOME (its FAISS cache files)."""
    if db:
        os.environ["PERSONA_HOME"] = str(home)
    return PreferenceLayer.open(
        db or home,
        llm=FakeListChatModel(responses=["short sentences", "bullet points"]),
        embedder=HashEmbedder(dim=64),
        **options,  # type: ignore[arg-type]
    )


@dataclass
class Ledger:
    """What one worker was told succeeded: texts added (per user) and texts deleted."""

    added: dict[str, list[str]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    operations: int = 0
    problems: list[str] = field(default_factory=list)  # duplicates or foreign rows seen
    # (user, feedback id, request) added in scope of a feedback every worker edits
    examples: list[tuple[str, int, str]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(
            {
                "added": self.added,
                "deleted": sorted(self.deleted),
                "operations": self.operations,
                "problems": self.problems,
                "examples": self.examples,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Ledger:
        data = json.loads(text)
        return cls(
            data["added"],
            set(data["deleted"]),
            data["operations"],
            data["problems"],
            [(str(u), int(f), str(e)) for u, f, e in data["examples"]],
        )


def run(layer: PreferenceLayer, tag: str, n: int, seed: int, ack: object = None) -> Ledger:
    """``n`` mixed operations; texts are ``"<tag> <i>"`` so every write is unique.

    ``ack``, when given, is called with one line per acknowledged write (the crash test reads
    them from the killed process's stdout).
    """
    rnd = random.Random(seed)
    ledger = Ledger()
    mine: dict[str, list[int]] = {}  # ids this worker added and has not deleted
    texts: dict[int, str] = {}
    scoped: dict[str, list[int]] = {}  # ids of the feedback preferences this worker added
    for i in range(n):
        user = rnd.choice(USERS)
        op = rnd.random()
        text = f"{tag} {i}"
        if op < 0.25:
            ctx = rnd.choice(CONTEXTS) + f" ({i})" if rnd.random() < 0.7 else None
            pref = layer.add_preference(user, text, context=ctx)
        elif op < 0.35:
            pref = layer.learn_from_feedback(user, text, in_scope=[rnd.choice(CONTEXTS)])
            scoped.setdefault(user, []).append(pref.id)
        elif op < 0.40:
            layer.learn_from_labels(user, rnd.choice(CONTEXTS), f"good {text}", f"bad {text}")
            pref = None
        elif op < 0.50 and mine.get(user):
            pid = mine[user].pop(rnd.randrange(len(mine[user])))
            # Announced first: a kill between the commit and the ack leaves either state valid.
            _ack(ack, f"DELETING {user} {texts[pid]}")
            layer.delete_preference(user, pid)
            ledger.deleted.add(texts[pid])
            _ack(ack, f"DEL {user} {texts[pid]}")
            pref = None
        elif op < 0.55 and mine.get(user):
            pid = rnd.choice(mine[user])
            layer.update_preference(user, pid, enabled=rnd.random() < 0.5)
            pref = None
        elif op < 0.58 and set(scoped.get(user, ())) & set(mine.get(user, ())):
            # ask where one of my feedbacks applies, and answer the first question
            pid = rnd.choice(sorted(set(scoped[user]) & set(mine[user])))
            offered = [c + f" ({i})" for c in rnd.sample(CONTEXTS, 3)]
            lately = [rnd.choice(CONTEXTS) + f" (recent {i})"]  # this chat's, say
            asked = layer.scope_questions(user, pid, candidates=offered, k=2, recent=lately)
            if any(q.request not in offered + lately for q in asked):
                ledger.problems.append(f"scope question outside the candidates: {asked}")
            if asked:
                layer.edit_scope(user, pid, add_in_scope=[asked[0].request])
            pref = None
        elif op < 0.60:
            # every worker widens the same feedback of the user: no edit may undo another's
            fid, pid = _shared_feedback(layer, user)
            example = f"{tag} example {i}"
            layer.edit_scope(user, pid, add_in_scope=[example])
            ledger.examples.append((user, fid, example))
            pref = None
        elif op < 0.62:
            try:
                for p in layer.preferences(user):
                    if p.user_id != user:
                        ledger.problems.append(f"foreign row {p.id} in {user}'s list")
            except NotFoundError:
                pass
            pref = None
        else:
            cond = layer.condition(user, rnd.choice(CONTEXTS) + f" ({i})")
            ids = [p.id for p in cond.preferences]
            if len(ids) != len(set(ids)):
                ledger.problems.append(f"duplicate ids {ids}")
            pref = None
        if pref is not None:
            ledger.added.setdefault(user, []).append(text)
            mine.setdefault(user, []).append(pref.id)
            texts[pref.id] = text
            _ack(ack, f"ADD {user} {text}")
        ledger.operations += 1
    return ledger


def _shared_feedback(layer: PreferenceLayer, user: str) -> tuple[int, int]:
    """(feedback id, preference id) of the feedback all workers edit (the first learned, if
    two workers learned it at once); its text starts with no worker's tag."""
    text = f"shared scope of {user}"
    if not any(f.text == text for f in layer.store.list_feedback(user)):
        layer.learn_from_feedback(user, text)
    fid = min(f.id for f in layer.store.list_feedback(user) if f.text == text)
    [pid] = [p.id for p in layer.preferences(user) if f"feedback:{fid}" in p.provenance]
    return fid, pid


def _ack(ack: object, line: str) -> None:
    if callable(ack):
        ack(line)


def check(layer: PreferenceLayer, ledgers: list[Ledger], tags: list[str]) -> dict[str, int]:
    """Compare the store with the ledgers: lost, phantom and duplicated writes; SQL vs FAISS."""
    present: dict[str, list[str]] = {}
    for user in layer.users():
        for p in layer.preferences(user):
            if p.user_id != user:
                raise AssertionError(f"row {p.id} of {p.user_id!r} listed for {user!r}")
            if any(p.text.startswith(f"{tag} ") for tag in tags):
                present.setdefault(user, []).append(p.text)
    expected = {
        (user, text)
        for ledger in ledgers
        for user, added in ledger.added.items()
        for text in added
        if text not in ledger.deleted
    }
    got = [(user, text) for user, texts in present.items() for text in texts]
    mismatched = 0
    for user in layer.users():
        _, sql_ids = layer.store.vector_ids(user)
        if layer.index.ids(user).tolist() != sql_ids.tolist():
            mismatched += 1
    lost_examples = sum(
        1
        for ledger in ledgers
        for user, fid, example in ledger.examples
        if example not in layer.store.get_feedback(user, fid).in_scope
    )
    return {
        "lost": len(expected - set(got)) + lost_examples,
        "phantom": len(set(got) - expected),
        "duplicated": len(got) - len(set(got)),
        "index_mismatches": mismatched,
        "problems": sum(len(ledger.problems) for ledger in ledgers),
    }


def main() -> None:
    """``python workload.py HOME TAG N SEED [ack]``: one worker process."""
    home, tag, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    acking = len(sys.argv) > 5 and sys.argv[5] == "ack"
    # small LRU: evictions write cache files often
    layer = open_layer(home, os.environ.get(DB_ENV), index_capacity=2)

    def ack(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    ledger = run(layer, tag, n, seed, ack if acking else None)
    layer.close()
    if not acking:
        sys.stdout.write(ledger.to_json() + "\n")


if __name__ == "__main__":
    main()
