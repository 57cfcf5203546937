"""A layer whose CIPHER always infers "bullet points", an echoing assistant, and served apps
(local single-user mode, and signed-in mode with two users)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from persona import PreferenceLayer
from persona.assistant import Assistant
from persona.store.embed import HashEmbedder

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-background-networking",  # closed network: no update or sync calls
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def open_layer(path: Path) -> PreferenceLayer:
    return PreferenceLayer.open(
        path, llm=FakeListChatModel(responses=["bullet points"]), embedder=HashEmbedder(64)
    )


@pytest.fixture
def ui_layer(tmp_path: Path) -> Iterator[PreferenceLayer]:
    with open_layer(tmp_path / "ui-home") as layer:
        yield layer


@pytest.fixture
def assistant(ui_layer: PreferenceLayer) -> Assistant:
    return Assistant(ui_layer, "fake")  # echoes what reached the model


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


USERS = {"ana": "ana-pass", "ben": "ben-pass"}  # the signed-in app's auth file, as a dict


@pytest.fixture(scope="session")
def auth_users() -> dict[str, str]:
    return dict(USERS)


def launch(layer: PreferenceLayer, auth: bool, **options: Any) -> Any:
    """Serve the app for ``layer`` (``options``: more arguments of ``build_app``)."""
    from persona.ui.app import CSS, build_app
    from persona.ui.users import checker

    app = build_app(layer, Assistant(layer, "fake"), auth=auth, **options)
    app.queue()
    app.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        share=False,
        quiet=True,
        css=CSS,
        auth=checker(USERS) if auth else None,
    )
    return app


@pytest.fixture
def serve_app() -> Iterator[Callable[..., Any]]:
    """``serve_app(layer, auth, **build_app_options)``: an app served for this test only."""
    apps: list[Any] = []

    def start(layer: PreferenceLayer, auth: bool, **options: Any) -> Any:
        apps.append(launch(layer, auth, **options))
        return apps[-1]

    try:
        yield start
    finally:
        for app in apps:
            app.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, PreferenceLayer]]:
    """The real app on 127.0.0.1, local mode (one per module; tests use their own names)."""
    with open_layer(tmp_path_factory.mktemp("served")) as layer:
        app = launch(layer, auth=False)
        try:
            yield app.local_url, layer
        finally:
            app.close()


@pytest.fixture(scope="module")
def served_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, PreferenceLayer]]:
    """The real app on 127.0.0.1 with a login page for the users of ``USERS``."""
    with open_layer(tmp_path_factory.mktemp("served-auth")) as layer:
        app = launch(layer, auth=True)
        try:
            yield app.local_url, layer
        finally:
            app.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is absent; install Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, served: tuple[str, PreferenceLayer]) -> Iterator[Any]:
    """A fresh browser session on the local-mode app, once its first load has finished."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(served[0])
    page.wait_for_selector("#chat")
    # The page's load event has filled the panel: typing before it can race with it.
    page.locator("#status", has_text="stored for").wait_for()
    try:
        yield page
    finally:
        context.close()
