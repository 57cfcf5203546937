"""Point the layer at an OpenAI-compatible server (Ollama, vLLM, llama.cpp, OpenAI).

    ollama serve & ollama pull llama3.2
    python examples/03_openai_server.py                   # Ollama on 127.0.0.1:11434
    python examples/03_openai_server.py --llm openai:Qwen2.5-7B-Instruct@http://127.0.0.1:8000/v1

The spec is ``openai:MODEL@BASE_URL``; the key comes from ``OPENAI_API_KEY`` if the server
wants one. The layer and the answers both use that model. The demo user is reset on each run.
"""

from __future__ import annotations

import argparse
import sys

from persona import PersonaError, PreferenceLayer

USER = "example-dave"
OLLAMA = "openai:llama3.2@http://127.0.0.1:11434/v1"
REQUEST = "Write a two-line email to my boss saying the report will be a day late."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", default=OLLAMA, help=f"openai:MODEL@BASE_URL (default {OLLAMA})")
    parser.add_argument("--path", default=None, help="data dir (default: $PERSONA_HOME)")
    parser.add_argument("--embedder", default="minilm", help="minilm | hash")
    args = parser.parse_args()

    with PreferenceLayer.open(args.path, llm=args.llm, embedder=args.embedder) as layer:
        if USER in layer.users():
            layer.delete_user(USER)
        layer.add_preference(USER, "No emojis; sign off with 'Best, Dave'.")
        layer.learn_from_feedback(USER, "Emails to my boss stay formal and short.")
        agent = layer.as_runnable()  # the layer's model: the server above
        try:
            reply = agent.invoke(REQUEST, config={"configurable": {"user_id": USER}})
        except PersonaError as exc:  # e.g. the server is not running
            sys.exit(f"error: {exc}")
        applied = [p.text for p in layer.condition(USER, REQUEST).preferences]
        print(f"applied: {applied}\n--- answer from {args.llm}\n{reply.text}")


if __name__ == "__main__":
    main()
