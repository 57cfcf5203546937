"""Embed the preference layer in a LangChain chain.

    python examples/01_langchain_chain.py                 # the local SmolLM2 model, offline
    python examples/01_langchain_chain.py --llm fake      # no model: echoes what it was sent
    python examples/01_langchain_chain.py --llm openai:llama3.2@http://127.0.0.1:11434/v1

The chain is ``ChatPromptTemplate | layer.as_runnable(model) | StrOutputParser()``; the user
comes from ``config={"configurable": {"user_id": ...}}``. The demo user is reset on each run.
"""

from __future__ import annotations

import argparse

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from persona import PreferenceLayer

USER, OTHER = "example-alice", "example-bob"
QUESTION = "Why do cats purr?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", default="local", help="local | fake | openai:MODEL@URL")
    parser.add_argument("--path", default=None, help="data dir (default: $PERSONA_HOME)")
    parser.add_argument("--embedder", default="minilm", help="minilm | hash")
    args = parser.parse_args()

    with PreferenceLayer.open(args.path, llm=args.llm, embedder=args.embedder) as layer:
        for user in (USER, OTHER):  # start the demo from scratch
            if user in layer.users():
                layer.delete_user(user)
        pref = layer.add_preference(USER, "Start with 'TL;DR:' and answer in one sentence.")
        print(f"{USER} prefers: {pref.text}\n")

        prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
        model = layer.as_runnable(args.llm).bind(max_tokens=120)  # short answers
        chain = prompt | model | StrOutputParser()
        for user in (USER, OTHER):
            answer = chain.invoke(
                {"question": QUESTION}, config={"configurable": {"user_id": user}}
            )
            applied = [p.text for p in layer.condition(user, QUESTION).preferences]
            print(f"--- {user} (applied: {applied or 'nothing'})\n{answer.strip()}\n")


if __name__ == "__main__":
    main()
