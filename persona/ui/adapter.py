"""The Adapter tab's handlers: the person's adapter in words, its training curves, training it
in the background, and what shapes the chat's answers (prompt, adapter or both).

An adapter is a small LoRA fine-tuned on everything the person taught persona
(:meth:`persona.PreferenceLayer.train_adapter`). Training takes minutes on a CPU, so it runs in
a :class:`Trainer` thread (one at a time for the whole app); the tab polls its :class:`Run`.
Handlers are plain functions of the layer and never raise (see ``adapter_tab.py`` for the
layout).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from persona.errors import PersonaError, UnknownUserError
from persona.ui.chat import adapter_mode
from persona.ui.common import Notify, escape_md, failed, log, normalise_user, quiet

if TYPE_CHECKING:
    import pandas as pd

    from persona.layer import PreferenceLayer

#: The switch's choices (label, value): the value is ``PreferenceRunnable.mode``.
SWITCH = [
    ("Both: your preferences in the prompt, and your adapter", "both"),
    ("Prompt only: your preferences in the prompt, no adapter", "prompt"),
    ("Adapter only: your adapter, no preferences in the prompt", "adapter"),
]
LOSS_TERMS = {  # the record's loss columns, named for the plot's legend
    "c3po/total": "total",
    "c3po/dpo": "preferred over not preferred",
    "c3po/sft_near": "keep answers near your scope",
    "c3po/sft_out": "keep other answers unchanged",
}
NOTHING = (
    "Teach persona something first: edit an answer, give feedback in your words or pick "
    "between two candidates in the Chat tab. Then train your adapter here."
)
TRAIN_FAILED = (
    "something went wrong inside the app (the details are in its log). What you taught "
    "persona is unchanged and the chat keeps its current adapter; try again later, or tell "
    "whoever runs this app."
)
NO_ADAPTER = (
    "**No adapter yet.** Your preferences shape every answer through the prompt. **Train "
    "now** fine-tunes a small adapter of the model on what you taught persona (your edits, "
    "feedback and picks); on a laptop it takes a few minutes, and the chat stays usable."
)


def _when(ts: Any) -> str:
    ok = isinstance(ts, int | float) and math.isfinite(ts) and ts > 0
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ok else "an unknown date"


def _took(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _percent(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, int | float) and math.isfinite(value) else "—"


def _taught(rows: Any) -> str:
    """``3 edits, 1 feedback and 2 picks`` from the record's row counts."""
    rows = rows if isinstance(rows, dict) else {}
    words = {"edits": ("edit", "edits"), "feedback": ("feedback", "feedback"),
             "labels": ("pick", "picks")}  # fmt: skip
    parts = [
        f"{n} {one if n == 1 else many}"
        for key, (one, many) in words.items()
        if isinstance(n := rows.get(key), int) and n > 0
    ]
    if not parts:
        return "what you taught persona"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _part(record: dict[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def describe(status: dict[str, Any]) -> str:
    """The adapter's status for a person (Markdown): trained or not, when, from what, stale."""
    record = status.get("record")
    if not status.get("trained") or not isinstance(record, dict):
        return NO_ADAPTER
    version = str(status.get("trained_version") or "")[:8]
    seconds = _part(record, "seconds")
    took = sum(v for v in seconds.values() if isinstance(v, int | float))
    trained = (
        f"Trained on {_when(record.get('trained_at'))} from {_taught(record.get('rows'))} "
        f"(data version `{version}`), in {record.get('steps', '?')} steps ({_took(took)})."
    )
    if status.get("unfit"):
        head = (
            "**Your adapter was trained for another version of the assistant's model**, so "
            f"the chat answers without it for now. {trained} Press **Train now** to train it "
            "again for this one."
        )
    elif status.get("stale"):
        now = str(status.get("data_version") or "")[:8]
        head = (
            f"**Your adapter is out of date.** {trained} You have taught persona more since "
            f"(data version now `{now}`): press **Train now** to include it. Until then the "
            "chat keeps using this adapter."
        )
    else:
        head = f"**Your adapter is up to date.** {trained} It includes everything you taught."
    held = _part(record, "heldout")
    pairs = held.get("pairs")
    if isinstance(pairs, int) and pairs > 0 and held.get("accuracy_after") is not None:
        measure = (
            f"On {pairs} pair{'s' * (pairs != 1)} of yours kept aside from training, the model "
            f"preferred your choice {_percent(held.get('accuracy_before'))} of the time before "
            f"training and {_percent(held.get('accuracy_after'))} after."
        )
    else:
        measure = (
            "None of your pairs could be kept aside to measure it; teach persona more pairs "
            "(edits or picks) to get that measure."
        )
    return f"{head}\n\n{measure}"


def loss_frame(record: Any) -> pd.DataFrame:
    """The loss per step, one row per (step, term): what the line plot draws."""

    rows = []
    for log_row in record.get("losses", ()) if isinstance(record, dict) else ():
        step = log_row.get("step") if isinstance(log_row, dict) else None
        if not isinstance(step, int | float):
            continue
        for key, term in LOSS_TERMS.items():
            value = log_row.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                rows.append({"step": step, "loss": float(value), "term": term})
    return _frame(rows, {"step": "int64", "loss": "float64", "term": "str"})


def accuracy_frame(record: Any) -> pd.DataFrame:
    """Held-out pair accuracy before and after training (empty when nothing was held out)."""

    held = _part(record, "heldout") if isinstance(record, dict) else {}
    rows = []
    if isinstance(held.get("pairs"), int) and held["pairs"] > 0:
        for key, when in (("accuracy_before", "before training"), ("accuracy_after", "after")):
            value = held.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                rows.append({"measured": when, "accuracy": float(value)})
    return _frame(rows, {"measured": "str", "accuracy": "float64"})


def _frame(rows: list[dict[str, Any]], dtypes: dict[str, str]) -> pd.DataFrame:
    """Typed columns even when empty (an untyped one would make the plot's axis a list of
    names)."""
    import pandas as pd

    return pd.DataFrame(rows, columns=list(dtypes)).astype(dtypes)


class AdapterPanel(NamedTuple):
    status: str  # Markdown
    losses: pd.DataFrame | None  # None: leave the plot as it is
    accuracy: pd.DataFrame | None
    ok: bool = True


def load_adapter(layer: PreferenceLayer, user_id: Any, notify: Notify = quiet) -> AdapterPanel:
    """The person's adapter: its status in words and its training curves."""
    try:
        user = normalise_user(user_id)
        status = layer.adapter_status(user)
    except UnknownUserError:
        return AdapterPanel(f"{NO_ADAPTER}\n\n{NOTHING}", loss_frame(None), accuracy_frame(None))
    except Exception as err:
        return AdapterPanel(f"⚠️ {failed(err, notify)}", None, None, ok=False)
    record = status.get("record")
    return AdapterPanel(describe(status), loss_frame(record), accuracy_frame(record))


def mode_note(layer: PreferenceLayer, user_id: Any, mode: Any) -> str:
    """What the switch now does for this person, in one line."""
    chosen = adapter_mode(mode)
    try:
        trained = bool(layer.adapter_status(normalise_user(user_id))["trained"])
    except Exception:
        trained = False
    if chosen == "prompt":
        return "The chat now answers with your preferences in the prompt and no adapter."
    if not trained:
        return (
            "You have no adapter yet, so the chat keeps your preferences in the prompt; "
            "press **Train now** to train one."
        )
    if chosen == "adapter":
        return "The chat now answers with your adapter alone (no preferences in the prompt)."
    return "The chat now answers with your preferences in the prompt and your adapter."


# -- training in the background -------------------------------------------------------------
@dataclass
class Run:
    """One training of one person's adapter, as it goes (written by the trainer's thread)."""

    user: str
    phase: str = "waiting"  # waiting | answers | training | done | failed
    answers: int = 0
    steps: int = 0
    loss: float | None = None
    error: str = ""  # a plain-language message once failed
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)

    def progress(self) -> str:
        """Where the training is, for a person (Markdown)."""
        took = _took(time.monotonic() - self.started)
        if self.phase == "waiting":
            return f"Waiting for another adapter's training to finish ({took})…"
        if self.phase == "answers":
            return (
                f"Training (1 of 2): the model writes its own answers to learn against — "
                f"{self.answers} so far ({took})…"
            )
        if self.phase == "training":
            loss = f", loss {self.loss:.3f}" if self.loss is not None else ""
            return f"Training (2 of 2): step {self.steps}{loss} ({took})…"
        if self.phase == "done":
            return (
                f"✅ Your adapter is trained ({self.steps} steps, {took}). The chat uses it "
                "from your next message, unless “Prompt only” is chosen above."
            )
        return f"⚠️ Training stopped: {self.error}"


class Trainer:
    """Trains adapters in background threads, one at a time for the whole app (on a CPU two
    at once would each take twice as long and twice the memory); a person's second click
    follows the run already going."""

    def __init__(self, layer: PreferenceLayer, config: dict[str, Any] | None = None) -> None:
        from persona.adapters.train import AdapterConfig

        self.layer, self.config = layer, dict(config or {})
        AdapterConfig.of(self.config)  # a bad option fails as the app starts, not on a click
        self._runs: dict[str, Run] = {}
        self._lock = threading.Lock()  # guards _runs
        self._one = threading.Lock()  # held by the training thread that is running

    def current(self, user: str) -> Run | None:
        """The person's run going now, if any."""
        with self._lock:
            run = self._runs.get(user)
        return run if run is not None and not run.done.is_set() else None

    def start(self, user: str) -> Run:
        with self._lock:
            run = self._runs.get(user)
            if run is not None and not run.done.is_set():
                return run
            run = self._runs[user] = Run(user)
        name = f"persona-adapter-{len(self._runs)}"
        threading.Thread(target=self._train, args=(run,), name=name, daemon=True).start()
        return run

    def _train(self, run: Run) -> None:
        def tick(event: str, value: float) -> None:
            if event == "answers":
                run.phase, run.answers = "answers", int(value)
            elif event == "step":
                run.phase, run.steps, run.loss = "training", run.steps + 1, float(value)

        try:
            with self._one:
                run.phase, run.started = "answers", time.monotonic()
                record = self.layer.train_adapter(run.user, progress=tick, **self.config)
            run.steps = int(record.get("steps") or run.steps)
            run.phase = "done"
        except PersonaError as err:
            run.error, run.phase = failed(err, quiet), "failed"
            log.info("persona app: adapter training for %r stopped: %s", run.user, err)
        except Exception:
            log.exception("persona app: adapter training for %r failed", run.user)
            run.error, run.phase = escape_md(TRAIN_FAILED), "failed"
        finally:
            run.done.set()


def train_now(trainer: Trainer, user_id: Any, notify: Notify = quiet) -> tuple[Run | None, str]:
    """Start (or follow) the person's training: the run, or None and why not (Markdown)."""
    try:
        user = normalise_user(user_id)
        if trainer.current(user) is None and not has_signals(trainer.layer, user):
            notify(NOTHING)
            return None, f"⚠️ {escape_md(NOTHING)}"
    except Exception as err:
        return None, f"⚠️ {failed(err, notify)}"
    run = trainer.start(user)
    return run, run.progress()


def has_signals(layer: PreferenceLayer, user: str) -> bool:
    """Whether the person taught anything an adapter can learn from (an edit that changed an
    answer, a pick, or feedback with examples)."""
    from persona.adapters.data import assemble

    if not layer.store.has_user(user):
        return False
    data = assemble(layer.store, user, constraint_prompts=0)
    return bool(data.pairs or data.feedback)
