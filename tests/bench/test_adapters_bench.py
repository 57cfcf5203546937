"""``persona bench adapters`` on a tiny random Llama: the training part measures held-out
pairs with and without each adapter, serving measures a real pool, and the edits benchmark's
adapter learner retrains and then answers through the user's adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from persona.adapters.train import AdapterConfig
from persona.agents.models import LocalChatModel
from persona.bench.adapters import TrainBenchConfig, bench_serving, bench_training
from persona.bench.edits import EditsConfig, run_edits
from persona.store.embed import HashEmbedder

TINY = {"rank": 4, "alpha": 8, "max_steps": 2, "constraint_prompts": 1, "answer_tokens": 8}


def test_training_and_serving_parts(tiny_dir: Path, tmp_path: Path) -> None:
    adapter = AdapterConfig(base=str(tiny_dir), test_share=0.0, learning_rate=1e-2, **TINY)
    done: list[str] = []
    doc = bench_training(
        TrainBenchConfig(users=2, shots=3, test_pairs=4), adapter, tmp_path, done.append
    )
    assert len(doc["users"]) == 2 and len(done) == 2
    for row in doc["users"]:
        assert row["pairs_trained"] == 3 and row["heldout_pairs"] == 4 and row["steps"] == 2
        assert 0.0 <= row["accuracy_plain"] <= 1 and 0.0 <= row["accuracy_adapter"] <= 1
        assert row["adapter_bytes"] > 0 and row["peak_memory_mb"] > 0 and len(row["losses"]) == 2
    assert doc["summary"]["accuracy_adapter"] is not None
    folders = [str(p) for p in sorted((tmp_path / "adapters").iterdir()) if p.name != ".work"]
    model = LocalChatModel(model_dir=str(tiny_dir), follow_adapter=False, dtype="float32")
    serving = bench_serving(folders, tokens=4, repeats=4, model=model)
    assert serving["adapters"] == 2 and serving["mixed_batch"]["rows"] == 2
    assert serving["load_ms"]["mean"] > 0 and serving["switch_ms"]["p50"] >= 0
    assert serving["ms_per_token"]["with_adapter"] > 0


def test_the_edits_adapter_learner_retrains_and_serves(tiny_dir: Path) -> None:
    agent = LocalChatModel(model_dir=str(tiny_dir), follow_adapter=False, dtype="float32")
    adapter = {"base": str(tiny_dir), "learning_rate": 1e-2, **TINY}
    doc = run_edits(
        ["adapter-2"],
        agent=agent,
        learner_llm=agent,
        user_llm=agent,
        embedder=HashEmbedder(64),
        config=EditsConfig(task="summarization", rounds=4, max_tokens=6),
        adapter_config=adapter,
    )
    (result,) = doc["results"]
    assert [t["round"] for t in result["trainings"]] == [2, 4]
    assert all("error" not in t and t["steps"] == 2 for t in result["trainings"])
    assert result["adapter_rounds"] == 2  # rounds 3 and 4 were answered through the adapter
    assert doc["adapter_config"]["base"] == str(tiny_dir)


def test_the_feedback_part_trains_on_a_feedback_and_reads_answers_with_its_checker(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import persona.adapters.c3po as c3po
    from persona.bench.adapters import bench_feedback

    def fill(model: Any, tok: Any, dataset: dict[str, Any], **kw: Any) -> dict[str, Any]:
        """A random model cannot revise: answers as a model that can would give them."""
        every = {p for key in ("in_scope", "near_scope", "out_of_scope") for p in
                 dataset[key]["train"] + dataset[key]["test"]}  # fmt: skip
        answers = {p: {"baseline": f"Hi! 🎉 {p}", "revised": f"Dear boss, {p}."} for p in every}
        return {**dataset, "answers": answers}

    monkeypatch.setattr(c3po, "fill_answers", fill)
    adapter = AdapterConfig(base=str(tiny_dir), **TINY)
    (row,) = bench_feedback(1, adapter, examples=2, prompts=2, max_tokens=4)
    assert "error" not in row, row
    assert row["train"]["steps"] == 2 and row["train"]["rows"]["train_pairs"] >= 1
    for group in ("in_scope", "out_of_scope"):
        assert row[group]["prompts"] == 2
        assert len(row[group]["adapter_follows"]) == row[group]["plain_breaks"]
