"""The PRELUDE environment: tasks, sources, latent preferences, corpus and round sampling."""

from __future__ import annotations

from collections import Counter
from importlib import resources

import pytest

from persona.bench.env import (
    EMAIL_TEMPLATE,
    SOURCES,
    SUMMARIZE_TEMPLATE,
    TASKS,
    Context,
    get_source,
    instruction,
    latent,
    latent_preferences,
    load_corpus,
    sample_rounds,
)
from persona.errors import InvalidInputError


def test_tasks_and_sources() -> None:
    assert TASKS == ("summarization", "email")
    for task in TASKS:
        sources = SOURCES[task]
        assert len(sources) >= 4
        names = [a.name for s in sources.values() for a in s.atoms]
        assert len(names) == len(set(names)), f"{task}: an atom is shared by two sources"
        for name, source in sources.items():
            assert source.name == name
            assert 2 <= len(source.atoms) <= 4
            assert source.latent == "; ".join(a.description for a in source.atoms)
        assert len(set(latent_preferences(task).values())) == len(sources)


@pytest.mark.parametrize("task", TASKS)
def test_corpus_shape(task: str) -> None:
    corpus = load_corpus(task)
    assert len(corpus) >= 40
    per_source = Counter(c.source for c in corpus)
    assert set(per_source) == set(SOURCES[task])
    assert min(per_source.values()) >= 10
    assert max(per_source.values()) - min(per_source.values()) <= 2  # spread evenly
    for ctx in corpus:
        assert ctx.task == task
        assert 80 <= len(ctx.text.split()) <= 220, ctx.doc_id
        assert ctx.doc_id
    assert len({c.doc_id for c in corpus}) == len(corpus)
    assert len({c.text for c in corpus}) == len(corpus)


def test_ids_unique_across_tasks_and_corpus_is_packaged() -> None:
    ids = [c.doc_id for task in TASKS for c in load_corpus(task)]
    assert len(ids) == len(set(ids))
    folder = resources.files("persona.bench").joinpath("corpus")
    assert {f"{t}.json" for t in TASKS} <= {p.name for p in folder.iterdir()}


def test_load_corpus_returns_a_fresh_list() -> None:
    first = load_corpus("email")
    first.clear()
    assert load_corpus("email")


def test_sample_rounds_is_deterministic() -> None:
    assert sample_rounds("summarization", 30, seed=3) == sample_rounds("summarization", 30, seed=3)
    assert sample_rounds("summarization", 30, seed=3) != sample_rounds("summarization", 30, seed=4)
    assert sample_rounds("email", 0, seed=1) == []


@pytest.mark.parametrize("task", TASKS)
def test_sample_rounds_covers_sources_uniformly(task: str) -> None:
    rounds = sample_rounds(task, 400, seed=0)
    assert len(rounds) == 400
    counts = Counter(c.source for c in rounds)
    assert set(counts) == set(SOURCES[task])
    assert min(counts.values()) >= 400 / len(SOURCES[task]) * 0.6
    assert len({c.doc_id for c in rounds}) > 30  # documents are drawn too, not just sources


def test_instruction_templates() -> None:
    doc = load_corpus("summarization")[0]
    assert instruction(doc) == f"{doc.text}\n\nSummarize the above text."
    assert instruction(doc) == SUMMARIZE_TEMPLATE.format(text=doc.text)
    notes = load_corpus("email")[0]
    assert instruction(notes) == f"{notes.text}\n\nWrite an email based on the above notes."
    assert instruction(notes) == EMAIL_TEMPLATE.format(text=notes.text)


def test_latent_of_a_context() -> None:
    ctx = Context("email", "review", "Some review text.")
    assert latent(ctx) == SOURCES["email"]["review"].latent
    assert "Dear" in latent(ctx)


def test_unknown_task_or_source_is_named() -> None:
    with pytest.raises(InvalidInputError, match=r"'poetry'.*'summarization', 'email'"):
        load_corpus("poetry")
    with pytest.raises(InvalidInputError, match="'poetry'"):
        sample_rounds("poetry", 3)
    with pytest.raises(InvalidInputError, match="'poetry'"):
        latent_preferences("poetry")
    with pytest.raises(InvalidInputError, match=r"'tweet'.*'news'"):
        get_source("summarization", "tweet")
    with pytest.raises(InvalidInputError, match="'tweet'"):
        latent(Context("summarization", "tweet", "text"))
    with pytest.raises(InvalidInputError, match="'poetry'"):
        instruction(Context("poetry", "news", "text"))
    with pytest.raises(ValueError, match="rounds"):
        sample_rounds("email", -1)
