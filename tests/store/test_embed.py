from __future__ import annotations

import numpy as np
import pytest

from persona.errors import InvalidInputError
from persona.store.embed import Embedder, HashEmbedder, MiniLMEmbedder, load_embedder


def test_hash_embedder_is_deterministic_normalized_and_lexical() -> None:
    e = HashEmbedder(dim=128)
    a, b, c = e.embed(["use bullet points", "use bullet points", "the weather in Paris"])
    assert isinstance(e, Embedder)
    np.testing.assert_array_equal(a, b)
    assert np.linalg.norm(a) == pytest.approx(1.0)
    near = e.embed(["please use bullet points in summaries"])[0]
    assert float(near @ a) > float(c @ a)
    assert HashEmbedder(dim=128).embed(["use bullet points"])[0].tolist() == a.tolist()


def test_load_embedder_specs() -> None:
    assert load_embedder("hash:32").dim == 32
    assert isinstance(load_embedder(None), MiniLMEmbedder)
    with pytest.raises(InvalidInputError, match="'bert'.*minilm"):
        load_embedder("bert")
    with pytest.raises(InvalidInputError, match="no .dim"):
        load_embedder(42)  # type: ignore[arg-type]


@pytest.mark.slow
def test_minilm_is_offline_384d_normalized_and_semantic() -> None:
    e = MiniLMEmbedder()
    vecs = e.embed(
        [
            "Summarize this news article about the election.",
            "Give me a summary of this report on the vote count.",
            "Write an email to my landlord about the broken heater.",
        ]
    )
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-4)
    assert float(vecs[0] @ vecs[1]) > float(vecs[0] @ vecs[2])
    assert e.embed([]).shape == (0, 384)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_minilm_fast_path_agrees_with_sentence_transformers(dtype: str) -> None:
    """The direct pipeline gives sentence-transformers' own vectors (cosine >= 0.99), in
    both dtypes (bfloat16 is forced even where the CPU only emulates it), batched or not."""
    texts = [
        "hi",
        "Write an email to my boss about the quarterly budget review and next month's trip",
        "Summarize this paper on protein folding for a general audience, in five bullets",
    ]
    fast = MiniLMEmbedder(dtype=dtype, batch_size=2)
    got = fast.embed(texts)
    reference = fast._load().encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    plain = MiniLMEmbedder(dtype="float32")._load().encode(texts, normalize_embeddings=True)
    cosines = (got * np.asarray(plain, dtype=np.float32)).sum(axis=1)
    assert got.shape == (3, 384) and got.dtype == np.float32
    assert cosines.min() >= 0.99
    np.testing.assert_allclose(got, np.asarray(reference, dtype=np.float32), atol=2e-2)
    np.testing.assert_allclose(fast.embed(texts[1:2])[0], got[1], atol=2e-2)  # alone = batched


def test_minilm_dtype_is_checked() -> None:
    with pytest.raises(InvalidInputError, match="dtype"):
        MiniLMEmbedder(dtype="int8")


def test_minilm_pooling_is_checked_and_named() -> None:
    with pytest.raises(InvalidInputError, match="pooling='words'.*'sentences'"):
        MiniLMEmbedder(pooling="words")
    sentences = load_embedder("minilm-sentences")
    assert isinstance(sentences, MiniLMEmbedder) and sentences.pooling == "sentences"
    # another name, so a store embedded with the other pooling is re-embedded when opened
    assert sentences.name != MiniLMEmbedder().name == MiniLMEmbedder.name


@pytest.mark.slow
def test_minilm_sentence_pooling_averages_the_sentences_and_lines() -> None:
    e = MiniLMEmbedder(dtype="float32", pooling="sentences")
    whole = MiniLMEmbedder(dtype="float32")
    text = "Met Dr. Lee at noon. Budget is fine!\nNext step: book the room"
    parts = ["Met Dr. Lee at noon.", "Budget is fine!", "Next step: book the room"]
    mean = whole.embed(parts).sum(axis=0)
    got = e.embed(["One plain sentence here.", text, ""])
    np.testing.assert_allclose(got[1], mean / np.linalg.norm(mean), atol=1e-5)
    np.testing.assert_allclose(got[0], whole.embed(["One plain sentence here."])[0], atol=1e-5)
    assert got.shape == (3, 384) and np.isfinite(got).all()  # an empty text still gets a vector
    np.testing.assert_allclose(e.embed([text])[0], got[1], atol=1e-5)  # alone = batched
