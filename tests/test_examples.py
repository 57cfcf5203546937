"""Every example runs end to end with fake models (03: through a real HTTP round trip)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str, path: Path) -> str:
    env = {**os.environ, "OPENAI_API_KEY": "test-key"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--path", str(path), "--embedder", "hash", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_examples_are_numbered_and_documented() -> None:
    names = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert names[:3] == ["01_langchain_chain.py", "02_assistant_loop.py", "03_openai_server.py"]
    for name in names:
        text = (EXAMPLES / name).read_text()
        assert text.startswith('"""') and f"examples/{name}" in text.split('"""')[1]


def test_01_langchain_chain(tmp_path: Path) -> None:
    out = run_example("01_langchain_chain.py", "--llm", "fake", path=tmp_path)
    alice, bob = out.split("--- example-bob")
    # the echo model shows what reached it: alice's preference, and nothing for bob
    assert "TL;DR:' and answer in one sentence" in alice.split("--- example-alice")[1]
    assert "Why do cats purr?" in bob and "TL;DR" not in bob and "applied: nothing" in bob


def test_02_assistant_loop_demo(tmp_path: Path) -> None:
    llm = "fake:Hi team, the launch moves to Friday.|a TL;DR line first"
    out = run_example("02_assistant_loop.py", "--demo", "--llm", llm, path=tmp_path)
    first, second = out.split("> Tell the team the office")
    assert "applied: nothing" in first and "learned: ['a TL;DR line first']" in first
    assert "applied: a TL;DR line first" in second  # the edit conditioned the next answer
    assert "now has 2 learned preference(s)" in out
    # a second run starts the demo user from scratch
    again = run_example("02_assistant_loop.py", "--demo", "--llm", llm, path=tmp_path)
    assert "now has 2 learned preference(s)" in again


class _ChatCompletions(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible server: POST /v1/chat/completions echoes the messages."""

    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        type(self).requests.append({"auth": self.headers.get("Authorization"), **body})
        seen = " | ".join(f"{m['role']}: {m['content']}" for m in body["messages"])
        reply = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"ECHO {seen}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def openai_server() -> Iterator[str]:
    _ChatCompletions.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatCompletions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_03_openai_server_round_trip(tmp_path: Path, openai_server: str) -> None:
    out = run_example("03_openai_server.py", "--llm", f"openai:test@{openai_server}", path=tmp_path)
    *learning, request = _ChatCompletions.requests  # C3PO's dataset calls, then the answer
    assert learning and all(
        "Emails to my boss stay formal and short." in r["messages"][-1]["content"] for r in learning
    )
    assert request["model"] == "test" and request["auth"] == "Bearer test-key"
    system, user = request["messages"]
    assert system["role"] == "system" and "sign off with 'Best, Dave'" in system["content"]
    assert user["role"] == "user" and "email to my boss" in user["content"]
    assert "--- answer from openai:test@" in out and "ECHO system:" in out


def test_03_reports_a_dead_server(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "03_openai_server.py"),
            "--path",
            str(tmp_path),
            "--embedder",
            "hash",
            "--llm",
            "openai:test@http://127.0.0.1:9/v1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "error:" in proc.stderr and "127.0.0.1:9" in proc.stderr
