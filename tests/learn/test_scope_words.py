"""The feedback's own scope words: the English shapes a scope is stated in, the words a request
must touch, and how the scope model uses them (on the hash embedder: a word matches only
itself, so the figures are exact)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from persona.learn.c3po import scope_model_for
from persona.learn.c3po_data import DatasetBuilder, DatasetConfig
from persona.learn.scope import VERSION, ScopeModel
from persona.learn.scope_words import (
    WordVectors,
    facets,
    request_words,
    scope_facets,
    scope_phrases,
)
from persona.store.embed import HashEmbedder


@pytest.mark.parametrize(
    ("feedback", "phrases"),
    [
        # a trailing clause
        ("Don't use emojis when drafting emails to my boss.", ["drafting emails to my boss"]),
        ("Never use passive voice in lab reports.", ["lab reports"]),
        # a leading clause, with the asking words dropped
        ("Whenever I ask for recipes, give metric units.", ["recipes"]),
        ("For grant proposals, stress community impact.", ["grant proposals"]),
        # the subject of a rule, or a label before a colon
        ("Cover letters should never mention salary.", ["Cover letters"]),
        ("Birthday cards: keep them short.", ["Birthday cards"]),
        # the object of a verb acting on the whole answer, cut where a manner starts
        ("Please keep product descriptions under 100 words.", ["product descriptions"]),
        (
            "Format invoices for my freelance work as tables.",
            ["my freelance work", "invoices for my freelance work"],
        ),
        # the target of "add ... to"
        ("Add a joke to toasts for my brother.", ["my brother", "toasts for my brother"]),
        # quoted text is content, a manner is not a scope, and a rule may name no scope
        ("Start every reply to tickets with 'Hi, in short'.", ["every reply to tickets"]),
        ("Haiku you write for me should be in all lowercase.", ["Haiku you write for me"]),
        ("Be more concise.", []),
        ("Keep your answers short.", []),
    ],
)
def test_scope_phrases_read_the_common_shapes(feedback: str, phrases: list[str]) -> None:
    assert scope_phrases(feedback) == phrases


def test_facets_are_the_content_words() -> None:
    assert facets("drafting emails to my boss") == ["emails", "boss"]
    assert facets("my kids' party for my daughter's class") == [
        "kids",
        "party",
        "daughter",
        "class",
    ]
    assert facets("the ones I ask you for") == ["ones"]
    # a feedback naming no scope falls back to its own words; an LLM's phrase comes first
    assert scope_facets("Be more concise.") == ["concise"]
    assert scope_facets("Be more concise.", ["status reports"]) == ["status", "reports"]
    assert scope_facets("No emojis in emails to my boss.", ["ignored"]) == ["emails", "boss"]


def test_request_words_are_content_words_once_and_bounded() -> None:
    assert request_words("Email my team lead today, my lead's idea") == [
        "email",
        "team",
        "lead",
        "today",
        "idea",
    ]
    assert len(request_words(" ".join(f"word{i}" for i in range(500)))) == 64
    assert request_words("") == [] and request_words("to my the") == []


def _model(feedback: str) -> ScopeModel:
    data, _ = DatasetBuilder(None, DatasetConfig(generate=False)).build(feedback)
    return scope_model_for(data, HashEmbedder())


def test_a_request_must_touch_every_scope_word() -> None:
    model = _model("Don't use emojis when drafting emails to my boss.")
    assert model.facets == ["emails", "boss"]
    words = WordVectors(HashEmbedder())

    def match(text: str) -> float:
        return model.facet_match(words.embed(request_words(text)))

    assert match("Draft emails to my boss about Friday") == pytest.approx(1.0, abs=1e-3)
    assert match("Text my boss that I am late") == pytest.approx(0.5, abs=0.05)
    assert match("Write emails to my sister") == pytest.approx(0.5, abs=0.05)
    assert match("What is the capital of Peru") < 0.3
    assert model.facet_match(None) == 0.0  # no request words: the feature is off
    q = HashEmbedder().embed(["Text my boss that I am late"])[0]
    decision = model.decide(q, words.embed(request_words("Text my boss that I am late")))
    assert "scope words emails, boss matched 0.5" in decision.reason


def test_stored_scope_models_round_trip_and_old_ones_are_refused() -> None:
    model = _model("Keep tweets for my bakery under 40 words.")
    data = model.to_json()
    assert data["version"] == VERSION and data["facets"] == model.facets
    again = ScopeModel.from_json(data)
    q = HashEmbedder().embed(["a tweet about croissants"])[0]
    words = HashEmbedder().embed(request_words("a tweet about croissants"))
    assert again.probability(q, words) == pytest.approx(model.probability(q, words), abs=1e-3)
    with pytest.raises(ValueError, match="version 2"):
        ScopeModel.from_json({**data, "version": 2})


def test_word_vectors_cache_is_bounded_and_thread_safe() -> None:
    calls: list[int] = []

    class Counting(HashEmbedder):
        def embed(self, texts: list[str]) -> np.ndarray:
            calls.append(len(texts))
            return super().embed(texts)

    words = WordVectors(Counting(), capacity=50)
    first = words.embed(["email", "boss", "email"])
    assert calls == [2] and np.allclose(first[0], first[2])
    words.embed(["boss", "email"])
    assert calls == [2]  # both cached
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(40):
                got = words.embed([f"w{k}-{i}", "email"])
                assert got.shape == (2, HashEmbedder().dim)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(words._vecs) <= 50
    assert words.embed([]).shape == (0, HashEmbedder().dim)
