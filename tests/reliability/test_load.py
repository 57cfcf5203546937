"""Load: many threads on one layer, several processes on one directory (or one PostgreSQL
database, each process with its own FAISS cache directory: several app servers).

Nothing acknowledged is lost, nothing is written twice or out of nowhere, no call hangs, no
``database is locked`` reaches a caller, and FAISS agrees with SQL at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from reliability.conftest import Backend
from reliability.workload import DB_ENV, Ledger, check, open_layer, run

WORKER = str(Path(__file__).with_name("workload.py"))
CLEAN = {"lost": 0, "phantom": 0, "duplicated": 0, "index_mismatches": 0, "problems": 0}


def test_threads_on_one_layer(tmp_path: Path, reliability, backend: Backend) -> None:  # type: ignore[no-untyped-def]
    threads_n, ops = 8, reliability.n(150, 1000)
    layer = open_layer(tmp_path / "home", backend.url, index_capacity=3)
    ledgers: list[Ledger] = [Ledger() for _ in range(threads_n)]
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            ledgers[k] = run(layer, f"t{k}", ops, seed=k)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(threads_n)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    seconds = time.perf_counter() - started
    hung = sum(t.is_alive() for t in threads)
    assert hung == 0, f"{hung} threads hung"
    assert errors == [], errors[:3]
    result = check(layer, ledgers, [f"t{k}" for k in range(threads_n)])
    layer.close()
    reliability.record(
        backend.part("load_threads"),
        threads=threads_n,
        operations=sum(ledger.operations for ledger in ledgers),
        seconds=round(seconds, 1),
        hangs=hung,
        errors=len(errors),
        **result,
    )
    assert result == CLEAN


def test_processes_on_one_directory(tmp_path: Path, reliability, backend: Backend) -> None:  # type: ignore[no-untyped-def]
    procs_n, ops = 4, reliability.n(120, 1000)
    home = tmp_path / "home"
    env = {**os.environ, **({DB_ENV: backend.url} if backend.url else {})}
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, str(home), f"p{k}", str(ops), str(k)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent.parent,
            env=env,
        )
        for k in range(procs_n)
    ]
    outputs = [p.communicate(timeout=900) for p in procs]
    seconds = time.perf_counter() - started
    failed = [err for p, (_, err) in zip(procs, outputs, strict=True) if p.returncode != 0]
    assert failed == [], failed[0][-2000:] if failed else ""
    ledgers = [Ledger.from_json(out.strip().splitlines()[-1]) for out, _ in outputs]
    with open_layer(home, backend.url) as layer:
        result = check(layer, ledgers, [f"p{k}" for k in range(procs_n)])
        integrity = layer.store.integrity_check()  # type: ignore[attr-defined]
    reliability.record(
        backend.part("load_processes"),
        processes=procs_n,
        operations=sum(ledger.operations for ledger in ledgers),
        seconds=round(seconds, 1),
        locked_errors=sum("locked" in err for _, err in outputs),
        integrity=integrity,
        **result,
    )
    assert integrity == "ok"
    assert result == CLEAN
