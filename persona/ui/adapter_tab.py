"""The Adapter tab's layout and wiring (its handlers are in ``adapter.py``)."""

from collections.abc import Callable
from typing import Any

from persona.ui.adapter import LOSS_TERMS, SWITCH, Trainer, load_adapter, mode_note, train_now

POLL_S = 0.5  # how often the page hears how a training goes
COLORS = ("#ea580c", "#2563eb", "#16a34a", "#9333ea")  # one per part of the loss


def adapter_tab(
    layer: Any,
    who: Callable[[Any, Any], Any],
    user: Any,
    page: Any,
    config: dict[str, Any] | None = None,
) -> Any:
    """Build the tab's components (inside ``with gr.Tab(...) as page``) and wire their events;
    returns the prompt/adapter/both switch, which the chat reads with every message.

    ``who(request, name)`` gives the user id (the signed-in one with auth); ``user`` is the
    app's applied-name state; ``config``: the adapter recipe's options for
    :meth:`~persona.PreferenceLayer.train_adapter` (None: its defaults).
    """
    import gradio as gr

    trainer = Trainer(layer, config)
    info = gr.Markdown("", elem_id="adapter-status")
    switch = gr.Radio(
        SWITCH,
        value="both",
        label="What shapes the chat's answers",
        info="Applies to your next message in this window.",
        elem_id="adapter-mode",
    )
    with gr.Row(equal_height=True):
        train = gr.Button("Train now", variant="primary", scale=0, min_width=160,
                          elem_id="adapter-train")  # fmt: skip
        progress = gr.Markdown("", elem_id="adapter-progress")
    with gr.Row():
        losses = gr.LinePlot(
            x="step",
            y="loss",
            color="term",
            title="Training loss per step (lower is better)",
            x_title="step",
            y_title="loss",
            color_title="part of the loss",
            color_map=dict(zip(LOSS_TERMS.values(), COLORS, strict=False)),
            height=280,
            elem_id="adapter-loss",
        )
        accuracy = gr.BarPlot(
            x="measured",
            y="accuracy",
            title="Your choice preferred, on pairs kept aside",
            x_title="when measured",
            y_title="share of pairs",
            y_lim=[0, 1],
            sort=["before training", "after"],
            height=280,
            elem_id="adapter-accuracy",
        )

    def keep(frame: Any) -> Any:
        """A plot's new value: None leaves it; an empty frame clears it (sent as is, it would
        stop Gradio 6.31 from drawing the lines of every later frame)."""
        if frame is None:
            return gr.skip()
        return None if frame.empty else frame

    def shown(uid: str, request: gr.Request, idle: Any) -> tuple[Any, ...]:
        me = who(request, uid)
        panel = load_adapter(layer, me)
        run = trainer.current(" ".join(str(me).split()))
        going = (run.progress() + " Press **Train now** to follow it.") if run else idle
        return panel.status, keep(panel.losses), keep(panel.accuracy), going

    def on_show(uid: str, request: gr.Request) -> tuple[Any, ...]:
        return shown(uid, request, gr.skip())  # a click on Train now may be answered first

    def on_user(uid: str, request: gr.Request) -> tuple[Any, ...]:
        return shown(uid, request, "")  # another person: the last one's news goes

    def on_train(uid: str, request: gr.Request):
        me = who(request, uid)
        run, said = train_now(trainer, me)
        yield said, gr.skip(), gr.skip(), gr.skip()
        if run is None:
            return
        while not run.done.wait(POLL_S):
            yield run.progress(), gr.skip(), gr.skip(), gr.skip()
        panel = load_adapter(layer, me)
        yield run.progress(), panel.status, keep(panel.losses), keep(panel.accuracy)

    def on_switch(uid: str, mode: str, request: gr.Request) -> str:
        return mode_note(layer, who(request, uid), mode)

    outputs = [info, losses, accuracy, progress]
    page.select(on_show, [user], outputs, show_progress="hidden")
    user.change(on_user, [user], outputs, show_progress="hidden")
    # Polls for minutes: its own queue, never in the way of the chat's or the learning's.
    train.click(on_train, [user], [progress, info, losses, accuracy], api_name="train_adapter",
                concurrency_id="adapter", concurrency_limit=None,
                show_progress="minimal")  # fmt: skip
    switch.change(on_switch, [user, switch], progress, show_progress="hidden")
    return switch
