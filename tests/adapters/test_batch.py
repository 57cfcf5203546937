"""``persona train-adapters``: the plan, failure isolation, resume after a killed run, worker
processes, Ray on a local instance, ``serve-config vllm`` and ``delete_user``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from persona.adapters import batch
from persona.adapters.train import AdapterConfig, adapter_dir, read_record
from persona.cli import app
from persona.store.sqlite import SQLiteStore

runner = CliRunner()
ECHOED = {
    "feedback": "No emojis in emails to my boss.",
    "in_scope": {"train": ["Email my boss"], "test": []},
    "near_scope": {"train": [], "test": []},
    "out_of_scope": {"train": [], "test": []},
    "answers": {"Email my boss": {"baseline": "Hi boss!", "revised": "Hi boss!"}},
}


def fill(home: Path, users: list[str], broken: bool = False) -> None:
    store = SQLiteStore(home / "persona.db")
    for user in users:
        for i in range(3):
            store.add_edit(user, f"Summarize note {i}", f"A long summary {i}.", f"- short {i}")
        store.add_label(user, "Greet the team", "Hello team.", "Yo!!!")
    store.add_label("few", "Pick one", "This.", "That.")  # 1 signal
    if broken:  # one feedback whose revisions all echo the baseline: nothing to learn
        store.add_feedback("broken", ECHOED["feedback"], dataset=ECHOED)
    store.close()


def tiny_args(tiny_dir: Path) -> list[str]:
    return ["--base", str(tiny_dir), "--rank", "4", "--alpha", "8", "--max-steps", "1"]


def cli(home: Path, *args: str):  # noqa: ANN201 - click's Result
    return runner.invoke(app, ["--path", str(home), *args], env={"COLUMNS": "200"})


def test_dry_run_says_who_and_why(persona_home: Path) -> None:
    fill(persona_home, ["ana", "ben"])
    result = cli(persona_home, "train-adapters", "--all", "--min-signals", "2", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "train ana  (4 signals; no adapter yet)" in result.output
    assert "skip  few  (1 signals; 1 signal(s), fewer than --min-signals 2)" in result.output
    assert not (persona_home / "adapters").exists()
    result = cli(persona_home, "train-adapters", "--users", "nobody", "--dry-run")
    assert "skip  nobody  (0 signals; unknown user" in result.output
    assert cli(persona_home, "train-adapters").exit_code == 1  # neither --users nor --all


def test_one_failure_does_not_stop_the_others(persona_home: Path, tiny_dir: Path) -> None:
    fill(persona_home, ["ana", "ben"], broken=True)
    result = cli(persona_home, "train-adapters", "--all", *tiny_args(tiny_dir))
    assert result.exit_code == 1, result.output  # the exit code says some user failed
    assert "broken: FAILED" in result.output and "no usable preference pair" in result.output
    assert "3 trained, 1 failed" in result.output  # ana, ben and few; broken failed
    for user in ("ana", "ben", "few"):
        assert read_record(persona_home, user) is not None
    assert read_record(persona_home, "broken") is None
    # up to date now: --resume skips them; a new signal makes one stale
    store = SQLiteStore(persona_home / "persona.db")
    store.add_label("ben", "Name a colour", "Blue.", "BLUE!!!")
    jobs = batch.plan(store, persona_home, ["ana", "ben"], resume=True)
    store.close()
    assert [(j.user_id, j.train, j.reason) for j in jobs] == [
        ("ana", False, "up to date"),
        ("ben", True, "stale: data changed"),
    ]


def test_resume_after_a_killed_run(persona_home: Path, tiny_dir: Path) -> None:
    users = ["u1", "u2", "u3", "u4"]
    fill(persona_home, users)
    cmd = [
        str(Path(sys.executable).with_name("persona")),
        "--path",
        str(persona_home),
        "train-adapters",
        "--users",
        *" --users ".join(users).split(" "),
        *tiny_args(tiny_dir),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first = adapter_dir(persona_home, "u1") / "training.json"
    deadline = time.monotonic() + 240
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists(), proc.stdout.read().decode() if proc.stdout else ""
    done_before = {u for u in users if read_record(persona_home, u)}
    assert done_before != set(users), "the run finished before it could be killed"
    stamp = first.stat().st_mtime_ns
    result = cli(persona_home, "train-adapters", "--resume", "--all", *tiny_args(tiny_dir))
    assert result.exit_code == 0, result.output
    for user in done_before:
        assert f"skip  {user}  (4 signals; up to date)" in result.output
    assert first.stat().st_mtime_ns == stamp  # not retrained
    assert all(read_record(persona_home, u) for u in users)
    leftovers = list((persona_home / "adapters" / ".work").glob("*/out-*"))
    assert len(leftovers) <= 1  # at most the killed user's unfinished folder, never served


def test_worker_processes(persona_home: Path, tiny_dir: Path) -> None:
    fill(persona_home, ["ana", "ben"])
    cfg = AdapterConfig(base=str(tiny_dir), rank=4, alpha=8, max_steps=1, constraint_prompts=1)
    store = SQLiteStore(persona_home / "persona.db")
    jobs = batch.plan(store, persona_home, ["ana", "ben"], config=cfg)
    store.close()
    events: list[tuple[str, str]] = []
    outcomes = batch.run(
        jobs, persona_home, cfg, workers=2, on_event=lambda u, e, v: events.append((u, e))
    )
    assert [(o.user_id, o.ok) for o in outcomes] == [("ana", True), ("ben", True)], outcomes
    assert sorted(events) == sorted([(u, e) for u in ("ana", "ben") for e in ("start", "done")])


def test_ray_tasks_on_a_local_instance(
    persona_home: Path, tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    short = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    monkeypatch.setenv("RAY_TMPDIR", short)
    fill(persona_home, ["ana", "ben"], broken=True)
    cfg = AdapterConfig(base=str(tiny_dir), rank=4, alpha=8, max_steps=1, constraint_prompts=1)
    store = SQLiteStore(persona_home / "persona.db")
    jobs = batch.plan(store, persona_home, ["ana", "ben", "broken"], config=cfg)
    store.close()
    outcomes = batch.run(jobs, persona_home, cfg, workers=2, ray_address="local")
    assert [(o.user_id, o.ok) for o in outcomes] == [
        ("ana", True),
        ("ben", True),
        ("broken", False),
    ]
    assert "no usable preference pair" in (outcomes[2].error or "")
    assert read_record(persona_home, "ana") and read_record(persona_home, "ben")
    import ray

    assert not ray.is_initialized()  # the run shut down the instance it started
    shutil.rmtree(short, ignore_errors=True)


def test_serve_config_names_every_adapter_by_its_safe_key(
    persona_home: Path, tiny_dir: Path
) -> None:
    fill(persona_home, ["ana", "../x"])
    assert cli(persona_home, "serve-config", "vllm").exit_code == 1  # nothing trained yet
    result = cli(
        persona_home, "train-adapters", "--users", "ana", "--users", "../x", *tiny_args(tiny_dir)
    )
    assert result.exit_code == 0, result.output
    result = cli(persona_home, "serve-config", "vllm")
    assert result.exit_code == 0, result.output
    line = " ".join(result.output.split())
    assert line.startswith("vllm serve HuggingFaceTB/SmolLM2-135M-Instruct --enable-lora")
    assert "--max-lora-rank 8" in line
    for user in ("ana", "../x"):
        name = adapter_dir(persona_home, user).name
        assert f"{name}={adapter_dir(persona_home, user).resolve()}" in line
    assert "../x=" not in line


def test_delete_user_removes_adapter_files(persona_home: Path, tiny_dir: Path) -> None:
    from persona.layer import PreferenceLayer

    fill(persona_home, ["ana"])
    assert (
        cli(persona_home, "train-adapters", "--users", "ana", *tiny_args(tiny_dir)).exit_code == 0
    )
    name = adapter_dir(persona_home, "ana").name
    assert (persona_home / "adapters" / ".work" / name).exists()
    with PreferenceLayer.open(persona_home, llm="fake", embedder="hash") as layer:
        layer.delete_user("ana")
    assert not adapter_dir(persona_home, "ana").exists()
    assert not (persona_home / "adapters" / ".work" / name).exists()


def test_an_unreachable_ray_cluster_is_a_clear_error(
    persona_home: Path, tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = pytest.importorskip("ray")

    def refuse(*args: object, **kwargs: object) -> None:  # what ray.init says with no cluster
        raise ConnectionError("Could not find any running Ray instance.")

    monkeypatch.setattr(ray, "init", refuse)
    fill(persona_home, ["ana"])
    result = cli(persona_home, "train-adapters", "--all", "--ray", "auto", *tiny_args(tiny_dir))
    assert result.exit_code == 1
    assert "could not reach a Ray cluster at 'auto'" in result.output
    assert "ray start --head" in result.output
