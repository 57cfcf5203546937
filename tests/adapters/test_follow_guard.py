"""A user adapter is served only on the weights it was trained on: its record names the follow
adapter merged into them (by digest), and an adapter trained for another follow adapter is
refused by the pool, skipped by the runnable (the prompt alone serves), reported as unfit by
``adapter_status`` and retrained by ``persona train-adapters``."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from loras import random_lora

from persona.adapters import batch
from persona.adapters.serving import (
    FOLLOW_FIELD,
    AdapterPool,
    follow_mismatch,
    trained_follow,
)
from persona.adapters.train import AdapterConfig, read_record, train_user_adapter
from persona.agents.models import LocalChatModel, _merge
from persona.agents.weights import FOLLOW_ADAPTER_DIR, adapter_digest, follow_digest
from persona.errors import ModelError
from persona.layer import PreferenceLayer

TINY = AdapterConfig(rank=4, alpha=8, max_steps=1, learning_rate=1e-2, constraint_prompts=1)


@pytest.fixture(scope="module")
def follows(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two different "follow adapters" for the tiny model."""
    root = tmp_path_factory.mktemp("follow-adapters")
    return random_lora(tiny_dir, root / "f1", 1), random_lora(tiny_dir, root / "f2", 2)


def test_the_digest_names_the_weights_not_the_path(tmp_path: Path, follows: Any) -> None:
    f1, f2 = follows
    copy = shutil.copytree(f1, tmp_path / "copy")
    assert adapter_digest(copy) == adapter_digest(f1) != adapter_digest(f2)
    assert len(adapter_digest(f1)) == 16
    assert follow_digest(False) is None
    assert follow_digest(True) == adapter_digest(FOLLOW_ADAPTER_DIR)  # the shipped one
    assert follow_digest(str(f2)) == adapter_digest(f2)
    (copy / "adapter_model.safetensors").write_bytes(b"retrained")  # a new version of the file
    assert adapter_digest(copy) != adapter_digest(f1)
    with pytest.raises(ModelError, match="no adapter weights at"):
        adapter_digest(tmp_path)


def test_the_record_says_which_weights_an_adapter_fits(tmp_path: Path) -> None:
    assert trained_follow(tmp_path) == (False, None)  # no record: trained before it was kept
    assert follow_mismatch(tmp_path, "abc") is None  # unrecorded adapters are never refused
    (tmp_path / "training.json").write_text(json.dumps({"data_version": "x"}))
    assert trained_follow(tmp_path) == (False, None)
    (tmp_path / "training.json").write_text(json.dumps({FOLLOW_FIELD: None}))
    assert trained_follow(tmp_path) == (True, None)
    assert follow_mismatch(tmp_path, None) is None
    why = follow_mismatch(tmp_path, "abc")
    assert why and "trained on the local model with no follow adapter" in why
    assert "this model runs with follow adapter abc" in why
    (tmp_path / "training.json").unlink()
    (tmp_path / "c3po.json").write_text(json.dumps({FOLLOW_FIELD: "abc"}))  # a C3PO adapter
    assert trained_follow(tmp_path) == (True, "abc") and follow_mismatch(tmp_path, "abc") is None


def trained_user(
    home: Path, tiny_dir: Path, follow: Path, user: str = "ana"
) -> tuple[PreferenceLayer, Path]:
    """The layer, and ``user``'s adapter trained on the tiny model with ``follow`` merged
    (recorded as the packaged model's, as a real run on it would be)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    layer = PreferenceLayer.open(home, llm="fake", embedder="hash", follow_adapter=str(follow))
    for i in range(3):
        layer.learn_from_labels(user, f"Greet team {i}", "Hello team.", "YO!!! team")
    model = _merge(AutoModelForCausalLM.from_pretrained(tiny_dir), str(follow))
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    cfg = AdapterConfig(**{**TINY.__dict__, "follow_adapter": str(follow)})
    train_user_adapter(layer.store, home, user, cfg, model=model, tokenizer=tokenizer)
    return layer, Path(layer.adapter_status(user)["path"])


def test_an_adapter_is_served_only_on_its_own_weights(
    persona_home: Path, tiny_dir: Path, follows: Any
) -> None:
    f1, f2 = follows
    layer, folder = trained_user(persona_home, tiny_dir, f1)
    record = read_record(persona_home, "ana")
    assert record and record[FOLLOW_FIELD] == adapter_digest(f1)
    assert record["base"] == f"packaged-smollm2+follow={adapter_digest(f1)}"
    status = layer.adapter_status("ana")
    assert status["stale"] is False and status["unfit"] is None

    def local(follow: Path) -> LocalChatModel:
        model = LocalChatModel(model_dir=str(tiny_dir), follow_adapter=str(follow))
        return model.model_copy(update={"max_new_tokens": 4, "dtype": "float32"})

    fits, other = local(f1), local(f2)
    assert fits.adapter_mismatch(folder) is None
    expected = fits.invoke("Greet the team", adapter=str(folder)).text
    runnable = layer.as_runnable(fits, mode="adapter")
    config: Any = {"configurable": {"user_id": "ana"}}
    reply = runnable.invoke("Greet the team", config=config)
    assert reply.response_metadata["persona"]["adapter"] and reply.text == expected

    why = other.adapter_mismatch(folder)
    assert why and f"follow adapter {adapter_digest(f1)}" in why
    with pytest.raises(ModelError, match="retrain it on this model"):
        other.invoke("Greet the team", adapter=str(folder))  # asked for by hand: refused
    reply = layer.as_runnable(other, mode="adapter").invoke("Greet the team", config=config)
    assert reply.response_metadata["persona"]["adapter"] is None  # skipped: the prompt alone
    prompt_only = layer.as_runnable(other, mode="prompt").invoke("Greet the team", config=config)
    assert reply.text == prompt_only.text
    layer.close()

    layer = PreferenceLayer.open(persona_home, llm="fake", embedder="hash", follow_adapter=str(f2))
    status = layer.adapter_status("ana")
    assert status["stale"] is True and status["unfit"] == why
    layer.close()


def test_the_pool_checks_only_when_it_knows_its_weights(tiny_dir: Path, follows: Any) -> None:
    from transformers import AutoModelForCausalLM

    f1, _ = follows
    user = random_lora(tiny_dir, tiny_dir.parent / "user-x", 3)
    (user / "training.json").write_text(json.dumps({FOLLOW_FIELD: adapter_digest(f1)}))
    base = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    with AdapterPool(base).using([str(user)]) as (_, names):  # the follow adapter is unknown
        assert names is not None
    with pytest.raises(ModelError, match="with no follow adapter"):
        with AdapterPool(base, follow=None).using([str(user)]):
            pass
    with AdapterPool(base, follow=adapter_digest(f1)).using([str(user)]) as (_, names):
        assert names is not None


def test_train_adapters_retrains_an_adapter_made_for_other_weights(
    persona_home: Path, tiny_dir: Path, follows: Any
) -> None:
    f1, f2 = follows
    layer, _ = trained_user(persona_home, tiny_dir, f1)
    store, home = layer.store, persona_home
    same = AdapterConfig(follow_adapter=str(f1), constraint_prompts=1)  # as trained
    [job] = batch.plan(store, home, ["ana"], resume=True, config=same)
    assert (job.train, job.reason) == (False, "up to date")
    [job] = batch.plan(
        store, home, ["ana"], resume=True, config=replace(same, follow_adapter=str(f2))
    )
    assert (job.train, job.reason) == (True, "stale: trained for another follow adapter")
    layer.close()


def test_the_command_trains_for_the_follow_adapter_it_is_given(
    persona_home: Path, tiny_dir: Path, follows: Any
) -> None:
    from typer.testing import CliRunner

    from persona.cli import app

    f1, f2 = follows
    trained_user(persona_home, tiny_dir, f1)[0].close()
    base = ["--path", str(persona_home), "train-adapters", "--users", "ana", "--dry-run"]
    runner = CliRunner()
    result = runner.invoke(app, [*base, "--resume", "--follow-adapter-dir", str(f2)])
    assert result.exit_code == 0, result.output
    assert "train ana  (3 signals; stale: trained for another follow adapter)" in result.output
    result = runner.invoke(app, [*base, "--follow-adapter-dir", str(f2), "--no-follow-adapter"])
    assert result.exit_code == 1 and "contradict each other" in result.output
