"""The follow adapter is on by default and one option turns it off, everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from persona import PreferenceLayer
from persona.agents import models
from persona.agents.models import LocalChatModel, load_chat_model
from persona.cli import app
from persona.errors import InvalidInputError
from persona.store.embed import HashEmbedder


@pytest.fixture
def no_conversion(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The local model is built (not loaded): skip the GGUF conversion."""
    monkeypatch.setattr(models, "ensure_local_model", lambda home=None: tmp_path / "model")


def test_local_model_has_the_adapter_by_default(no_conversion: None) -> None:
    model = load_chat_model("local")
    assert isinstance(model, LocalChatModel) and model.follow_adapter is True
    assert LocalChatModel().follow_adapter is True
    off = load_chat_model("local", follow_adapter=False)
    assert isinstance(off, LocalChatModel) and off.follow_adapter is False


@pytest.mark.parametrize("choice", [True, False])
def test_layer_option_reaches_the_local_model(
    no_conversion: None, persona_home: Path, choice: bool
) -> None:
    with PreferenceLayer.open(
        persona_home, llm="local", embedder=HashEmbedder(dim=16), follow_adapter=choice
    ) as layer:
        llm = layer.llm
        assert isinstance(llm, LocalChatModel) and llm.follow_adapter is choice
        runnable = layer.as_runnable("local")
        assert runnable.model.follow_adapter is choice  # type: ignore[attr-defined]


def test_layer_option_is_checked(persona_home: Path) -> None:
    with pytest.raises(InvalidInputError, match="follow_adapter"):
        PreferenceLayer.open(persona_home, embedder=HashEmbedder(dim=16), follow_adapter=1.5)


@pytest.mark.parametrize(
    "command", [["ui", "--help"], ["bench", "edits", "--help"], ["train", "follow", "--help"]]
)
def test_cli_offers_the_switch(command: list[str]) -> None:
    result = CliRunner().invoke(app, command, env={"COLUMNS": "200"})
    assert result.exit_code == 0
    if command[0] != "train":
        assert "--no-follow-adapter" in result.output
    else:
        assert "--out" in result.output
