"""``persona bench follow`` on a tiny model: every measurement, and reusing the base's figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from persona.errors import InvalidInputError, LearningError
from persona.follow.data import is_eval, load_inputs
from persona.follow.evaluate import Model, eval_atoms, run_follow_bench
from persona.follow.train import load_base
from persona.store.embed import HashEmbedder


@pytest.fixture(scope="module")
def models(tiny_dir: Path) -> list[Model]:
    return [Model(name, *load_base(str(tiny_dir))) for name in ("base", "adapter")]


def _run(models: list[Model], counted: list[int], **kw: object) -> dict:
    items = [i for i in load_inputs() if is_eval(i)][:2]  # a document and an email's notes
    items += [i for i in load_inputs() if is_eval(i) and i.kind == "notes"][:1]
    return run_follow_bench(
        models, HashEmbedder(), inputs=items, max_tokens=4, tick=counted.append, **kw
    )


def test_the_bench_measures_every_model_then_reuses_the_base(models: list[Model]) -> None:
    first: list[int] = []
    result = _run(models, first)
    assert set(result["models"]) == {"base", "adapter"}
    for block in result["models"].values():
        assert set(block["satisfaction"]) == {"train", "held_out"}
        assert 0 <= block["inference_accuracy"]["held_out"] <= 1
    again: list[int] = []
    reused = _run(models, again, previous=result, reuse=("base",))
    base = reused["models"]["base"]
    assert {k: v for k, v in base.items() if k != "reused_from"} == result["models"]["base"]
    assert "reused_from" in base and "reused_from" not in reused["models"]["adapter"]
    # The base answered only its plain requests (3), not every case and inference prompt.
    assert sum(first) - sum(again) > 3 * 10


def test_reuse_refuses_a_result_measured_otherwise(models: list[Model]) -> None:
    counted: list[int] = []
    result = _run(models[:1], counted)
    with pytest.raises(InvalidInputError, match="max-tokens"):
        run_follow_bench(
            models[:1], HashEmbedder(), inputs=[], max_tokens=8, previous=result, reuse=("base",)
        )
    with pytest.raises(InvalidInputError, match="no figures"):
        _run(models, counted, previous=result, reuse=("adapter",))
    assert result["edit_facts"] is False
    with pytest.raises(InvalidInputError, match="edit-facts"):  # another inference prompt
        _run(models, counted, previous=result, reuse=("base",), edit_facts=True)
    older = {k: v for k, v in result.items() if k != "edit_facts"}  # before the facts: none
    again = _run(models[:1], counted, previous=older, reuse=("base",))
    assert "reused_from" in again["models"]["base"]


def test_a_guided_model_is_measured_on_the_same_cases(models: list[Model]) -> None:
    counted: list[int] = []
    guided = Model("adapter+guidance 2", models[1].model, models[1].tokenizer, guidance=2.0)
    result = _run([models[0], guided], counted)
    block = result["models"]["adapter+guidance 2"]
    assert block["guidance_scale"] == 2.0 and result["models"]["base"]["guidance_scale"] == 1.0
    assert block["inference_accuracy"] is None  # its prompt states no preference to guide to
    for name in ("base", "adapter+guidance 2"):
        answers = result["models"][name]["stated_answers"]
        assert 0 <= answers["short"] <= 1 and len(answers["short_samples"]) <= 8
        real = result["models"][name]["satisfied_by_a_real_answer"]
        assert all(real[k] <= result["models"][name]["satisfaction"][k] for k in real)
        kept = result["models"][name]["answers"]  # every stated answer, to score again later
        atoms = {a.name: a for s in eval_atoms().values() for a in s}
        assert kept and all(atoms[row["atom"]].check(row["answer"]) == row["ok"] for row in kept)
        held_out = [row["ok"] for row in kept if row["split"] == "held_out"]
        assert result["models"][name]["satisfaction"]["held_out"] == round(
            sum(held_out) / len(held_out), 3
        )


def test_a_reranked_model_answers_as_the_local_model_reranks(tiny_dir: Path) -> None:
    """The bench's reranked answers are the layer's: LocalChatModel(rerank=N) given the
    request without its preference as ``negative_messages``."""
    from langchain_core.messages import HumanMessage

    from persona.agents.models import LocalChatModel
    from persona.follow.data import follow_prompt
    from persona.follow.generate import generate

    local = LocalChatModel(
        model_dir=str(tiny_dir), follow_adapter=False, dtype="float32", rerank=3, max_new_tokens=6
    )
    model, tokenizer = local.load()
    requests = ["Summarize: the river rose overnight.", "Write an email about the new desks."]
    prompts = [follow_prompt(r, "Use bullet points.") for r in requests]
    got = generate(model, tokenizer, prompts, max_new_tokens=6, negatives=requests, rerank=3)
    want = [
        local.invoke([HumanMessage(p)], negative_messages=[HumanMessage(r)]).text.strip()
        for p, r in zip(prompts, requests, strict=True)
    ]
    assert got == want
    greedy = generate(model, tokenizer, prompts, max_new_tokens=6)
    assert greedy == [
        local.model_copy(update={"rerank": 1}).invoke(p).text.strip() for p in prompts
    ]
    with pytest.raises(ValueError, match="negatives"):
        generate(model, tokenizer, prompts, max_new_tokens=6, rerank=3)
    # with guidance too, every candidate is guided, as the layer combines the two
    both = local.model_copy(update={"guidance_scale": 2.0})
    reranked = got
    got = generate(
        model, tokenizer, prompts, max_new_tokens=6, negatives=requests, rerank=3,
        guidance_scale=2.0,
    )  # fmt: skip
    want = [
        both.invoke([HumanMessage(p)], negative_messages=[HumanMessage(r)]).text.strip()
        for p, r in zip(prompts, requests, strict=True)
    ]
    assert got == want and got != reranked  # the guidance is applied, the same way
    # in the bench, only answers to a stated preference are reranked
    counted: list[int] = []
    ranked = Model("adapter+rerank 3", model, tokenizer, rerank=3)
    result = _run([Model("adapter", model, tokenizer), ranked], counted)
    block, own = result["models"]["adapter+rerank 3"], result["models"]["adapter"]
    assert block["rerank"] == 3 and own["rerank"] == 1
    assert block["inference_accuracy"] is None and own["inference_accuracy"] is not None
    assert block["plain"] == own["plain"]


def test_base_edits_are_the_benchs_inference_pairs(tiny_dir: Path) -> None:
    from persona.follow.evaluate import base_edits

    items, plain, sets, pairs = base_edits(str(tiny_dir))
    assert len(plain) == len(items) and all(is_eval(i) for i in items)
    assert {p[0] for p in pairs} <= set(sets) and pairs
    answers = {p[2] for p in pairs}
    assert answers <= set(plain)
    assert all(atom.edit(answer) == edited != answer for _, atom, answer, edited in pairs)


def test_plain_only_answers_the_plain_requests_and_nothing_else(models: list[Model]) -> None:
    counted: list[int] = []
    result = _run(models, counted, plain_only=True)
    assert sum(counted) == 2 * 3  # two models, three plain requests each
    assert result["plain_only"] is True
    for block in result["models"].values():
        assert set(block) == {"plain", "plain_answers"} and len(block["plain_answers"]) == 3
        assert block["plain"]["mean_words"] == round(
            sum(len(a.split()) for a in block["plain_answers"]) / 3, 1
        )
    assert len(result["plain_samples"]) == 3
    with pytest.raises(InvalidInputError, match="plain answers only"):
        _run(models, [], previous=result, reuse=("base",))
    with pytest.raises(InvalidInputError, match="nothing to reuse"):
        _run(models, [], plain_only=True, previous=result, reuse=("base",))


MODES = ("llm", "facts", "both")
# The model's answer to CIPHER's inference prompt: a phrase, one the revision contradicts
# (the edits below add list items or a question), and junk that names nothing.
RAWS = ("Use short sentences.", "No lists and no questions.", "...")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("raw", RAWS)
@pytest.mark.parametrize("atom_name", ["numbered", "bullets", "question_end", "formal"])
def test_the_bench_stores_what_cipher_would(mode: str, raw: str, atom_name: str) -> None:
    """The bench scores, for each mode, the phrase Cipher.infer itself returns for that
    model answer: the same phrase, or nothing where CIPHER raises and stores nothing."""
    from persona.agents.fakes import ScriptedChatModel
    from persona.bench import atoms as A
    from persona.follow.evaluate import stored
    from persona.learn.cipher import Cipher, CipherConfig

    output = (
        "The council approved the bike lanes on Monday. Work starts in May and ends in "
        "October. Residents can comment online until Friday."
    )
    edited = A.ATOMS[atom_name].edit(output)
    assert edited != output
    cipher = Cipher(ScriptedChatModel(responses=[raw]), CipherConfig(infer=mode))  # type: ignore[arg-type]
    try:
        want = cipher.infer(output, edited)
    except LearningError:
        want = ""
    assert stored(mode, raw, output, edited) == want


def test_inference_only_scores_every_way_of_storing(models: list[Model]) -> None:
    counted: list[int] = []
    result = _run(models, counted, inference_only=True)
    assert result["inference_only"] is True
    pairs = sum(result["inference_pairs"].values())
    assert pairs and sum(counted) == 3 + 2 * pairs  # the base's plain answers, then phrases
    for block in result["models"].values():
        assert set(block["inference_by_mode"]) == {"phrase", *MODES}
        assert block["inference_accuracy"] == block["inference_by_mode"]["phrase"]["accuracy"]
        for scored in block["inference_by_mode"].values():
            assert all(v is None or 0 <= v <= 1 for v in scored["accuracy"].values())
            assert 0 <= scored["stored_nothing"] <= 1
    with pytest.raises(InvalidInputError, match="nothing to reuse"):
        _run(models, [], inference_only=True, previous=result, reuse=("base",))


def test_a_phrase_naming_the_atom_scores_right_and_junk_scores_wrong() -> None:
    from persona.follow.evaluate import _inference_pairs, score_inference
    from persona.follow.phrases import atom_type

    items = [i for i in load_inputs() if is_eval(i)][:3]
    sets = eval_atoms()
    answers = [
        "The plan was approved on Monday. Work starts in May. Residents can comment online."
    ] * len(items)
    pairs = _inference_pairs(items, sets, answers)
    types = {atom_type(a): a.description for s in sets.values() for a in s}
    named = score_inference(
        pairs, [atom.description for _, atom, _, _ in pairs], HashEmbedder(), types
    )
    assert named["inference_by_mode"]["phrase"]["accuracy"] == {"train": 1.0, "held_out": 1.0}
    junk = score_inference(pairs, ["..."] * len(pairs), HashEmbedder(), types)
    for mode in ("phrase", "llm"):
        assert junk["inference_by_mode"][mode]["stored_nothing"] == 1.0
        assert junk["inference_by_mode"][mode]["accuracy"] == {"train": 0.0, "held_out": 0.0}
    # The counted wishes need no model: an edit that changes something countable stores them.
    assert junk["inference_by_mode"]["facts"]["stored_nothing"] < 1.0
