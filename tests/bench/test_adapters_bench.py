"""``persona bench adapters`` on a tiny random Llama: the training part measures held-out
pairs with and without each adapter, serving measures a real pool, and the edits benchmark's
adapter learner retrains and then answers through the user's adapter."""

from __future__ import annotations

from pathlib import Path

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
