"""Per-user adapters: data from each signal, a real training run on a tiny random Llama,
stale detection, and serving (per-request switching, a mixed batch, the LRU)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persona.adapters.data import assemble
from persona.adapters.train import (
    AdapterConfig,
    adapter_dir,
    adapter_status,
    read_record,
    train_user_adapter,
)
from persona.errors import InvalidInputError
from persona.store.sqlite import SQLiteStore

FEEDBACK = "Don't use emojis when drafting emails to my boss."


def c3po_dataset() -> dict[str, Any]:
    ins = ["Email my boss about the late report", "Email my manager asking for Friday off"]
    return {
        "feedback": FEEDBACK,
        "in_scope": {"train": ins[:1], "test": ins[1:]},
        "near_scope": {"train": ["Text my friend about the party"], "test": []},
        "out_of_scope": {"train": ["What is the capital of Peru?"], "test": []},
        "answers": {
            **{p: {"baseline": f"Hi boss! 🎉 {p}", "revised": f"Dear boss, {p}."} for p in ins},
            "Text my friend about the party": {"baseline": "Party at 8! 🎉"},
            "What is the capital of Peru?": {"baseline": "Lima."},
        },
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "persona.db")
    yield s
    s.close()


def teach(store: SQLiteStore, user: str = "ana") -> None:
    for i in range(4):
        store.add_edit(user, f"Summarize note {i}", f"A long summary {i}.", f"- short {i}")
    store.add_edit(user, "Summarize note 9", "Unchanged.", "Unchanged.")  # accepted: no pair
    store.add_label(user, "Greet the team", "Hello team.", "Yo!!! 🎉")
    store.add_feedback(user, FEEDBACK, dataset=c3po_dataset())


def tiny_config(tiny_dir: Path, **changes: Any) -> AdapterConfig:
    base = {
        "base": str(tiny_dir),
        "rank": 4,
        "alpha": 8,
        "max_steps": 2,
        "batch_size": 2,
        "max_length": 128,
        "answer_tokens": 8,
        "learning_rate": 1e-3,
        "constraint_prompts": 2,
    }
    return AdapterConfig(**{**base, **changes})


# -- data -----------------------------------------------------------------------------------


def test_data_comes_from_every_signal(store: SQLiteStore) -> None:
    teach(store)
    data = assemble(store, "ana", constraint_prompts=3)
    sources = sorted({p.source.split(":")[0] for p in data.pairs})
    assert sources == ["edit", "label"]  # feedback pairs come once the model has answered
    assert len(data.pairs) == 5  # 4 edits that changed the answer + 1 label
    edit = next(p for p in data.pairs if p.source.startswith("edit"))
    assert edit.chosen.startswith("- short") and edit.rejected.startswith("A long summary")
    assert list(data.feedback.values())[0]["feedback"] == FEEDBACK
    assert len(data.constraint_prompts) == 3
    assert data.counts["edits"] == 4 and data.counts["labels"] == 1 and data.signals == 6


def test_the_version_follows_the_data_and_only_the_data(store: SQLiteStore) -> None:
    teach(store)
    v1 = assemble(store, "ana").version
    assert assemble(store, "ana").version == v1  # stable across reads
    store.add_label("ana", "Name a colour", "Blue.", "BLUE!!!")
    v2 = assemble(store, "ana").version
    assert v2 != v1
    label = store.list_labels("ana")[-1]
    store.delete_label("ana", label.id)
    assert assemble(store, "ana").version == v1
    store.add_label("bob", "Name a colour", "Blue.", "BLUE!!!")  # another user changes nothing
    assert assemble(store, "ana").version == v1


def test_splits_are_stable_and_some_pair_trains(store: SQLiteStore) -> None:
    store.add_label("solo", "Pick one", "This.", "That.")
    data = assemble(store, "solo", test_share=0.99)
    assert [p.split for p in data.pairs] == ["train"]


# -- training -------------------------------------------------------------------------------


def test_a_real_run_writes_a_reloadable_adapter_and_records_it(
    store: SQLiteStore, tiny_dir: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    teach(store)
    ticks: list[tuple[str, float]] = []
    record = train_user_adapter(
        store, tmp_path, "ana", tiny_config(tiny_dir), tick=lambda e, v: ticks.append((e, v))
    )
    folder = adapter_dir(tmp_path, "ana")
    assert (folder / "adapter_config.json").is_file() and (folder / "training.json").is_file()
    assert not (folder / "README.md").exists()
    assert record["steps"] == 2 and [e for e, _ in ticks].count("step") == 2
    assert record["rows"]["near"] == 1 and record["rows"]["out"] == 1 + 2  # dataset + pool
    assert record["rows"]["train_pairs"] + record["rows"]["test_pairs"] == 4 + 1 + 2
    assert record["data_version"] == assemble(store, "ana", constraint_prompts=2).version
    for step in record["losses"]:
        total = step["c3po/dpo"] + 0.1 * step["c3po/sft_near"] + 0.2 * step["c3po/sft_out"]
        assert step["c3po/total"] == pytest.approx(total, rel=1e-4)
    weights = load_file(str(folder / "adapter_model.safetensors"))
    assert any(float(v.abs().sum()) > 0 for k, v in weights.items() if "lora_B" in k)
    row = store.get_adapter("ana")
    assert row is not None and row["name"] == folder.name
    assert row["meta"]["data_version"] == record["data_version"]
    assert not list((tmp_path / "adapters" / ".work" / folder.name).glob("out-*"))

    # a reload from disk gives the same outputs as the model that was trained
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    ids = tok("Summarize note 1", return_tensors="pt")["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    with torch.no_grad():
        plain = base(ids).logits
        again = PeftModel.from_pretrained(base, str(folder)).eval()(ids).logits
    assert not torch.allclose(plain, again)  # the adapter does something
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), folder)
    with torch.no_grad():
        assert torch.equal(reloaded.eval()(ids).logits, again)


def test_same_seed_same_adapter(store: SQLiteStore, tiny_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    teach(store)
    cfg = tiny_config(tiny_dir, constraint_prompts=0)
    train_user_adapter(store, tmp_path / "a", "ana", cfg)
    train_user_adapter(store, tmp_path / "b", "ana", cfg)
    wa = load_file(str(adapter_dir(tmp_path / "a", "ana") / "adapter_model.safetensors"))
    wb = load_file(str(adapter_dir(tmp_path / "b", "ana") / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)


def test_stale_detection(store: SQLiteStore, tiny_dir: Path, tmp_path: Path) -> None:
    teach(store)
    assert adapter_status(store, tmp_path, "ana")["trained"] is False
    train_user_adapter(store, tmp_path, "ana", tiny_config(tiny_dir))
    status = adapter_status(store, tmp_path, "ana")
    assert status["trained"] and not status["stale"]
    store.add_edit("ana", "Summarize note 7", "Long text.", "- short")
    status = adapter_status(store, tmp_path, "ana")
    assert status["stale"] and status["data_version"] != status["trained_version"]


def test_a_user_with_nothing_to_learn_is_refused_by_name(
    store: SQLiteStore, tiny_dir: Path, tmp_path: Path
) -> None:
    store.add_edit("idle", "Say hi", "Hi.", "Hi.")  # accepted unchanged: nothing to learn
    with pytest.raises(InvalidInputError, match="'idle' has no edits, feedback or labels"):
        train_user_adapter(store, tmp_path, "idle", tiny_config(tiny_dir))
    assert not adapter_dir(tmp_path, "idle").exists()


@pytest.mark.parametrize("user", ["../../escape", "/etc/passwd", "a/../../b", "..", "x\\..\\y"])
def test_hostile_ids_stay_inside_the_adapters_folder(
    store: SQLiteStore, tiny_dir: Path, tmp_path: Path, user: str
) -> None:
    store.add_label(user, "Pick one", "This.", "That.")
    train_user_adapter(store, tmp_path, user, tiny_config(tiny_dir, max_steps=1))
    folder = adapter_dir(tmp_path, user).resolve()
    assert folder.parent == (tmp_path / "adapters").resolve()
    written = {p.resolve() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(tmp_path.resolve() in p.parents for p in written)


def test_the_answers_of_a_killed_run_are_reused(
    store: SQLiteStore, tiny_dir: Path, tmp_path: Path
) -> None:
    teach(store)
    cfg = tiny_config(tiny_dir)
    train_user_adapter(store, tmp_path, "ana", cfg)
    work = tmp_path / "adapters" / ".work" / adapter_dir(tmp_path, "ana").name
    cache = json.loads((work / "answers.json").read_text())
    assert len(cache["pool"]) == 2
    ticks: list[str] = []
    train_user_adapter(store, tmp_path, "ana", cfg, tick=lambda e, v: ticks.append(e))
    assert "answers" not in ticks  # nothing generated again


def test_read_record_tolerates_a_damaged_file(tmp_path: Path) -> None:
    folder = adapter_dir(tmp_path, "ana")
    folder.mkdir(parents=True)
    (folder / "training.json").write_text("{not json")
    assert read_record(tmp_path, "ana") is None


def test_the_users_own_examples_train_the_adapter(store: SQLiteStore) -> None:
    """A feedback learned without an LLM has no generated in-scope prompts: the user's
    examples are then the in-scope (and near-scope) requests the adapter learns from."""
    data = {
        "feedback": FEEDBACK,
        "user_in_scope": ["Email my boss about Friday"],
        "user_out_of_scope": ["Text my friend about Friday"],
        "in_scope": {"train": [], "test": []},
        "near_scope": {"train": [], "test": []},
        "out_of_scope": {"train": [f"pool {i}" for i in range(40)], "test": ["pool x"]},
    }
    store.add_feedback("ana", FEEDBACK, dataset=data)
    (ds,) = assemble(store, "ana", out_of_scope_limit=5).feedback.values()
    assert ds["in_scope"]["train"] == ["Email my boss about Friday"]
    assert ds["near_scope"]["train"] == ["Text my friend about Friday"]
    assert ds["out_of_scope"]["train"] == [f"pool {i}" for i in range(5)]
    assert ds["out_of_scope"]["test"] == ["pool x"]
