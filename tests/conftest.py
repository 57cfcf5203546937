"""Every test gets its own PERSONA_HOME, a deterministic embedder and fake chat models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from persona import PreferenceLayer
from persona.agents.models import LocalChatModel
from persona.store.embed import HashEmbedder


@pytest.fixture(scope="session")
def shared_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of converted models for the whole run (``$PERSONA_MODELS``): the first test
    that needs the local model converts it (~30 s), the rest find it."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def persona_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_models: Path) -> Path:
    home = tmp_path / "persona-home"
    monkeypatch.setenv("PERSONA_HOME", str(home))
    monkeypatch.setenv("PERSONA_MODELS", str(shared_models))
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


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised two-layer Llama with SmolLM2's tokenizer (chat template)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from persona.agents.models import local_gguf

    gguf = local_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_local(tiny_dir: Path) -> LocalChatModel:
    """The tiny Llama as a float32 ``LocalChatModel`` with no follow adapter and no n-gram
    blocking; tests set what they exercise with ``model_copy(update=...)``."""
    return LocalChatModel(
        model_dir=str(tiny_dir), follow_adapter=False, dtype="float32", no_repeat_ngram_size=0
    )
