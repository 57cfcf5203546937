"""Record an LLM judge's verdicts on a feedback run's kept answers, for ``--judge replay:FILE``.

No judge model runs on this machine, so session 13's helper agents (Claude) judged the
answers to the qualitative feedbacks, as session 9's played the dataset writer. Steps:

1. ``persona bench feedback ... --out RUN`` keeps every answer in ``RUN/feedback.json``.
2. ``python benchmarks/feedback/judge/record.py export RUN/feedback.json DIR --parts 4``
   writes ``DIR/part-K.json``: the qualitative feedbacks' questions (feedback, request,
   answer), shuffled, each with the exact prompt ``LLMJudge`` sends and an empty ``verdict``.
   The judge never sees which method produced an answer.
3. A judge fills each ``verdict`` with "yes" or "no".
4. ``python benchmarks/feedback/judge/record.py replay DIR OUT.json --model "who judged"``
   writes the recording, and ``persona bench feedback --answers-from RUN/feedback.json
   --judge replay:OUT.json ...`` judges the kept answers with it.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from persona.bench.feedback import GROUPS
from persona.bench.feedback_checks import SPLITS, load_feedback_set
from persona.bench.feedback_judge import JUDGE_PROMPT


def export(run: Path, out: Path, parts: int) -> None:
    result = json.loads(run.read_text())
    texts = {f["id"]: f for split in SPLITS for f in load_feedback_set(split)}
    questions: dict[str, dict[str, str]] = {}
    for row in result["feedbacks"]:
        fb = texts[row["id"]]
        if fb.get("checker") or "behaviour" not in row:
            continue
        for group in GROUPS:
            kept = row["behaviour"][group]["answers"]
            requests = fb[group][len(fb[group]) - len(kept["plain"]) :]
            for request, plain, told in zip(
                requests, kept["plain"], kept["in_context"], strict=True
            ):
                for answer in (plain, told):
                    prompt = JUDGE_PROMPT.format(
                        feedback=fb["text"].strip(),
                        request=request.strip(),
                        answer=answer.strip() or "(empty)",
                    )
                    questions[prompt] = {
                        "feedback": fb["text"],
                        "request": request,
                        "answer": answer,
                        "prompt": prompt,
                        "verdict": "",
                    }
    items = list(questions.values())
    random.Random(13).shuffle(items)
    out.mkdir(parents=True, exist_ok=True)
    for k in range(parts):
        chunk = items[k::parts]
        (out / f"part-{k + 1}.json").write_text(json.dumps(chunk, indent=1, ensure_ascii=False))
    print(f"{len(items)} questions in {parts} parts under {out}")  # noqa: T201


def replay(folder: Path, out: Path, model: str) -> None:
    answers = []
    for part in sorted(folder.glob("part-*.json")):
        for item in json.loads(part.read_text()):
            verdict = item["verdict"].strip().lower()
            if verdict not in ("yes", "no"):
                raise SystemExit(f"{part}: verdict {item['verdict']!r} is not yes or no")
            answers.append({"prompt": item["prompt"], "answer": verdict})
    out.write_text(json.dumps({"model": model, "answers": answers}, indent=1, ensure_ascii=False))
    print(f"{len(answers)} verdicts -> {out}")  # noqa: T201


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    ex = sub.add_parser("export")
    ex.add_argument("run", type=Path)
    ex.add_argument("out", type=Path)
    ex.add_argument("--parts", type=int, default=4)
    rp = sub.add_parser("replay")
    rp.add_argument("folder", type=Path)
    rp.add_argument("out", type=Path)
    rp.add_argument("--model", required=True)
    args = parser.parse_args()
    if args.step == "export":
        export(args.run, args.out, args.parts)
    else:
        replay(args.folder, args.out, args.model)
