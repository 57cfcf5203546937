"""Batch training of user adapters: plan (who, and why), then train in this process, in a
pool of worker processes, or as Ray tasks across a cluster.

Every job opens the store itself from its location (a SQLite file or a PostgreSQL URL), so a
job is a plain function call that any process or Ray worker can run. A job's failure is
caught and reported with the user it belongs to; the other jobs go on. Resuming is per
user: an adapter is published only when finished (see :mod:`persona.adapters.train`) and
records the data version it was trained on, so after a kill ``--resume`` skips the users
already done and redoes at most the one that was interrupted (its generated answers are kept).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from persona.adapters.data import assemble
from persona.adapters.serving import follow_mismatch
from persona.adapters.train import AdapterConfig, adapter_dir, read_record, train_user_adapter
from persona.agents.weights import follow_digest
from persona.config import resolve_home
from persona.errors import InvalidInputError, PersonaError
from persona.store.base import Store


@dataclass(frozen=True)
class Job:
    """One user in a plan: whether to train, and why."""

    user_id: str
    train: bool
    reason: str
    signals: int
    data_version: str


@dataclass(frozen=True)
class Outcome:
    """What became of one trained user (``error`` is None on success)."""

    user_id: str
    ok: bool
    error: str | None = None
    loss: float | None = None
    steps: int = 0
    seconds: float = 0.0
    accuracy_before: float | None = None
    accuracy_after: float | None = None


#: Environment a Ray task inherits from the driver (where the data and models are).
_RAY_ENV = ("PERSONA_HOME", "OMP_NUM_THREADS")

#: ``on_event(user_id, event, value)``: "start", "step" (loss) and "done"/"failed".
OnEvent = Callable[[str, str, Any], None]


@contextmanager
def open_store(location: str | Path | None) -> Iterator[tuple[Store, Path]]:
    """``(store, home)`` for a store location: a directory or ``.db`` file (SQLite, whose
    home holds the adapters) or a ``postgresql://`` URL (adapters under ``$PERSONA_HOME``)."""
    from persona.store.locate import open_store as locate

    store, home = locate(location, pool_size=2)
    try:
        yield store, home
    finally:
        store.close()


def plan(
    store: Store,
    home: Path,
    users: Sequence[str] | None = None,
    *,
    min_signals: int = 1,
    resume: bool = False,
    config: AdapterConfig | None = None,
) -> list[Job]:
    """Who would be trained and why (``users`` None: every user in the store)."""
    cfg = config or AdapterConfig()
    known = set(store.users())
    follow = None if cfg.base else follow_digest(cfg.follow_adapter)
    jobs = []
    for user in users if users is not None else sorted(known):
        if user not in known:
            jobs.append(Job(user, False, "unknown user (no data in this store)", 0, ""))
            continue
        data = assemble(
            store, user, test_share=cfg.test_share, constraint_prompts=cfg.constraint_prompts
        )
        record = read_record(home, user)
        trained = record.get("data_version") if record else None
        unfit = record is not None and follow_mismatch(adapter_dir(home, user), follow)
        if data.signals < min_signals:
            why = f"{data.signals} signal(s), fewer than --min-signals {min_signals}"
            jobs.append(Job(user, False, why, data.signals, data.version))
        elif unfit:
            why = "stale: trained for another follow adapter"
            jobs.append(Job(user, True, why, data.signals, data.version))
        elif trained == data.version and resume:
            jobs.append(Job(user, False, "up to date", data.signals, data.version))
        elif trained is None:
            jobs.append(Job(user, True, "no adapter yet", data.signals, data.version))
        elif trained != data.version:
            jobs.append(Job(user, True, "stale: data changed", data.signals, data.version))
        else:
            jobs.append(Job(user, True, "up to date, retrained (no --resume)", data.signals, ""))
    return jobs


def train_job(
    location: str, user_id: str, config: dict[str, Any], threads: int | None = None
) -> Outcome:
    """Train one user's adapter in this process; never raises (the error is the outcome)."""
    return _train(location, user_id, config, threads, None)


def _train(
    location: str,
    user_id: str,
    config: dict[str, Any],
    threads: int | None,
    on_event: OnEvent | None,
) -> Outcome:
    try:
        if threads:
            import torch

            torch.set_num_threads(threads)
        _quiet()
        cfg = AdapterConfig.of(config)
        losses: list[float] = []

        def tick(event: str, value: float) -> None:
            if event == "step":
                losses.append(value)
                if on_event:
                    on_event(user_id, "step", value)

        with open_store(location) as (store, home):
            record = train_user_adapter(store, home, user_id, cfg, tick=tick)
        held = record["heldout"]
        return Outcome(
            user_id,
            True,
            loss=losses[-1] if losses else None,
            steps=record["steps"],
            seconds=record["seconds"]["train"] + record["seconds"]["answers"],
            accuracy_before=held["accuracy_before"],
            accuracy_after=held["accuracy_after"],
        )
    except PersonaError as exc:
        return Outcome(user_id, False, error=str(exc))
    except Exception as exc:  # one user's failure must not stop the others
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return Outcome(user_id, False, error=tb)


def _quiet() -> None:
    """The caller's progress bar is the progress: no library bars in the middle of it."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def run(
    jobs: Sequence[Job],
    location: str | Path | None,
    config: AdapterConfig | None = None,
    *,
    workers: int = 1,
    ray_address: str | None = None,
    on_event: OnEvent | None = None,
) -> list[Outcome]:
    """Train every job marked ``train``; returns one outcome per trained user, in job order.

    ``workers`` > 1: that many processes, each with ``cpu_count // workers`` torch threads.
    ``ray_address``: "local" (start Ray here), "auto" (the running cluster) or an address;
    each user is then a Ray task asking for one GPU when the cluster has GPUs, else CPUs.
    """
    cfg = asdict(config or AdapterConfig())
    where = str(location) if location is not None else str(resolve_home(None)[0])
    todo = [j.user_id for j in jobs if j.train]
    if workers < 1:
        raise InvalidInputError(f"workers={workers!r} must be at least 1.")
    emit = on_event or (lambda user, event, value: None)
    if ray_address is not None:
        results = _run_ray(todo, where, cfg, ray_address, workers, emit)
    elif workers == 1:
        results = {}
        for user in todo:
            emit(user, "start", None)
            results[user] = _train(where, user, cfg, None, emit)
            emit(user, "done" if results[user].ok else "failed", results[user])
    else:
        results = _run_processes(todo, where, cfg, workers, emit)
    return [results[u] for u in todo]


def _run_processes(
    users: list[str], where: str, cfg: dict[str, Any], workers: int, emit: OnEvent
) -> dict[str, Outcome]:
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // workers)
    results: dict[str, Outcome] = {}
    ctx = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: dict[Future[Outcome], str] = {}
        for user in users:
            emit(user, "start", None)
            pending[pool.submit(train_job, where, user, cfg, threads)] = user
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                user = pending.pop(fut)
                try:
                    results[user] = fut.result()
                except Exception as exc:  # the worker process died (killed, out of memory)
                    results[user] = Outcome(user, False, error=f"worker died: {exc!r}")
                emit(user, "done" if results[user].ok else "failed", results[user])
    return results


def _run_ray(
    users: list[str],
    where: str,
    cfg: dict[str, Any],
    address: str,
    workers: int,
    emit: OnEvent,
) -> dict[str, Outcome]:
    try:
        import ray
    except ImportError as exc:
        raise InvalidInputError(
            "--ray needs Ray: pip install 'persona[ray]' (or run without --ray)."
        ) from exc

    env = {k: os.environ[k] for k in _RAY_ENV if k in os.environ}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    started = False
    if not ray.is_initialized():
        if address == "local":
            ray.init(
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": env},
            )
        else:
            try:
                ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": env})
            except Exception as exc:  # no cluster there: say so, do not dump a traceback
                raise InvalidInputError(
                    f"could not reach a Ray cluster at {address!r} ({type(exc).__name__}: "
                    f"{str(exc)[:200]}); start one (`ray start --head`) or use --ray local."
                ) from exc
        started = True
    try:
        gpus = float(ray.cluster_resources().get("GPU", 0))
        cpus = float(ray.cluster_resources().get("CPU", 1))
        per_task_cpus = max(1, int(cpus // max(workers, 1)))
        options: dict[str, Any] = {
            "num_cpus": 1 if gpus else per_task_cpus,
            "max_retries": 0,
            "runtime_env": {"env_vars": env},
        }
        if gpus:
            options["num_gpus"] = 1
        remote = ray.remote(train_job).options(**options)
        threads = None if gpus else per_task_cpus
        refs = {}
        for user in users:
            emit(user, "start", None)
            refs[remote.remote(where, user, cfg, threads)] = user
        results: dict[str, Outcome] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            user = refs[done[0]]
            try:
                results[user] = ray.get(done[0])
            except Exception as exc:  # the task's worker died
                results[user] = Outcome(user, False, error=f"Ray task failed: {exc!r:.300}")
            emit(user, "done" if results[user].ok else "failed", results[user])
        return results
    finally:
        if started:
            ray.shutdown()
