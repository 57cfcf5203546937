"""Every test gets its own PERSONA_HOME, a deterministic embedder and fake chat models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from persona import PreferenceLayer
from persona.store.embed import HashEmbedder


@pytest.fixture(autouse=True)
def persona_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "persona-home"
    monkeypatch.setenv("PERSONA_HOME", str(home))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder(dim=64)


@pytest.fixture
def scripted_llm() -> FakeListChatModel:
    """Answers CIPHER's questions with fixed phrases, in turn."""
    return FakeListChatModel(responses=["bullet points", "short sentences", "a TL;DR first"])


@pytest.fixture
def layer(
    persona_home: Path, embedder: HashEmbedder, scripted_llm: FakeListChatModel
) -> Iterator[PreferenceLayer]:
    with PreferenceLayer.open(persona_home, llm=scripted_llm, embedder=embedder) as lyr:
        yield lyr
