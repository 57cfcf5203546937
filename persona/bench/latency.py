"""Latency of ``PreferenceLayer.condition()`` with a large store (``persona bench latency``).

Two runs:

1. **Store part** — ``users × prefs`` preferences (default 1,000 × 1,000 = 1M rows), each with
   a synthetic context and its embedding (hash embedder, 384-d: the store's cost does not
   depend on which model made the vectors), bulk-inserted per user in one transaction. Then,
   for a random sample of users, one **cold** ``condition()`` (the user's FAISS index is
   dropped first, so it is rebuilt from SQL) and ``queries`` **warm** ones (index cached).
   Reported: p50/p99 of the wall time around ``condition()`` and of its SQL, embedding and
   FAISS parts (``Conditioning.timings``); "store part" = SQL + FAISS.
2. **MiniLM** — a few users with ``minilm_prefs`` preferences each, in a separate store
   embedded with the real all-MiniLM-L6-v2; whole-``condition()`` latency, the query embedded
   by MiniLM every time. The stored contexts are embedded once and their vectors reused for
   every MiniLM user (they hold the same contexts with different preference texts).
   Then **feedback**: one user with ``minilm_feedbacks`` preferences learned from verbal
   feedback (C3PO, ``learn_from_feedback``, no LLM: the scope is read from the feedback's
   words), and ``minilm_feedback_requests`` requests measured twice: **cold**, each request's
   words new to the process (the scope model's word-vector LRU emptied before each, so every
   content word is embedded by MiniLM), then **warm**, the same requests with every word
   cached. Reported beside the total: the scope step (``scope_ms``).

``condition()`` never calls an LLM here: rows learned from edits are served on CIPHER's
default request path (the vote: no LLM, each clause embedded once); its LLM aggregation is
not part of this benchmark. Results: JSON + a PNG.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from persona.bench.machine import command_line, machine_info
from persona.bench.synthetic import SyntheticText
from persona.errors import InvalidInputError

if TYPE_CHECKING:
    from rich.console import Console

    from persona.layer import PreferenceLayer
    from persona.store.base import Store
    from persona.store.embed import Embedder
    from persona.types import Conditioning

#: The targets the design sets (milliseconds, p50 of warm queries).
STORE_TARGET_MS = 2.0  # SQL + FAISS for a user with 1,000 prefs in a store of 1M rows
MINILM_TARGET_MS = 10.0  # whole condition() with the MiniLM embedder, warm p50 (issue 8)
MINILM_P99_TARGET_MS = 25.0  # and its p99
PARTS = ("total_ms", "store_ms", "sql_ms", "faiss_ms", "embed_ms")
FEEDBACK_PARTS = (*PARTS, "scope_ms")
#: Verbal feedback for the feedback scenario, each naming a scope the synthetic requests touch.
FEEDBACKS = (
    "Don't use emojis when drafting emails to my boss.",
    "Summaries of meeting transcripts should start with a one-line TL;DR.",
    "When writing to an angry customer, keep it under 120 words.",
    "For anything about the budget, put the numbers in a table.",
)


@dataclass(frozen=True)
class LatencyConfig:
    users: int = 1_000  # users in the big store
    prefs: int = 1_000  # preferences per user (rows = users × prefs)
    globals_per_user: int = 3  # of those, preferences with no context (apply everywhere)
    sample_users: int = 100  # users measured; keep <= 256 (the index LRU) or evictions write files
    queries: int = 20  # warm queries per sampled user (after its one cold query)
    minilm: bool = True  # also run the small MiniLM store
    minilm_users: int = 3
    minilm_prefs: int = 1_000
    minilm_queries: int = 100  # warm queries per MiniLM user
    minilm_feedbacks: int = 3  # feedback preferences of the feedback scenario's user
    minilm_feedback_requests: int = 144  # its requests (each measured cold, then warm)
    # "auto": bfloat16 where the CPU computes it natively, else float32 (what users get)
    minilm_dtype: str = "auto"
    dim: int = 384  # hash-embedder dimension (MiniLM's is 384 too)
    seed: int = 0
    db: str | None = None  # None: a temp dir, removed afterwards
    # None: leave OpenMP's thread count as the process finds it (what users get); a number:
    # omp_set_num_threads(n) first (torch's threads; the index always searches on one).
    faiss_threads: int | None = None
    # None: SQLite files in the run's folder; a postgresql:// URL: that database (empty, or
    # holding this benchmark's data), figures written beside SQLite's in the same JSON
    store: str | None = None

    def check(self) -> None:
        for name in ("users", "prefs", "sample_users", "queries", "minilm_users", "minilm_prefs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"--{name.replace('_', '-')} {value!r} must be >= 1.")
        if self.faiss_threads is not None and self.faiss_threads < 1:
            raise InvalidInputError(f"--faiss-threads {self.faiss_threads!r} must be >= 1.")
        if not 1 <= self.minilm_feedbacks <= len(FEEDBACKS):
            raise InvalidInputError(
                f"minilm_feedbacks={self.minilm_feedbacks} must be in 1..{len(FEEDBACKS)}."
            )
        if self.minilm_feedback_requests < 1:
            raise InvalidInputError(
                f"minilm_feedback_requests={self.minilm_feedback_requests} must be >= 1."
            )
        if self.minilm_queries < 1 or self.dim < 8:
            raise InvalidInputError(
                f"minilm_queries={self.minilm_queries} must be >= 1 and dim={self.dim} >= 8."
            )


# -- synthetic data ---------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB; ru_maxrss is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def stats(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    if not len(arr):
        return {"n": 0}
    return {
        "n": len(arr),
        "p50": round(float(np.percentile(arr, 50)), 4),
        "p99": round(float(np.percentile(arr, 99)), 4),
        "mean": round(float(arr.mean()), 4),
        "max": round(float(arr.max()), 4),
    }


def stats_p95(values: list[float]) -> dict[str, float]:
    """:func:`stats` and the 95th percentile."""
    out = stats(values)
    if values:
        out["p95"] = round(float(np.percentile(np.asarray(values, np.float64), 95)), 4)
    return out


class Samples:
    """Per-query timings, in milliseconds, by part."""

    def __init__(self, parts: tuple[str, ...] = PARTS) -> None:
        self.parts: dict[str, list[float]] = {p: [] for p in parts}

    def record(self, layer: PreferenceLayer, user_id: str, context: str) -> Conditioning:
        t0 = time.perf_counter()
        cond = layer.condition(user_id, context)
        total = (time.perf_counter() - t0) * 1e3
        t = cond.timings
        self.parts["total_ms"].append(total)
        self.parts["sql_ms"].append(t["sql_ms"])
        self.parts["faiss_ms"].append(t["faiss_ms"])
        self.parts["embed_ms"].append(t["embed_ms"])
        self.parts["store_ms"].append(t["sql_ms"] + t["faiss_ms"])
        if "scope_ms" in self.parts:  # C3PO's scope decisions (0 when it has nothing to decide)
            self.parts["scope_ms"].append(t.get("scope_ms", 0.0))
        return cond

    def summary(self, p95: bool = False) -> dict[str, dict[str, float]]:
        of = stats_p95 if p95 else stats
        return {part: of(values) for part, values in self.parts.items()}


def measure(
    layer: PreferenceLayer,
    user_ids: list[str],
    queries: int,
    text: SyntheticText,
    console: Console | None,
    label: str,
) -> tuple[Samples, Samples]:
    """One cold query (index dropped: rebuilt from SQL) then ``queries`` warm ones per user."""
    cold, warm = Samples(), Samples()
    rebuilds = layer.index.rebuilds
    with _progress(console) as progress:
        task = progress.add_task(label, total=len(user_ids) * (queries + 1))
        for uid in user_ids:
            layer.index.invalidate(uid)
            cold.record(layer, uid, text.context())
            for _ in range(queries):
                warm.record(layer, uid, text.context())
            progress.advance(task, queries + 1)
    if layer.index.rebuilds - rebuilds != len(user_ids):
        raise RuntimeError("a cold query did not rebuild its index: the benchmark is invalid")
    return cold, warm


@contextmanager
def _progress(console: Console | None) -> Iterator[Any]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=console is None) as progress:
        yield progress


# -- the store ------------------------------------------------------------------------------------


def _user(i: int) -> str:
    return f"bench-{i:06d}"


def populate(
    store: Store,
    embedder: Embedder,
    user_ids: list[str],
    prefs: int,
    globals_per_user: int,
    text: SyntheticText,
    console: Console | None,
    *,
    shared: tuple[list[str], np.ndarray] | None = None,
    sources: tuple[str, ...] = ("feedback", "manual"),
) -> dict[str, float]:
    """Insert ``prefs`` preferences per user, one transaction per user. ``shared``: reuse
    these (contexts, vectors) for every user instead of generating and embedding new ones.
    ``sources``: the sources of the contextual rows, in turn (``("edit",)``: every row
    learned from edits, as CIPHER stores them)."""
    n_global = min(globals_per_user, prefs)
    embed_s = insert_s = 0.0
    with _progress(console) as progress:
        task = progress.add_task(f"insert {len(user_ids):,} users × {prefs:,}", total=len(user_ids))
        for uid in user_ids:
            texts = [text.preference() for _ in range(prefs)]
            if shared is None:
                contexts = [text.context() for _ in range(prefs - n_global)]
                t0 = time.perf_counter()
                vectors = embedder.embed(contexts)
                embed_s += time.perf_counter() - t0
            else:
                contexts, vectors = shared
            t0 = time.perf_counter()
            with store.transaction():
                for i in range(n_global):
                    store.add_preference(uid, texts[i], "manual")
                for j, (ctx, vec) in enumerate(zip(contexts, vectors, strict=True)):
                    source = sources[j % len(sources)]
                    store.add_preference(
                        uid, texts[n_global + j], source, context=ctx, embedding=vec
                    )
            insert_s += time.perf_counter() - t0
            progress.advance(task)
    rows = len(user_ids) * prefs
    return {
        "rows": rows,
        "embed_seconds": round(embed_s, 2),
        "insert_seconds": round(insert_s, 2),
        "insert_rows_per_second": round(rows / insert_s, 1) if insert_s else 0.0,
    }


def _existing(layer: PreferenceLayer, user_ids: list[str], rows: int) -> bool:
    """True when the store already holds exactly this benchmark's data (reuse it)."""
    from persona.bench.latency_backends import foreign_users, row_count

    wanted = set(user_ids)
    have = [u for u in layer.store.users() if u in wanted]
    foreign = foreign_users(layer, user_ids)
    if not have and not foreign:
        return False
    count = row_count(layer, user_ids)
    if have == user_ids and count == rows and not foreign:
        return True
    where = getattr(layer.store, "path", None) or getattr(layer.store, "where", "the store")
    raise InvalidInputError(
        f"--db {where!r} already holds {len(have) + len(foreign)} users / {count} rows, not "
        f"this benchmark's {len(user_ids)} / {rows}; pass an empty or new path (or database)."
    )


def run_store_part(cfg: LatencyConfig, root: Path, console: Console | None) -> dict[str, Any]:
    from persona.bench.latency_backends import open_layer, settle
    from persona.store.embed import HashEmbedder, embedder_id

    embedder = HashEmbedder(cfg.dim)
    user_ids = [_user(i) for i in range(cfg.users)]
    text = SyntheticText(cfg.seed)
    with open_layer(cfg.store, root, "persona", embedder) as layer:
        if _existing(layer, user_ids, cfg.users * cfg.prefs):
            insert: dict[str, Any] = {"rows": cfg.users * cfg.prefs, "reused": True}
        else:
            insert = populate(
                layer.store,
                embedder,
                user_ids,
                cfg.prefs,
                cfg.globals_per_user,
                text,
                console,
            )
        insert["db_bytes"] = settle(layer, root, "persona")
        insert["db_mib"] = round(insert["db_bytes"] / 2**20, 1)
        rss_after_insert = peak_rss_mb()
        rng = random.Random(cfg.seed + 1)
        sample = rng.sample(user_ids, min(cfg.sample_users, len(user_ids)))
        spare = next((u for u in user_ids if u not in sample), None)
        if spare is not None:  # first call ever imports faiss: keep that out of the samples
            layer.condition(spare, text.context())
        queries = SyntheticText(cfg.seed + 2)
        cold, warm = measure(layer, sample, cfg.queries, queries, console, "query (hash)")
        vectors = layer.index.size(sample[0])
        diagnosis = faiss_threads_diagnosis(layer, sample[0], queries)
    return {
        "embedder": embedder_id(embedder),
        "store": insert,
        "vectors_per_user": vectors,
        "sampled_users": len(sample),
        "cold": cold.summary(),
        "warm": warm.summary(),
        "raw": {"cold": cold.parts, "warm": warm.parts},
        "peak_rss_mib_after_insert": rss_after_insert,
        "peak_rss_mib": peak_rss_mb(),
        "faiss_search_only": diagnosis,
    }


def faiss_threads_diagnosis(
    layer: PreferenceLayer, user_id: str, text: SyntheticText, n: int = 200
) -> dict[str, Any]:
    """The bare FAISS search of one user's cached index (k as condition() asks), with FAISS's
    current OpenMP thread count and with one thread: shows what threading costs per query."""
    import faiss

    entry = layer.index._get(user_id)  # the cached IndexIDMap2 (warm)
    k = layer._search_k
    queries = layer.embedder.embed([text.context() for _ in range(n)])
    threads = faiss.omp_get_max_threads()
    result: dict[str, Any] = {"k": k, "vectors": int(entry.index.ntotal)}
    for label, count in ((f"omp_threads_{threads}", threads), ("omp_threads_1", 1)):
        faiss.omp_set_num_threads(count)
        times = []
        for q in queries:
            t0 = time.perf_counter()
            entry.index.search(q[None, :], k)
            times.append((time.perf_counter() - t0) * 1e3)
        result[label] = stats(times)
    faiss.omp_set_num_threads(threads)
    return result


def run_minilm_part(cfg: LatencyConfig, root: Path, console: Console | None) -> dict[str, Any]:
    from persona.bench.latency_backends import open_layer
    from persona.options import LayerOptions
    from persona.store.embed import MiniLMEmbedder, embedder_id

    embedder = MiniLMEmbedder(dtype=cfg.minilm_dtype)
    text = SyntheticText(cfg.seed + 10)
    n_ctx = cfg.minilm_prefs - min(cfg.globals_per_user, cfg.minilm_prefs)
    contexts = [text.context() for _ in range(n_ctx)]
    t0 = time.perf_counter()
    embedder.embed(["warm up"])
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vectors = embedder.embed(contexts) if contexts else np.zeros((0, embedder.dim), np.float32)
    embed_s = time.perf_counter() - t0
    queries = SyntheticText(cfg.seed + 11)

    def run(name: str, sources: tuple[str, ...]) -> tuple[Samples, Samples, int]:
        """Users whose rows have these sources, in their own store: cold and warm queries."""
        user_ids = [f"{name}-{i:03d}" for i in range(cfg.minilm_users)]
        with open_layer(cfg.store, root, name, embedder) as layer:
            if not _existing(layer, user_ids, cfg.minilm_users * cfg.minilm_prefs):
                populate(
                    layer.store,
                    embedder,
                    user_ids,
                    cfg.minilm_prefs,
                    cfg.globals_per_user,
                    text,
                    console,
                    shared=(contexts, vectors),
                    sources=sources,
                )
            layer.condition(user_ids[0], queries.context())  # warm-up call
            cold, warm = measure(
                layer, user_ids, cfg.minilm_queries, queries, console, f"query ({name})"
            )
            applied = len(layer.condition(user_ids[0], queries.context()).preferences)
        return cold, warm, applied

    cold, warm, _ = run("minilm", ("feedback", "manual"))
    # The same rows learned from edits: CIPHER contributes the k nearest, on the default
    # request path (the vote: no LLM, each clause embedded once).
    edits_cold, edits_warm, applied = run("minilm-edits", ("edit",))
    from persona.bench.latency_feedback import measure_feedback

    feedback, feedback_raw = measure_feedback(cfg, root, embedder, console)
    return {
        "embedder": embedder_id(embedder),
        "dtype": str(next(embedder._load()[0].auto_model.parameters()).dtype),
        "model_load_seconds": round(load_s, 2),
        "contexts_embedded": len(contexts),
        "context_embed_seconds": round(embed_s, 2),
        "context_embed_per_second": round(len(contexts) / embed_s, 1) if embed_s else None,
        "cold": cold.summary(),
        "warm": warm.summary(),
        "raw": {"cold": cold.parts, "warm": warm.parts, **feedback_raw},
        "edit_learned": {
            "users": cfg.minilm_users,
            "rows_per_user": cfg.minilm_prefs,
            "cipher_aggregate": LayerOptions().cipher_aggregate,  # the default request path
            "preferences_applied": applied,
            "cold": edits_cold.summary(),
            "warm": edits_warm.summary(),
        },
        "feedback": feedback,
        "peak_rss_mib": peak_rss_mb(),
    }


def _targets(cfg: LatencyConfig, store: dict[str, Any], minilm: dict[str, Any] | None) -> list:
    at_scale = cfg.prefs >= 1_000 and cfg.users * cfg.prefs >= 1_000_000
    store_p50 = store["warm"]["store_ms"]["p50"]
    targets: list[dict[str, Any]] = [
        {
            "name": "store part (SQL + FAISS), warm p50, 1,000 prefs, 1M rows in the store",
            "value_ms": store_p50,
            "limit_ms": STORE_TARGET_MS,
            "passed": store_p50 <= STORE_TARGET_MS,
            "at_target_scale": at_scale,
        }
    ]
    if minilm is not None:
        at = cfg.minilm_prefs >= 1_000
        for label, part in (("", minilm), (", edit-learned rows", minilm["edit_learned"])):
            for stat, limit in (("p50", MINILM_TARGET_MS), ("p99", MINILM_P99_TARGET_MS)):
                value = part["warm"]["total_ms"][stat]
                targets.append(
                    {
                        "name": f"whole condition() with MiniLM{label}, warm {stat}",
                        "value_ms": value,
                        "limit_ms": limit,
                        "passed": value <= limit,
                        "at_target_scale": at,
                    }
                )
    return targets


def run_latency(
    cfg: LatencyConfig,
    out: Path | str = "benchmarks/latency.json",
    *,
    plot: Path | str | None = None,
    console: Console | None = None,
    argv: list[str] | None = None,
) -> dict[str, Any]:
    """Run the benchmark, write ``out`` (JSON) and ``plot`` (PNG; default: beside ``out``)."""
    from persona.bench.latency_backends import backend_name, merge, public_parameters

    cfg.check()
    out = Path(out)
    backend = backend_name(cfg.store)
    suffix = ".png" if backend == "sqlite" else f"-{backend}.png"
    plot = Path(plot) if plot is not None else out.with_name(out.stem + suffix)
    started = time.perf_counter()
    import faiss

    if cfg.faiss_threads is not None:
        faiss.omp_set_num_threads(cfg.faiss_threads)
    faiss_threads = faiss.omp_get_max_threads()
    load_before = [round(x, 2) for x in os.getloadavg()]
    root = Path(cfg.db) if cfg.db else Path(tempfile.mkdtemp(prefix="persona-bench-"))
    root = root.parent if root.suffix == ".db" else root
    root.mkdir(parents=True, exist_ok=True)
    try:
        store = run_store_part(cfg, root, console)
        minilm = run_minilm_part(cfg, root, console) if cfg.minilm else None
    finally:
        if not cfg.db:
            shutil.rmtree(root, ignore_errors=True)
    result: dict[str, Any] = {
        "benchmark": "latency",
        "backend": backend,
        "command": command_line(argv),
        "machine": machine_info(argv),
        "parameters": public_parameters(asdict(cfg)),
        "models": {
            "store_part_embedder": store["embedder"],
            "minilm_embedder": minilm["embedder"] if minilm else None,
            "llm": None,
        },
        "faiss_omp_threads": faiss_threads,
        "load_average_before": load_before,
        "method": [
            f"{cfg.users:,} users x {cfg.prefs:,} preferences ({cfg.globals_per_user} per user "
            "without a context), synthetic contexts embedded with the hash embedder, inserted "
            f"with {'PostgresStore' if cfg.store else 'SQLiteStore'}.add_preference, one "
            "transaction per user.",
            f"{min(cfg.sample_users, cfg.users)} random users: 1 cold condition() (the user's "
            f"FAISS index dropped first, so rebuilt from SQL) + {cfg.queries} warm ones each.",
            "total_ms = wall time around condition(); sql/faiss/embed from "
            "Conditioning.timings; store_ms = sql_ms + faiss_ms.",
            "No row has source='edit', so condition() makes no LLM call (llm = none).",
            f"MiniLM: {cfg.minilm_users} users x {cfg.minilm_prefs:,} preferences in a separate "
            "store; the stored contexts were embedded with MiniLM once and the vectors reused "
            f"for every user; {cfg.minilm_queries} warm queries per user, each query embedded "
            "by MiniLM.",
            f"MiniLM feedback: 1 user with {cfg.minilm_feedbacks} preferences learned from "
            "verbal feedback (C3PO, no LLM: scope from the feedback's words); "
            f"{cfg.minilm_feedback_requests} requests measured cold (the scope model's word "
            "cache emptied before each, so every content word of the request is embedded by "
            "MiniLM) then warm (the same requests, every word cached); scope_ms from "
            "Conditioning.timings.",
        ],
        "store_part": {k: v for k, v in store.items() if k != "raw"},
        "minilm": {k: v for k, v in minilm.items() if k != "raw"} if minilm else None,
        "memory": {
            "peak_rss_mib_after_insert": store["peak_rss_mib_after_insert"],
            "peak_rss_mib_store_part": store["peak_rss_mib"],
            "peak_rss_mib": peak_rss_mb(),
        },
        "targets": _targets(cfg, store, minilm),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    result["plot"] = str(plot)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merge(out, result), indent=2) + "\n")
    from persona.bench.latency_plot import write_plot

    write_plot(store["raw"], minilm["raw"] if minilm else None, plot, cfg)
    return result
