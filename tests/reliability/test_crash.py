"""Crashes: a writer killed with SIGKILL at a random moment loses nothing it acknowledged.

Each trial starts a writer process on the same directory (a small FAISS LRU, so cache files
are written all the time), reads the writes it acknowledged on stdout, kills it after a
random delay, then checks: the store's integrity check passes (SQLite's own; on PostgreSQL,
persona's invariants: the server survives its clients), every acknowledged write is
there (and every acknowledged delete is gone), FAISS agrees with SQL for every user, and no
temp file is left after the next open.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from reliability.conftest import Backend
from reliability.workload import DB_ENV, open_layer

WORKER = str(Path(__file__).with_name("workload.py"))


def _trial(home: Path, k: int, rnd: random.Random, db: str | None) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, WORKER, str(home), f"k{k}", "100000", str(k), "ack"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **({DB_ENV: db} if db else {})},
    )
    acked: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            acked.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while not acked and proc.poll() is None:  # wait until it writes, then kill it mid-flight
        time.sleep(0.01)
    time.sleep(rnd.uniform(0.0, 0.4))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    reader.join(timeout=30)
    return acked


def test_sigkilled_writers_lose_no_acknowledged_write(  # type: ignore[no-untyped-def]
    tmp_path: Path, reliability, backend: Backend
) -> None:
    trials = reliability.n(8, 120)
    rnd = random.Random(7)
    home = tmp_path / "home"
    open_layer(home, backend.url).close()
    # (user, text) -> True (acknowledged add), False (acknowledged delete) or None (a delete
    # was under way when the writer died: it may or may not have committed, both are valid)
    expected: dict[tuple[str, str], bool | None] = {}
    acked_total = 0
    for k in range(trials):
        for line in _trial(home, k, rnd, backend.url):
            kind, user, text = line.split(" ", 2)
            expected[(user, text)] = None if kind == "DELETING" else kind == "ADD"
            acked_total += kind != "DELETING"
    with open_layer(home, backend.url) as layer:
        integrity = layer.store.integrity_check()  # type: ignore[attr-defined]
        present = {(u, p.text) for u in layer.users() for p in layer.preferences(u)}
        lost = sum(1 for key, alive in expected.items() if alive is True and key not in present)
        resurrected = sum(1 for key, alive in expected.items() if alive is False and key in present)
        mismatches = sum(
            layer.index.ids(u).tolist() != layer.store.vector_ids(u)[1].tolist()
            for u in layer.users()
        )
    leftovers = list((home / "index").glob("*.tmp")) if (home / "index").exists() else []
    reliability.record(
        backend.part("crashes"),
        trials=trials,
        acknowledged_writes=acked_total,
        lost=lost,
        resurrected_deletes=resurrected,
        integrity=integrity,
        index_mismatches=mismatches,
        temp_files_left=len(leftovers),
    )
    assert integrity == "ok"
    assert (lost, resurrected, mismatches, leftovers) == (0, 0, 0, [])
    assert acked_total > trials  # the writers really wrote before they were killed
