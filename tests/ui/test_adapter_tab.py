"""The Adapter tab: status in words, the training curves, "Train now" in the background, and
the prompt/adapter/both switch reaching the chat's runnable and its "why" notes.

One adapter is trained for real on the tiny random Llama (a few seconds) and shared by the
module; the layer serves adapters by name, so the fake chat model is asked for it (``model=``)
and the routing is visible without loading weights to answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from persona import PreferenceLayer
from persona.assistant import Assistant
from persona.store.embed import HashEmbedder
from persona.types import Conditioning
from persona.ui.adapter import NO_ADAPTER, NOTHING, Trainer, load_adapter, mode_note, train_now
from persona.ui.chat import _prepare, request_messages, runnable_for, send
from persona.ui.common import escape_md
from persona.ui.pairs import candidates, pick
from persona.ui.why import why_markdown, why_note

USER = "alice"
PICKS = 6  # labeled pairs taught before training: one of them is kept aside to measure


def tiny(tiny_dir: Path) -> dict[str, Any]:
    return {"base": str(tiny_dir), "rank": 4, "alpha": 8, "max_steps": 2,
            "constraint_prompts": 1, "answer_tokens": 8}  # fmt: skip


def teach(layer: PreferenceLayer, user: str, n: int = PICKS) -> None:
    for i in range(n):
        layer.learn_from_labels(user, f"Greet team {i}", "Hello team.", "YO!!! team")


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path
) -> Iterator[tuple[PreferenceLayer, Any]]:
    """A layer where alice taught six picks and trained her adapter with "Train now"."""
    home = tmp_path_factory.mktemp("adapter-tab")
    llm = FakeListChatModel(responses=["bullet points"])
    with PreferenceLayer.open(home, llm=llm, embedder=HashEmbedder(64),
                              served_adapters=True) as layer:  # fmt: skip
        teach(layer, USER)
        trainer = Trainer(layer, tiny(tiny_dir))
        run, said = train_now(trainer, USER, notify=pytest.fail)
        assert run is not None and said.startswith("Training (1 of 2)")
        assert trainer.start(USER) is run  # a second click follows the run going
        assert run.done.wait(120), run.progress()
        yield layer, run


def test_training_runs_in_the_background_with_progress(trained) -> None:
    _, run = trained
    assert run.phase == "done", run.error
    assert run.answers >= 1 and run.steps == 2 and run.loss is not None
    assert run.progress().startswith("✅ Your adapter is trained (2 steps")


def test_status_and_plots_after_training(trained) -> None:
    layer, _ = trained
    panel = load_adapter(layer, USER)
    assert panel.ok and "**Your adapter is up to date.**" in panel.status
    assert f"from {PICKS} picks" in panel.status and "in 2 steps" in panel.status
    assert f"`{layer.adapter_status(USER)['data_version'][:8]}`" in panel.status
    assert "On 1 pair of yours kept aside from training" in panel.status
    losses = panel.losses
    assert losses is not None and list(losses.columns) == ["step", "loss", "term"]
    assert sorted(set(losses["step"])) == [1, 2]
    assert {"total", "preferred over not preferred"} <= set(losses["term"])
    record = layer.adapter_status(USER)["record"]
    first = record["losses"][0]
    total = losses[(losses["step"] == 1) & (losses["term"] == "total")]["loss"].item()
    assert total == pytest.approx(first["c3po/total"])
    assert panel.accuracy is not None
    assert list(panel.accuracy["measured"]) == ["before training", "after"]
    held = record["heldout"]
    assert list(panel.accuracy["accuracy"]) == [held["accuracy_before"], held["accuracy_after"]]


def test_status_before_training_and_for_someone_new(ui_layer) -> None:
    panel = load_adapter(ui_layer, "nobody")
    assert panel.ok and NO_ADAPTER in panel.status and NOTHING in panel.status
    assert panel.losses is not None and panel.losses.empty
    assert panel.accuracy is not None and panel.accuracy.empty
    ui_layer.add_preference("bea", "British spelling")
    panel = load_adapter(ui_layer, "bea ")  # names are normalised as everywhere in the app
    assert panel.status == NO_ADAPTER
    bad = load_adapter(ui_layer, "../x")
    assert not bad.ok and bad.status.startswith("⚠️ That name cannot be used")


def test_train_now_says_what_to_do_first(ui_layer) -> None:
    trainer = Trainer(ui_layer)  # the recipe's defaults: never reached
    said: list[str] = []
    run, status = train_now(trainer, "nobody", notify=said.append)
    assert run is None and said == [NOTHING] and status.startswith("⚠️ Teach persona something")
    ui_layer.add_preference("bea", "British spelling")  # typed by hand: nothing to train on
    run, status = train_now(trainer, "bea", notify=said.append)
    assert run is None and "edit an answer, give feedback" in status
    run, status = train_now(trainer, "", notify=said.append)
    assert run is None and "Type your name first" in status
    for text in said:
        assert "_" not in text and "layer." not in text and "Error" not in text


@pytest.mark.parametrize("junk", [None, 5, [], {"a": 1}, "   ", "../x", "a\x00b", "x" * 300])
def test_the_handlers_never_raise_and_speak_to_people(ui_layer, junk: Any) -> None:
    trainer = Trainer(ui_layer)
    said = [load_adapter(ui_layer, junk).status, train_now(trainer, junk)[1]]
    said.append(mode_note(ui_layer, junk, junk))
    for text in said:
        assert text and not re.search(r"\w_\w|Error|layer\.|Traceback|\w\(", text), text


def test_a_bad_recipe_option_fails_as_the_app_starts(ui_layer) -> None:
    with pytest.raises(Exception, match="unknown adapter option"):
        Trainer(ui_layer, {"rnak": 4})


def test_a_failed_training_says_why_in_plain_words(ui_layer, tiny_dir: Path) -> None:
    ui_layer.learn_from_edit("bea", "Greet the team", "YO team", "Hello team.")
    trainer = Trainer(ui_layer, {**tiny(tiny_dir), "base": str(tiny_dir / "missing")})
    run, _ = train_now(trainer, "bea", notify=pytest.fail)
    assert run is not None and run.done.wait(60)
    assert run.phase == "failed" and run.progress().startswith("⚠️ Training stopped: ")
    assert "What you taught persona is unchanged" in run.progress()


def test_the_status_says_stale_after_a_new_label_or_edit(trained, tiny_dir: Path) -> None:
    layer, _ = trained
    teach(layer, "carl", 1)
    trainer = Trainer(layer, tiny(tiny_dir))
    run, _ = train_now(trainer, "carl", notify=pytest.fail)
    assert run is not None and run.done.wait(120) and run.phase == "done", run.error
    assert "up to date" in load_adapter(layer, "carl").status
    layer.learn_from_labels("carl", "Greet Ana", "Hello Ana.", "YO ANA")
    panel = load_adapter(layer, "carl")
    assert "**Your adapter is out of date.**" in panel.status and "Train now" in panel.status
    layer.learn_from_edit("carl", "Greet Bo", "YO BO", "Hello Bo.")
    assert "out of date" in load_adapter(layer, "carl").status


def test_the_switch_reaches_the_runnable_and_the_why(trained) -> None:
    layer, _ = trained
    layer.add_preference(USER, "British spelling")
    assistant = Assistant(layer, "fake")  # echoes what reached it
    name = layer.condition(USER, "x").adapter
    assert name
    messages = request_messages("Chat", "Write about colour", [])
    seen = {}
    for mode in ("both", "prompt", "adapter"):
        assert runnable_for(assistant, mode).mode == mode
        prep = _prepare(assistant, USER, messages, mode)
        assert prep.routed == ({} if mode == "prompt" else {"model": name})
        turn = send(layer, assistant, USER, "Chat", "Write about colour", [], {},
                    notify=pytest.fail, adapter=mode)  # fmt: skip
        seen[mode] = (turn.history[1]["content"], turn.history[2], turn.status)
    answer, note, status = seen["both"]
    assert "British spelling" in answer and "and your adapter" in status
    assert f"yours ({escape_md(name)}), with your preferences" in note["content"]
    assert note["metadata"]["log"].endswith(", adapter")
    answer, note, status = seen["prompt"]
    assert "British spelling" in answer and "adapter" not in status
    assert "not used: “Prompt only” is chosen" in note["content"]
    answer, note, status = seen["adapter"]
    assert answer == "human: Write about colour" and "by your adapter alone" in status
    assert "alone" in note["content"] and "not put in the prompt" in note["content"]
    assert note["metadata"]["log"] == "adapter only"
    assert runnable_for(assistant, "nonsense").mode == "both"  # anything else: the default

    pair = candidates(layer, assistant, USER, "Chat", "Write about colour", [],
                      notify=pytest.fail, adapter="adapter")  # fmt: skip
    assert pair.a == "human: Write about colour"  # the adapter alone: no preference in it

    for mode, said in (("prompt", "not used: “Prompt only”"), ("adapter", "alone")):
        picked = pick(layer, USER, "A", "Write about colour", "", "Colour.", "Color.", [], {},
                      notify=pytest.fail, learn=False, adapter=mode)  # fmt: skip
        assert said in picked.history[-1]["content"]

    teach(layer, "dora", 1)  # no adapter trained
    turn = send(layer, assistant, "dora", "Chat", "Hi", [], {}, notify=pytest.fail,
                adapter="adapter")  # fmt: skip
    assert "none: you have no trained adapter yet" in turn.history[2]["content"]


def test_the_why_says_when_the_model_cannot_load_an_adapter() -> None:
    cond = Conditioning(adapter="alice-1234")
    assert "cannot load adapters" in why_markdown(cond, mode="both", used=False)
    assert "yours (alice\\-1234)" in why_markdown(cond)  # used: whenever there is one
    assert "adapter" not in why_note(cond, mode="prompt", used=False)["metadata"]["log"]
    assert why_markdown(Conditioning()).endswith("**Adapter:** none (preferences in the prompt)")


def test_the_switch_says_what_it_does(trained, ui_layer) -> None:
    layer, _ = trained
    assert "adapter alone" in mode_note(layer, USER, "adapter")
    assert "no adapter" in mode_note(layer, USER, "prompt")
    assert "your preferences in the prompt and your adapter" in mode_note(layer, USER, "both")
    assert "no adapter yet" in mode_note(ui_layer, "nobody", "adapter")


def test_train_now_in_the_served_app(serve_app, auth_users, tiny_dir: Path, tmp_path: Path) -> None:
    """The button's endpoint: the signed-in user is trained, step by step, then shown."""
    from gradio_client import Client

    with PreferenceLayer.open(tmp_path / "served-adapter", llm="fake",
                              embedder=HashEmbedder(64)) as layer:  # fmt: skip
        teach(layer, "ana", 2)
        url = serve_app(layer, auth=True, adapter_config=tiny(tiny_dir)).local_url
        ben = Client(url, auth=("ben", auth_users["ben"]), verbose=False)
        progress, *_ = ben.predict(api_name="/train_adapter")
        assert progress.startswith("⚠️ Teach persona something first")
        ana = Client(url, auth=("ana", auth_users["ana"]), verbose=False)
        job = ana.submit(api_name="/train_adapter")
        progress, info, losses, _ = job.result(timeout=120)
        said = [out[0] for out in job.outputs()]
        assert progress.startswith("✅ Your adapter is trained") and "up to date" in info
        assert any(s.startswith("Training (") for s in said), said
        assert layer.adapter_status("ana")["trained"] and "ben" not in layer.users()
        assert losses["columns"] == ["step", "loss", "term"] and losses["data"]  # the curve
