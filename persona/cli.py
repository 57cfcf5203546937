"""The ``persona`` command: the app, a user's preferences, export/import, benchmarks.

Heavy libraries (torch, faiss, gradio, sentence-transformers) load inside the commands that
need them, so ``persona --help`` stays fast. A :class:`~persona.errors.PersonaError` is shown
as one red line and exits with status 1.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from persona.adapters.cmd import serve_config_cmd, train_adapters_cmd
from persona.adapters.fspo_cmd import train_fspo_cmd
from persona.bench.adapters_cmd import bench_adapters
from persona.bench.edits_cmd import bench_edits
from persona.bench.feedback_cmd import bench_feedback
from persona.bench.labels_cmd import bench_labels
from persona.cli_common import (
    FOLLOW_ADAPTER_DIR,
    GUIDANCE,
    RERANK,
    err,
    errors,
    fail,
    follow_choice,
    out,
)
from persona.config import HOME_ENV, default_home
from persona.follow.commands import bench_follow, train_follow_cmd
from persona.store.migrate_cmd import migrate_cmd
from persona.store.urls import is_postgres_url

if TYPE_CHECKING:
    from persona.layer import PreferenceLayer

app = typer.Typer(
    name="persona",
    help="A per-user preference layer for LLM agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
prefs_app = typer.Typer(help="See, add and remove a user's preferences.", no_args_is_help=True)
#: ``persona bench ...``: each benchmark is one command of this sub-app.
bench_app = typer.Typer(
    help="Benchmarks; each writes JSON (+ a PNG) with the machine and the command.",
    no_args_is_help=True,
)
#: ``persona train ...``: offline training of shared and per-user adapters.
train_app = typer.Typer(
    help="Train adapters offline (GPU when present, else CPU).", no_args_is_help=True
)
app.add_typer(prefs_app, name="prefs")
app.add_typer(bench_app, name="bench")
app.add_typer(train_app, name="train")


class EmbedderName(StrEnum):
    minilm = "minilm"
    hash = "hash"


@dataclass
class Options:
    path: Path | str | None  # a PostgreSQL URL stays a str; None: $PERSONA_HOME
    embedder: str | None  # None: the embedder the store was written with (else MiniLM)


def _db_path(path: Path | str | None) -> Path:
    home = Path(path).expanduser() if path is not None else default_home()
    return home if home.suffix in {".db", ".sqlite", ".sqlite3"} else home / "persona.db"


def _recorded_embedder(path: Path | str | None) -> str | None:
    """The embedder spec the store was written with ("hash:64"), read without side effects,
    so that opening a store never re-embeds it with another embedder by accident."""
    if is_postgres_url(path):
        return None
    db = _db_path(path)
    if not db.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'embedder'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    value = str(row[0]) if row else ""
    name, _, dim = value.rpartition(":")
    if name == "hash" and dim.isdigit():
        return f"hash:{dim}"
    return "minilm" if name else None


@contextmanager
def open_layer(ctx: typer.Context, llm: str | None = None) -> Iterator[PreferenceLayer]:
    """The layer for the global ``--path`` / ``--embedder``; errors become exit status 1."""
    opts: Options = ctx.obj
    with errors():
        from persona.layer import PreferenceLayer

        embedder = opts.embedder or _recorded_embedder(opts.path) or "minilm"
        with PreferenceLayer.open(opts.path, llm=llm, embedder=embedder) as layer:
            yield layer


@app.callback()
def main(
    ctx: typer.Context,
    path: str | None = typer.Option(
        None,
        "--path",
        envvar=HOME_ENV,
        help="Data directory, a .db file, or a postgresql:// URL. Default: $PERSONA_HOME or "
        "~/.local/share/persona.",
    ),
    embedder: EmbedderName | None = typer.Option(
        None,
        "--embedder",
        help="Context embedder. Default: the one the store was written with, else minilm.",
    ),
) -> None:
    """A per-user preference layer for LLM agents."""
    where = path if path is None or is_postgres_url(path) else Path(path)  # keep the URL's //
    ctx.obj = Options(where, embedder.value if embedder else None)


# -- the app -----------------------------------------------------------------------------------


@app.command()
def ui(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(7860, help="Port to listen on."),
    llm: str = typer.Option(
        "local", help="Chat model: local, openai:MODEL@BASE_URL, fake (see load_chat_model)."
    ),
    path: Path | None = typer.Option(None, "--path", help="Data directory (overrides the global)."),
    follow_adapter: bool = typer.Option(
        True,
        "--follow-adapter/--no-follow-adapter",
        help="Run the local model with persona's follow adapter (default) or without it.",
    ),
    follow_adapter_dir: Path | None = FOLLOW_ADAPTER_DIR,
    guidance: float | None = GUIDANCE,
    rerank: int | None = RERANK,
    cipher_aggregate: str = typer.Option(
        "sync",
        help="How CIPHER turns the preferences of the 5 nearest edited contexts into one: "
        "sync (the LLM aggregates them before answering; fewest edits in the benchmark), "
        "background (the vote, or an aggregate made off the request path), vote (the "
        "clauses most of them state; no LLM), list (all of them).",
    ),
    auth: Path | None = typer.Option(
        None,
        "--auth",
        envvar="PERSONA_AUTH",
        help="A file of 'name:password' lines: people sign in, and each sees only their own "
        "data. Without it: one local user with a switchable name.",
    ),
) -> None:
    """Start the Gradio app (chat, teach, inspect and edit learned preferences)."""
    opts: Options = ctx.obj
    where = path if path is not None else opts.path
    with errors():
        from persona.ui.app import serve

        embedder = opts.embedder or _recorded_embedder(where)
        serve(
            path=where,
            llm=llm,
            embedder=embedder,
            host=host,
            port=port,
            block=True,
            follow_adapter=follow_choice(follow_adapter, follow_adapter_dir),
            guidance_scale=guidance,
            rerank=rerank,
            auth=auth,
            cipher_aggregate=cipher_aggregate,
        )


# -- preferences ---------------------------------------------------------------------------------


def _short(text: str | None, limit: int = 60) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@prefs_app.command("list")
def prefs_list(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="User id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List everything persona learned or was told about USER."""
    with open_layer(ctx) as layer:
        prefs = layer.preferences(user)
    if as_json:
        from dataclasses import asdict

        typer.echo(json.dumps([asdict(p) for p in prefs], indent=2, ensure_ascii=False))
        return
    table = Table(title=f"preferences of {user!r}", title_justify="left")
    for name in ("id", "source", "on", "text", "context"):
        table.add_column(name, overflow="fold")
    for p in prefs:
        text = p.text + (" [flagged]" if p.flagged else "")
        table.add_row(
            str(p.id), p.source, "yes" if p.enabled else "no", text, _short(p.context) or "(all)"
        )
    out.print(table, markup=False)
    out.print(f"{len(prefs)} preference(s)", markup=False)


@prefs_app.command("add")
def prefs_add(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="User id."),
    text: str = typer.Argument(..., help='The preference, e.g. "bullet points, no emojis".'),
    context: str | None = typer.Option(
        None, "--context", help="Apply only to requests similar to this one (default: all)."
    ),
) -> None:
    """Tell persona a preference of USER."""
    with open_layer(ctx) as layer:
        pref = layer.add_preference(user, text, context=context)
    scope = f"requests like {_short(context)!r}" if context else "every request"
    out.print(f"added preference {pref.id} for {user!r} (applies to {scope})", markup=False)


@prefs_app.command("rm")
def prefs_rm(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="User id."),
    pref_id: int = typer.Argument(..., metavar="ID", help="Preference id (see prefs list)."),
) -> None:
    """Delete one preference of USER."""
    with open_layer(ctx) as layer:
        layer.delete_preference(user, pref_id)
    out.print(f"deleted preference {pref_id} of {user!r}", markup=False)


# -- users -----------------------------------------------------------------------------------------


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="User id."),
    out_file: Path | None = typer.Option(None, "--out", "-o", help="Write here, not stdout."),
) -> None:
    """Export everything stored about USER as JSON."""
    with open_layer(ctx) as layer:
        data = layer.export_user(user)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if out_file is None:
        sys.stdout.write(text)
        return
    try:
        out_file.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(
            f"cannot write {str(out_file)!r} ({exc.strerror}); pass another --out."
        ) from None
    err.print(f"exported {user!r} to {out_file}", markup=False)


@app.command("import")
def import_cmd(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="A file written by `persona export` ('-': stdin)."),
    replace: bool = typer.Option(False, "--replace", help="Replace the user if it exists."),
) -> None:
    """Import a user from a JSON export (all or nothing)."""
    data = _read_json(file)
    with open_layer(ctx) as layer:
        user = layer.import_user(data, replace=replace)
        n = len(layer.preferences(user))
    out.print(f"imported {user!r} ({n} preference(s))", markup=False)


def _read_json(file: Path) -> Any:
    try:
        raw = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(
            f"cannot read {str(file)!r} ({exc.strerror}); pass a file written by `persona export`."
        ) from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise fail(
            f"{str(file)!r} is not JSON ({exc.msg} at line {exc.lineno}); pass a file written "
            "by `persona export`."
        ) from None


@app.command("delete-user")
def delete_user(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="User id."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete USER: rows, vectors and adapter files. Nothing is left."""
    with open_layer(ctx) as layer:
        n = len(layer.preferences(user))  # UnknownUserError before asking
        if not yes and not typer.confirm(
            f"Delete {user!r} and everything stored about them ({n} preference(s))?"
        ):
            raise fail(f"not deleted: {user!r} is unchanged (pass --yes to skip this question).")
        layer.delete_user(user)
    out.print(f"deleted user {user!r}", markup=False)


@app.command("users")
def users_cmd(ctx: typer.Context) -> None:
    """List the users stored here."""
    with open_layer(ctx) as layer:
        for user in layer.users():
            typer.echo(user)


# -- benchmarks ------------------------------------------------------------------------------------


@bench_app.command("latency")
def bench_latency(
    users: int = typer.Option(1_000, help="Users in the big store."),
    prefs: int = typer.Option(1_000, help="Preferences per user (rows = users x prefs)."),
    queries: int = typer.Option(20, help="Warm condition() calls per sampled user."),
    sample_users: int = typer.Option(100, help="Users measured (1 cold + QUERIES warm each)."),
    minilm: bool = typer.Option(True, "--minilm/--no-minilm", help="Also run with MiniLM."),
    minilm_users: int = typer.Option(3, help="Users in the MiniLM store."),
    minilm_prefs: int = typer.Option(1_000, help="Preferences per MiniLM user."),
    minilm_queries: int = typer.Option(100, help="Warm queries per MiniLM user."),
    minilm_dtype: str = typer.Option(
        "auto", help="MiniLM dtype: auto (bfloat16 where native), float32 or bfloat16."
    ),
    faiss_threads: int | None = typer.Option(
        None, help="Set FAISS's OpenMP threads (default: leave as the library finds it)."
    ),
    seed: int = typer.Option(0, help="Seed of the synthetic data."),
    out_file: Path = typer.Option(Path("benchmarks/latency.json"), "--out", help="JSON result."),
    plot: Path | None = typer.Option(None, help="PNG plot (default: beside --out)."),
    db: Path | None = typer.Option(
        None, help="Keep the stores here (reused when they match); default: a temp dir."
    ),
    store: str | None = typer.Option(
        None, help="A postgresql:// URL: measure PostgreSQL, beside SQLite's figures in --out."
    ),
) -> None:
    """Latency of condition() with USERS x PREFS rows in the store (hash embedder), and with
    the MiniLM embedder. The global --embedder and --path do not apply."""
    from persona.bench.latency import LatencyConfig, run_latency

    if store is not None and minilm:
        # every part shares one PostgreSQL database, and a layer opened there with MiniLM
        # would re-embed the hash part's million rows (hours); one database per part is to do
        raise fail("with --store, pass --no-minilm: the MiniLM part is measured on SQLite only.")

    cfg = LatencyConfig(
        users=users,
        prefs=prefs,
        sample_users=sample_users,
        queries=queries,
        minilm=minilm,
        minilm_users=minilm_users,
        minilm_prefs=minilm_prefs,
        minilm_queries=minilm_queries,
        minilm_dtype=minilm_dtype,
        faiss_threads=faiss_threads,
        seed=seed,
        db=str(db) if db else None,
        store=store,
    )
    with errors():
        result = run_latency(cfg, out_file, plot=plot, console=err)
    show_latency(result)
    out.print(f"wrote {out_file} and {result['plot']} in {result['wall_seconds']} s", markup=False)


@bench_app.command("reliability")
def bench_reliability(
    out_file: Path = typer.Option(
        Path("benchmarks/reliability.json"), "--out", help="JSON result."
    ),
    short: bool = typer.Option(False, "--short", help="CI sizes (about a minute)."),
    select: str | None = typer.Option(None, "-k", help="Only the tests matching (pytest -k)."),
) -> None:
    """Load, crash, isolation, fuzzing, injection and failing-LLM figures (tests/reliability)."""
    from persona.bench.reliability import run_reliability

    with errors():
        code = run_reliability(out_file, long=not short, select=select)
    if code != 0:
        raise fail(f"the reliability suite failed (pytest exit code {code}); see above.")
    out.print(f"wrote {out_file}", markup=False)


def show_latency(result: dict[str, Any]) -> None:
    """The latency figures as a Rich table, then the targets with pass/fail."""
    table = Table(title="condition() latency (ms)", title_justify="left")
    for name in ("run", "phase", "part", "p50", "p99", "n"):
        table.add_column(name, justify="right" if name in ("p50", "p99", "n") else "left")
    minilm = result.get("minilm")
    runs = [
        ("hash", result["store_part"]),
        ("minilm", minilm),
        ("minilm, edits", minilm["edit_learned"] if minilm else None),
    ]
    for run, data in runs:
        if not data:
            continue
        for phase in ("cold", "warm"):
            for part, s in data[phase].items():
                table.add_row(run, phase, part, f"{s['p50']:.3f}", f"{s['p99']:.3f}", str(s["n"]))
    out.print(table)
    store = result["store_part"]["store"]
    out.print(
        f"store: {store['rows']:,} rows, {store['db_mib']} MiB; insert "
        f"{store.get('insert_seconds', '-')} s "
        f"({store.get('insert_rows_per_second', '-')} rows/s); "
        f"peak RSS {result['memory']['peak_rss_mib']} MiB",
        markup=False,
    )
    for t in result["targets"]:
        mark = "[green]PASS[/]" if t["passed"] else "[red]FAIL[/]"
        scale = "" if t["at_target_scale"] else " (not at target scale)"
        out.print(f"{mark} {t['name']}: {t['value_ms']:.3f} ms <= {t['limit_ms']} ms{scale}")


# -- the follow adapter (persona/follow/commands.py) -------------------------------------------

train_app.command("follow")(train_follow_cmd)
train_app.command("fspo")(train_fspo_cmd)
bench_app.command("follow")(bench_follow)

# -- edits, CIPHER (persona/bench/edits_cmd.py) -----------------------------------------------
bench_app.command("edits")(bench_edits)

# -- verbal feedback, C3PO (persona/bench/feedback_cmd.py) ------------------------------------
bench_app.command("feedback")(bench_feedback)

# -- few-shot labels, FSPO's learned scorer (persona/bench/labels_cmd.py) ----------------------
bench_app.command("labels")(bench_labels)

# -- per-user adapters (persona/adapters/cmd.py) -----------------------------------------------
app.command("train-adapters")(train_adapters_cmd)
app.command("serve-config")(serve_config_cmd)
bench_app.command("adapters")(bench_adapters)

# -- SQLite -> PostgreSQL (persona/store/migrate_cmd.py) ------------------------------------------
app.command("migrate")(migrate_cmd)
