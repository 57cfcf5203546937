"""The ``persona`` command: preferences, export/import, delete-user, errors, fast --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from persona.cli import app

runner = CliRunner()


def run(home: Path, *args: str, input: str | None = None):  # noqa: ANN201 - click's Result
    return runner.invoke(
        app, ["--path", str(home), "--embedder", "hash", *args], input=input, env={"COLUMNS": "200"}
    )


def test_prefs_add_list_rm_round_trip(persona_home: Path) -> None:
    added = run(persona_home, "prefs", "add", "alice", "bullet points")
    assert added.exit_code == 0, added.output
    assert "added preference 1 for 'alice'" in added.output
    ctx = run(persona_home, "prefs", "add", "alice", "no emojis", "--context", "emails to my boss")
    assert ctx.exit_code == 0 and "emails to my boss" in ctx.output

    listed = run(persona_home, "prefs", "list", "alice")
    assert listed.exit_code == 0
    assert "bullet points" in listed.output and "no emojis" in listed.output
    assert "2 preference(s)" in listed.output
    rows = json.loads(run(persona_home, "prefs", "list", "alice", "--json").output)
    assert [(r["id"], r["text"], r["context"]) for r in rows] == [
        (1, "bullet points", None),
        (2, "no emojis", "emails to my boss"),
    ]

    removed = run(persona_home, "prefs", "rm", "alice", "1")
    assert removed.exit_code == 0 and "deleted preference 1" in removed.output
    rows = json.loads(run(persona_home, "prefs", "list", "alice", "--json").output)
    assert [r["text"] for r in rows] == ["no emojis"]


def test_export_import_round_trip(persona_home: Path, tmp_path: Path) -> None:
    run(persona_home, "prefs", "add", "alice", "bullet points")
    run(persona_home, "prefs", "add", "alice", "no emojis", "--context", "emails to my boss")
    stdout = run(persona_home, "export", "alice")
    assert stdout.exit_code == 0
    data = json.loads(stdout.output)
    assert data["user_id"] == "alice" and len(data["preferences"]) == 2

    out = tmp_path / "alice.json"
    assert run(persona_home, "export", "alice", "--out", str(out)).exit_code == 0
    assert json.loads(out.read_text())["preferences"] == data["preferences"]

    other = tmp_path / "other-home"
    imported = run(other, "import", str(out))
    assert imported.exit_code == 0, imported.output
    assert "imported 'alice' (2 preference(s))" in imported.output
    again = json.loads(run(other, "export", "alice").output)
    strip = [{k: p[k] for k in ("text", "source", "context")} for p in again["preferences"]]
    assert strip == [{k: p[k] for k in ("text", "source", "context")} for p in data["preferences"]]

    exists = run(other, "import", str(out))
    assert exists.exit_code == 1 and "already exists" in exists.output
    assert run(other, "import", str(out), "--replace").exit_code == 0


def test_delete_user_confirms_unless_yes(persona_home: Path) -> None:
    run(persona_home, "prefs", "add", "alice", "bullet points")
    declined = run(persona_home, "delete-user", "alice", input="n\n")
    assert declined.exit_code == 1 and "not deleted" in declined.output
    assert "bullet points" in run(persona_home, "prefs", "list", "alice").output

    confirmed = run(persona_home, "delete-user", "alice", input="y\n")
    assert confirmed.exit_code == 0 and "deleted user 'alice'" in confirmed.output
    gone = run(persona_home, "prefs", "list", "alice")
    assert gone.exit_code == 1

    run(persona_home, "prefs", "add", "bob", "short")
    assert run(persona_home, "delete-user", "bob", "--yes").exit_code == 0
    assert run(persona_home, "users").output.strip() == ""


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["prefs", "list", "nobody"], "'nobody'"),
        (["prefs", "rm", "alice", "999"], "999"),
        (["prefs", "add", "../evil", "x"], "'../evil'"),
        (["prefs", "add", "alice", "   "], "'   '"),
        (["delete-user", "ghost", "--yes"], "'ghost'"),
        (["export", "ghost"], "'ghost'"),
    ],
)
def test_persona_errors_exit_1_with_one_line_naming_the_value(
    persona_home: Path, args: list[str], named: str
) -> None:
    run(persona_home, "prefs", "add", "alice", "bullet points")
    result = run(persona_home, *args)
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert named in lines[0]
    assert "Traceback" not in result.output


def test_import_bad_files(persona_home: Path, tmp_path: Path) -> None:
    missing = run(persona_home, "import", str(tmp_path / "nope.json"))
    assert missing.exit_code == 1 and "nope.json" in missing.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "is not JSON" in run(persona_home, "import", str(bad)).output
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": "something/9"}))
    result = run(persona_home, "import", str(wrong))
    assert result.exit_code == 1 and "'something/9'" in result.output


def test_path_comes_from_persona_home(persona_home: Path) -> None:
    env = {"PERSONA_HOME": str(persona_home), "COLUMNS": "200"}
    assert (
        runner.invoke(
            app, ["--embedder", "hash", "prefs", "add", "eve", "terse"], env=env
        ).exit_code
        == 0
    )
    assert (persona_home / "persona.db").is_file()
    # the embedder the store was written with is reused when --embedder is not given
    listed = runner.invoke(app, ["prefs", "list", "eve"], env=env)
    assert listed.exit_code == 0 and "terse" in listed.output


def test_bench_is_a_sub_app_with_latency() -> None:
    from persona.cli import bench_app

    names = {c.name or c.callback.__name__ for c in bench_app.registered_commands}  # type: ignore[union-attr]
    assert "latency" in names
    result = runner.invoke(app, ["bench", "latency", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--minilm" in result.output


def test_help_imports_nothing_heavy() -> None:
    # what keeps `persona --help` fast is that it loads no heavy library (a behaviour, not a
    # timing: a wall-clock bound here fails on a loaded machine)
    code = (
        "import sys\n"
        "from persona.cli import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'faiss', 'gradio', 'sentence_transformers', 'transformers',"
        " 'matplotlib') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "HEAVY []" in proc.stdout, proc.stdout
    assert "Usage" in proc.stdout


def test_bench_edits_writes_the_table(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "bench", "edits", "--task", "email", "--learner", "no-learning",
            "--learner", "cipher-5", "--rounds", "3", "--llm", "fake:bullet points",
            "--embedder", "hash", "--out", str(tmp_path),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "email.json").read_text())
    assert [r["learner"] for r in doc["results"]] == ["no-learning", "cipher-5"]
    assert doc["command"].startswith("persona ") and (tmp_path / "email.png").exists()
    args = ["bench", "edits", "--task", "poems", "--rounds", "1", "--llm", "fake"]
    bad = CliRunner().invoke(app, [*args, "--embedder", "hash", "--out", str(tmp_path)])
    assert bad.exit_code == 1 and "poems" in bad.output
    assert "cipher-5 vs no-learning" in doc["comparisons"]
    negative = CliRunner().invoke(app, [*args[:3], "email", "--jobs", "-1", "--llm", "fake"])
    assert negative.exit_code != 0 and "--jobs" in negative.output
    # each CIPHER option of the bench reaches the layer's config (a fake model: no effect) ...
    guided = [*args[:3], "email", "--rounds", "2", "--learner", "cipher-5-vote", "--llm", "fake:x"]

    def config(*flags: str) -> dict[str, object]:
        out = tmp_path / "-".join(f.strip("-") for f in flags)
        result = CliRunner().invoke(app, [*guided, *flags, "--embedder", "hash", "--out", str(out)])
        assert result.exit_code == 0, result.output
        return json.loads((out / "email.json").read_text())["config"]

    defaults = config()
    assert defaults["cipher_edit_facts"] is False and defaults["cipher_keep_shown"] is False
    assert defaults["cipher_infer"] == "llm"  # the model's phrase unless asked
    for flags, key, value in [
        (("--infer-guidance", "2"), "cipher_infer_guidance", 2.0),
        (("--infer-candidates", "4"), "cipher_infer_candidates", 4),
        (("--edit-facts",), "cipher_edit_facts", True),
        (("--cipher-infer", "facts"), "cipher_infer", "facts"),
        (("--keep-shown",), "cipher_keep_shown", True),
    ]:
        assert config(*flags)[key] == value, flags
    # ... and a bad value is refused before any round, naming the option
    for flags, named in [
        (("--infer-guidance", "-1"), ["cipher_infer_guidance"]),
        (("--infer-candidates", "0"), ["cipher_infer_candidates"]),
        (("--cipher-infer", "rules"), ["cipher_infer", "'facts'"]),
    ]:
        bad = CliRunner().invoke(app, [*guided, *flags, "--embedder", "hash"])
        assert bad.exit_code == 1 and all(n in bad.output for n in named), flags


def test_train_follow_refuses_a_folder_that_is_no_adapter(tmp_path: Path) -> None:
    args = ["train", "follow", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "a")]
    bad = CliRunner().invoke(app, [*args, "--init-adapter", str(tmp_path)])
    assert bad.exit_code == 1 and "no adapter_config.json" in bad.output
    assert not (tmp_path / "w" / "answers.jsonl").exists()  # refused before any work
    negative = CliRunner().invoke(app, [*args, "--infer-per-input", "-2"])
    assert negative.exit_code == 1 and "infer_per_input" in negative.output


def test_a_follow_adapter_folder_can_replace_the_shipped_one(tmp_path: Path) -> None:
    from persona.cli_common import follow_choice
    from persona.errors import InvalidInputError

    assert follow_choice(True, None) is True and follow_choice(False, None) is False
    assert follow_choice(True, tmp_path) == str(tmp_path)
    with pytest.raises(InvalidInputError, match="contradict"):
        follow_choice(False, tmp_path)
    args = ["bench", "edits", "--task", "email", "--rounds", "1", "--llm", "fake"]
    both = ["--no-follow-adapter", "--follow-adapter-dir", str(tmp_path)]
    bad = CliRunner().invoke(app, [*args, *both, "--out", str(tmp_path)])
    assert bad.exit_code == 1 and "contradict" in bad.output
    ui = CliRunner().invoke(app, ["ui", "--llm", "fake", *both, "--path", str(tmp_path)])
    assert ui.exit_code == 1 and "contradict" in ui.output


def test_the_app_aggregates_cipher_with_the_llm_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import persona.ui.app

    seen: list[str] = []
    monkeypatch.setattr(persona.ui.app, "serve", lambda **kw: seen.append(kw["cipher_aggregate"]))
    base = ["ui", "--llm", "fake", "--path", str(tmp_path)]
    assert CliRunner().invoke(app, base).exit_code == 0
    assert CliRunner().invoke(app, [*base, "--cipher-aggregate", "vote"]).exit_code == 0
    assert seen == ["sync", "vote"]


def test_the_app_refuses_an_unknown_aggregation_by_name(tmp_path: Path) -> None:
    from persona.errors import InvalidInputError
    from persona.ui.app import serve

    with pytest.raises(InvalidInputError, match="cipher_aggregate='later'.*sync"):
        serve(path=tmp_path, llm="fake", embedder="hash", block=False, cipher_aggregate="later")


def test_bench_follow_measures_one_part_at_a_time(tmp_path: Path) -> None:
    """--plain-only and --inference-only each measure one part: asked together, refused
    before any model is loaded, and nothing is written."""
    args = ["bench", "follow", "--plain-only", "--inference-only", "--out", str(tmp_path)]
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 1 and "pick one" in bad.output
    # guidance and reranking steer only answers to a stated preference, which neither measures
    for steer in (["--rerank", "4"], ["--guidance", "2"]):
        bad = CliRunner().invoke(app, [*args[:3], *args[4:], *steer])
        assert bad.exit_code == 1 and "drop one" in bad.output
    for count in ("1", "17"):  # 1 is the adapter's own answer, measured anyway
        bad = CliRunner().invoke(app, [*args[:2], "--rerank", count, "--out", str(tmp_path)])
        assert bad.exit_code == 1 and f"--rerank {count}" in bad.output
    bad = CliRunner().invoke(app, [*args[:2], "--guidance", "1", "--out", str(tmp_path)])
    assert bad.exit_code == 1 and "--guidance 1" in bad.output  # 1 is no guidance
    assert not list(tmp_path.iterdir())
