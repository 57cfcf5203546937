"""A tiny real run of the latency benchmark: every figure, target and file is there."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from persona.bench.latency import LatencyConfig, run_latency
from persona.bench.machine import machine_info
from persona.bench.synthetic import SyntheticText
from persona.errors import InvalidInputError

PARTS = {"total_ms", "store_ms", "sql_ms", "faiss_ms", "embed_ms"}


def test_tiny_run_writes_json_and_plot(tmp_path: Path) -> None:
    cfg = LatencyConfig(users=3, prefs=50, sample_users=2, queries=5, minilm=False)
    out = tmp_path / "latency.json"
    run_latency(cfg, out, argv=["persona", "bench", "latency", "--users", "3"])

    data = json.loads(out.read_text())
    assert {"command", "machine", "parameters", "models", "store_part", "memory", "targets"} <= set(
        data
    )
    assert data["command"] == "persona bench latency --users 3"
    assert data["parameters"]["users"] == 3 and data["minilm"] is None
    assert data["models"]["store_part_embedder"] == "hash:384"
    store = data["store_part"]
    assert store["store"]["rows"] == 150 and store["store"]["db_bytes"] > 0
    assert store["store"]["insert_rows_per_second"] > 0
    assert store["vectors_per_user"] == 50 - cfg.globals_per_user
    assert store["cold"]["total_ms"]["n"] == 2 and store["warm"]["total_ms"]["n"] == 10
    for phase in ("cold", "warm"):
        assert set(store[phase]) == PARTS
        for part in PARTS:
            s = store[phase][part]
            assert 0 <= s["p50"] <= s["p99"] <= s["max"]
        assert store[phase]["total_ms"]["p50"] >= store[phase]["store_ms"]["p50"]
    assert data["memory"]["peak_rss_mib"] > 0
    (target,) = data["targets"]
    assert target["limit_ms"] == 2.0 and target["at_target_scale"] is False
    assert target["passed"] == (target["value_ms"] <= 2.0)
    png = tmp_path / "latency.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_db_option_keeps_and_reuses_the_store(tmp_path: Path) -> None:
    cfg = LatencyConfig(
        users=2, prefs=20, sample_users=1, queries=2, minilm=False, db=str(tmp_path / "db")
    )
    first = run_latency(cfg, tmp_path / "a.json")
    assert (tmp_path / "db" / "persona.db").is_file()
    assert "insert_seconds" in first["store_part"]["store"]
    second = run_latency(cfg, tmp_path / "b.json")
    assert second["store_part"]["store"]["reused"] is True
    other = LatencyConfig(users=3, prefs=20, sample_users=1, queries=2, minilm=False, db=cfg.db)
    with pytest.raises(InvalidInputError, match="already holds 2 users"):
        run_latency(other, tmp_path / "c.json")


def test_bad_parameters_are_named() -> None:
    with pytest.raises(InvalidInputError, match="--users 0"):
        run_latency(LatencyConfig(users=0), "unused.json")


def test_synthetic_contexts_vary() -> None:
    text = SyntheticText(1)
    contexts = {text.context() for _ in range(500)}
    assert len(contexts) > 490
    assert SyntheticText(1).context() == SyntheticText(1).context()


def test_machine_info() -> None:
    info = machine_info(["/x/bin/persona", "bench", "latency", "--users", "a b"])
    assert info["command"] == "persona bench latency --users 'a b'"
    assert info["cores"] >= 1 and info["python"].count(".") == 2
    assert {"torch", "faiss-cpu", "sentence-transformers"} <= set(info["packages"])


def test_machine_info_names_the_gpu_only_where_torch_saw_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import types

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert machine_info([])["gpu"] is None  # this CPU machine
    cuda = types.SimpleNamespace(is_available=lambda: True, get_device_name=lambda i: "NVIDIA H200")
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert machine_info([])["gpu"] == "NVIDIA H200"
    monkeypatch.delitem(sys.modules, "torch")
    assert machine_info([])["gpu"] is None  # torch not loaded: nothing is imported to ask


@pytest.mark.slow
def test_minilm_part_measures_stated_and_edit_learned_users(tmp_path: Path) -> None:
    cfg = LatencyConfig(
        users=2,
        prefs=10,
        sample_users=1,
        queries=2,
        minilm_users=1,
        minilm_prefs=20,
        minilm_queries=3,
        minilm_feedback_requests=4,
    )
    data = run_latency(cfg, tmp_path / "latency.json", console=None)
    assert data["minilm"]["feedback"]["warm"]["total_ms"]["n"] == 4
    edits = data["minilm"]["edit_learned"]
    assert edits["warm"]["total_ms"]["n"] == 3 and edits["preferences_applied"] >= 5
    names = [t["name"] for t in data["targets"]]
    assert any("edit-learned" in n and "p99" in n for n in names)
    assert all(t["limit_ms"] in (2.0, 10.0, 25.0) for t in data["targets"])
