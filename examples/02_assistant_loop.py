"""A plain Python assistant loop: ask, the user edits the answer, the layer learns (CIPHER).

    python examples/02_assistant_loop.py --demo          # scripted, with the local model
    python examples/02_assistant_loop.py                 # interactive: type requests and edits
    python examples/02_assistant_loop.py --demo --llm "fake:Hi team, it moved.|a TL;DR first"

Each answer comes from ``Assistant`` (conditioned on what the layer learned so far); an edit
goes to ``layer.learn_from_edit``, which infers the preference behind it. The demo user is
reset on each run.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from persona import PersonaError, PreferenceLayer
from persona.assistant import Assistant

USER = "example-carol"
DEMO = [
    "Tell the team the product launch moves to Friday because QA found two bugs.",
    "Tell the team the office is closed on Monday for maintenance.",
]


def demo_edit(answer: str) -> str:
    """What the scripted user does to every answer: a TL;DR line first, then short lines."""
    first = answer.split(".")[0].strip() or answer.strip()
    lines = [s.strip() for s in answer.replace("\n", " ").split(". ") if s.strip()]
    return "\n".join([f"TL;DR: {first}.", *(f"- {s.rstrip('.')}" for s in lines)])


def ask_edit(answer: str) -> str:
    """The real user's edit: one line (type \\n for a line break); empty accepts the answer."""
    return input("your edit (empty = accept)> ").replace("\\n", "\n") or answer


def turn(
    layer: PreferenceLayer, assistant: Assistant, notes: str, edit: Callable[[str], str]
) -> None:
    reply = assistant.email(USER, notes)
    print(f"\n> {notes}\n--- answer (applied: {reply.applied.get('summary') or 'nothing'})")
    print(reply.text)
    edited = edit(reply.text)
    try:
        learned = layer.learn_from_edit(USER, reply.context, reply.text, edited)
    except PersonaError as exc:  # e.g. the model did not name a usable preference
        print(f"--- nothing learned: {exc}")
        return
    print(f"--- learned: {[p.text for p in learned] or 'nothing (accepted)'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", default="local", help="local | fake | openai:MODEL@URL")
    parser.add_argument("--path", default=None, help="data dir (default: $PERSONA_HOME)")
    parser.add_argument("--embedder", default="minilm", help="minilm | hash")
    parser.add_argument("--demo", action="store_true", help="run a scripted session")
    args = parser.parse_args()

    with PreferenceLayer.open(args.path, llm=args.llm, embedder=args.embedder) as layer:
        if USER in layer.users():
            layer.delete_user(USER)
        assistant = Assistant(layer, max_tokens=120)  # the layer's own LLM
        if args.demo:
            for notes in DEMO:
                turn(layer, assistant, notes, demo_edit)
        else:
            print("Notes for an email (empty line to stop):")
            while notes := input("notes> ").strip():
                turn(layer, assistant, notes, ask_edit)
        print(f"\n{USER} now has {len(layer.preferences(USER))} learned preference(s).")


if __name__ == "__main__":
    main()
