"""The latency benchmark's feedback scenario: a user with C3PO feedback preferences, its
requests measured with the scope model's word cache cold, then warm."""

from __future__ import annotations

from pathlib import Path

import pytest

from persona.bench.latency import FEEDBACK_PARTS, LatencyConfig
from persona.bench.latency_feedback import measure_feedback
from persona.bench.latency_plot import write_plot
from persona.errors import InvalidInputError


@pytest.mark.slow
def test_feedback_scenario_reports_cold_and_warm(tmp_path: Path) -> None:
    from persona.store.embed import MiniLMEmbedder

    cfg = LatencyConfig(minilm_feedbacks=2, minilm_feedback_requests=4)
    summary, raw = measure_feedback(cfg, tmp_path, MiniLMEmbedder(), console=None)

    assert summary["feedbacks"] == 2 and summary["requests"] == 4 and summary["llm"] is None
    assert all(scope for scope in summary["scopes"])  # each read from its feedback's words
    assert summary["words_per_request_mean"] > 0 and summary["distinct_words"] > 0
    assert 0 <= summary["requests_with_feedback_applied"] <= 4
    for phase in ("cold", "warm"):
        figures = summary[phase]
        assert set(FEEDBACK_PARTS) <= set(figures)
        for part in FEEDBACK_PARTS:
            s = figures[part]
            assert s["n"] == 4
            assert 0 <= s["p50"] <= s["p95"] <= s["max"] and s["mean"] >= 0
        assert figures["total_ms"]["p50"] > 0 and figures["scope_ms"]["p50"] > 0
        assert 0 < figures["scope_share_of_total"] <= 1
        assert len(raw[f"feedback_{phase}"]["total_ms"]) == 4
    # a kept --db: the scenario learns its feedback again instead of piling it up
    again, _ = measure_feedback(cfg, tmp_path, MiniLMEmbedder(), console=None)
    assert again["feedbacks"] == 2 and again["requests"] == 4


def test_feedback_parameters_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="minilm_feedbacks=0"):
        LatencyConfig(minilm_feedbacks=0).check()
    with pytest.raises(InvalidInputError, match="minilm_feedback_requests=0"):
        LatencyConfig(minilm_feedback_requests=0).check()


def test_plot_takes_the_feedback_series(tmp_path: Path) -> None:
    parts = {p: [1.0, 2.0, 3.0] for p in FEEDBACK_PARTS}
    store = {"cold": parts, "warm": parts}
    minilm = {**store, "feedback_cold": parts, "feedback_warm": parts}
    path = tmp_path / "latency.png"
    write_plot(store, minilm, path, LatencyConfig())
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
