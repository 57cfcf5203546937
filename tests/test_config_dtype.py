"""``$PERSONA_DTYPE`` overrides the local model's ``dtype="auto"``; a bad value is a clear error."""

from __future__ import annotations

import pytest

from persona.agents.models import LocalChatModel
from persona.config import env_dtype
from persona.errors import InvalidInputError


def test_env_dtype_overrides_auto_only(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.delenv("PERSONA_DTYPE", raising=False)
    assert env_dtype() == "auto"
    monkeypatch.setenv("PERSONA_DTYPE", " Float32 ")
    assert env_dtype() == "float32"
    auto = LocalChatModel(model_dir=str(tmp_path), follow_adapter=False, device="cpu")
    assert auto._weights()[1] == "float32"
    monkeypatch.setenv("PERSONA_DTYPE", "bfloat16")
    assert auto._weights()[1] == "bfloat16"
    pinned = LocalChatModel(
        model_dir=str(tmp_path), follow_adapter=False, device="cpu", dtype="float32"
    )
    assert pinned._weights()[1] == "float32"  # an explicit dtype wins


def test_a_bad_env_dtype_names_the_value_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONA_DTYPE", "fp8")
    with pytest.raises(InvalidInputError, match=r"PERSONA_DTYPE='fp8'.*'float32'"):
        env_dtype()
