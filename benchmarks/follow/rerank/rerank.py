"""Reranking answers by their mutual information with the preference, on the follow bench's
stated-preference requests (session 14).

For each request with one atom's preference (the 27 evaluation inputs of ``persona bench
follow``, training or held-out atom types), the local model (SmolLM2-135M with the shipped
follow adapter) writes its greedy answer and 3 samples (temperature 0.7, top-p 0.95; settings
fixed before any run). Each candidate is scored under the prompt with the preference and
under the request alone; the raw scores are kept, so the choice rules are compared offline:

- ``greedy``: the model's own answer (no reranking);
- ``sample``: the first sample (sampling alone);
- ``pmi_sum`` / ``pmi_mean``: the highest ``log p(a | prompt) - log p(a | request)``, summed
  or per token;
- ``likeliest``: the highest per-token ``log p(a | prompt)``;
- ``checker``: a candidate the atom's checker passes, if any (the ceiling of 4 candidates;
  not a rule the layer could use).

The rule was chosen on the training types (``pmi_mean``), then held-out types were measured
once. ``LocalChatModel(rerank=4)`` ships that rule; it seeds each prompt's samples by its tokens
and scores token ids rather than re-tokenized text, so its answers differ from these in detail.
Usage, from the repository root (about 50 min for ``train``, 20 for ``held_out`` on 2 cores)::

    python benchmarks/follow/rerank/rerank.py generate train
    python benchmarks/follow/rerank/rerank.py generate held_out
    python benchmarks/follow/rerank/rerank.py summarize

``generate`` writes ``<split>_raw.json`` (every candidate and its scores); ``summarize`` writes
``summary.json``.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SAMPLES = 3
SHORT_WORDS = 12  # persona.follow.evaluate.SHORT_WORDS: shorter is not an answer to the task


def generate(split: str) -> None:
    import torch

    from persona.agents.likelihood import loglikelihoods
    from persona.agents.models import LocalChatModel, ensure_local_model
    from persona.follow.data import applicable, follow_prompt, is_eval, load_inputs
    from persona.follow.evaluate import eval_atoms
    from persona.follow.generate import _encode
    from persona.follow.generate import generate as greedy_answers

    torch.set_num_threads(2)
    items = [i for i in load_inputs() if is_eval(i)]
    cases = [(i, a) for i in items for a in eval_atoms()[split] if applicable(a, i.kind)]
    model, tokenizer = LocalChatModel(model_dir=str(ensure_local_model())).load()
    prompts = [follow_prompt(i.request, a.description) for i, a in cases]
    started = time.time()
    greedy = greedy_answers(model, tokenizer, prompts, max_new_tokens=128)
    torch.manual_seed(0)
    tokenizer.padding_side = "left"
    order = sorted(range(len(prompts)), key=lambda k: len(prompts[k]))
    sampled: list[list[str]] = [[] for _ in prompts]
    for start in range(0, len(order), 8):
        ids = order[start : start + 8]
        enc = _encode(tokenizer, [prompts[k] for k in ids])
        with torch.inference_mode():
            seqs = model.generate(
                **enc,
                max_new_tokens=128,
                do_sample=True,
                temperature=0.7,
                top_p=0.95,
                num_return_sequences=SAMPLES,
                no_repeat_ngram_size=6,
                pad_token_id=tokenizer.pad_token_id,
            )
        n_in = enc["input_ids"].shape[1]
        for j, k in enumerate(ids):
            rows = seqs[j * SAMPLES : (j + 1) * SAMPLES, n_in:]
            sampled[k] = [tokenizer.decode(r, skip_special_tokens=True).strip() for r in rows]
        print(f"sampled {start + len(ids)}/{len(prompts)}", flush=True)  # noqa: T201
    rows = []
    for (item, atom), prompt, own, more in zip(cases, prompts, greedy, sampled, strict=True):
        answers = [own, *more]
        rows.append(
            {
                "input": item.id,
                "atom": atom.name,
                "cands": answers,
                "cond": loglikelihoods(model, tokenizer, prompt, answers),
                "neg": loglikelihoods(model, tokenizer, item.request, answers),
                "ntok": [len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers],
                "ok": [atom.check(a) for a in answers],
            }
        )
    print(f"{split}: {len(rows)} requests in {time.time() - started:.0f} s", flush=True)  # noqa: T201
    (HERE / f"{split}_raw.json").write_text(json.dumps(rows, indent=1))


def _pick(score: Callable[[dict[str, Any], int], float]) -> Callable[[dict[str, Any]], int]:
    return lambda r: max(range(len(r["cands"])), key=lambda k: (score(r, k), -k))


RULES: dict[str, Callable[[dict[str, Any]], int]] = {
    "greedy": lambda r: 0,
    "sample": lambda r: 1,
    "pmi_sum": _pick(lambda r, k: r["cond"][k] - r["neg"][k]),
    "pmi_mean": _pick(lambda r, k: (r["cond"][k] - r["neg"][k]) / max(1, r["ntok"][k])),
    "likeliest": _pick(lambda r, k: r["cond"][k] / max(1, r["ntok"][k])),
    "checker": _pick(lambda r, k: float(r["ok"][k])),
}


def summarize() -> None:
    from persona.bench.machine import machine_info

    out: dict[str, Any] = {
        "llm": "SmolLM2-135M-Instruct + persona's follow adapter (float32 on this host)",
        "candidates": f"greedy + {SAMPLES} samples (temperature 0.7, top-p 0.95), 128 tokens",
        "chosen_on_training_types": "pmi_mean",
        "machine": machine_info(),
        "splits": {},
    }
    for split in ("train", "held_out"):
        rows = json.loads((HERE / f"{split}_raw.json").read_text())
        table = {}
        for name, rule in RULES.items():
            kept = [r["cands"][rule(r)] for r in rows]
            ok = [r["ok"][rule(r)] for r in rows]
            per_atom: dict[str, list[bool]] = defaultdict(list)
            for r, passed in zip(rows, ok, strict=True):
                per_atom[r["atom"]].append(passed)
            table[name] = {
                "satisfaction": round(sum(ok) / len(rows), 3),
                "short_answers": round(
                    sum(len(a.split()) < SHORT_WORDS for a in kept) / len(rows), 3
                ),
                "not_the_greedy_answer": round(sum(rule(r) != 0 for r in rows) / len(rows), 3),
                "per_atom": {a: round(sum(v) / len(v), 3) for a, v in per_atom.items()},
            }
        out["splits"][split] = {"requests": len(rows), "rules": table}
        print(split, {k: v["satisfaction"] for k, v in table.items()})  # noqa: T201
    (HERE / "summary.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["generate"] and sys.argv[2:] in (["train"], ["held_out"]):
        generate(sys.argv[2])
    elif sys.argv[1:] == ["summarize"]:
        summarize()
    else:
        raise SystemExit(__doc__)
