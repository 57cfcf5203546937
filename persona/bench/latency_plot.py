"""The latency benchmark's plot: box plots of ``condition()``'s parts, targets as lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from persona.bench.latency import MINILM_TARGET_MS, STORE_TARGET_MS, LatencyConfig


def write_plot(
    store_raw: dict[str, dict[str, list[float]]],
    minilm_raw: dict[str, dict[str, list[float]]] | None,
    path: Path,
    cfg: LatencyConfig,
) -> None:
    """Box plots of the latency distributions (log scale), with the targets as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if minilm_raw else 1, figsize=(11 if minilm_raw else 7, 4.2))
    axes = np.atleast_1d(axes)
    series, labels = [], []
    for phase in ("cold", "warm"):
        for part in ("total_ms", "store_ms", "sql_ms", "faiss_ms", "embed_ms"):
            series.append(store_raw[phase][part])
            labels.append(f"{phase}\n{part[:-3]}")
    ax = axes[0]
    ax.boxplot(series, tick_labels=labels, showfliers=True, flierprops={"markersize": 2})
    ax.axhline(STORE_TARGET_MS, color="tab:red", ls="--", lw=1, label="store target 2 ms")
    ax.set_yscale("log")
    ax.set_ylabel("ms")
    ax.set_title(
        f"condition(), hash embedder: {cfg.users:,} users x {cfg.prefs:,} prefs", fontsize=9
    )
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7)
    if minilm_raw:
        ax = axes[1]
        data = [
            minilm_raw[p][k] for p in ("cold", "warm") for k in ("total_ms", "embed_ms", "store_ms")
        ]
        names = [f"{p}\n{k}" for p in ("cold", "warm") for k in ("total", "embed", "store")]
        for p in ("cold", "warm"):  # the user with feedback preferences: its words cold / warm
            if f"feedback_{p}" in minilm_raw:
                for k in ("total", "scope"):
                    data.append(minilm_raw[f"feedback_{p}"][f"{k}_ms"])
                    names.append(f"fb {p}\n{k}")
        ax.boxplot(data, tick_labels=names, flierprops={"markersize": 2})
        ax.axhline(
            MINILM_TARGET_MS,
            color="tab:red",
            ls="--",
            lw=1,
            label=f"target {MINILM_TARGET_MS:g} ms (p50)",
        )
        ax.set_yscale("log")
        ax.set_title(
            f"condition(), MiniLM: {cfg.minilm_users} users x {cfg.minilm_prefs:,} prefs",
            fontsize=9,
        )
        ax.tick_params(axis="x", labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
