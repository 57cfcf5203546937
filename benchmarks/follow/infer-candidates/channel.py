"""CIPHER's inference choosing among the model's own phrases (session 16).

The noisy channel: the local model (SmolLM2-135M + the shipped follow adapter) writes its greedy
phrase for an edit and K samples (temperature 1.0, top-p 0.95); each phrase is scored by how
much likelier it makes the user's revision than the original answer, as the reply to the request
with the phrase stated the way the layer states preferences:

    log p(edited | request + phrase) - log p(original | request + phrase)

and the best one is kept. This is what ``CipherConfig.infer_candidates`` (layer option
``cipher_infer_candidates``) does with K + 1 candidates. A phrase is right when MiniLM puts it
nearest to the description of the edit's atom type among every type's (as ``persona bench
follow`` judges inference).

Usage, from the repository root (about 15 s per edit on 2 cores; 223 edits)::

    python benchmarks/follow/infer-candidates/channel.py train 5

It writes ``<split>_raw.json`` (every candidate, its score and whether it is right) beside
itself and prints greedy, chosen and any-of-(K + 1) accuracy. The edited answers are the base
model's plain answers to the 27 evaluation inputs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from persona.agents.likelihood import loglikelihoods
from persona.agents.models import LocalChatModel, ensure_local_model
from persona.errors import LearningError
from persona.follow.data import follow_prompt
from persona.follow.evaluate import base_edits
from persona.follow.generate import _encode
from persona.follow.phrases import atom_type
from persona.learn.cipher_text import clean_phrase, infer_prompt
from persona.store.embed import load_embedder

HERE = Path(__file__).parent


def main(split: str, k: int) -> None:
    torch.set_num_threads(2)
    folder = str(ensure_local_model())
    items, plain, sets, every_pair = base_edits(folder)
    request = {i.id: i.request for i in items}
    answer_of = dict(zip(plain, [i.id for i in items], strict=True))
    pairs = [p for p in every_pair if p[0] == split]
    embedder = load_embedder()
    every = {atom_type(a): a.description for s in sets.values() for a in s}
    names, vecs = list(every), embedder.embed(list(every.values()))
    model, tokenizer = LocalChatModel(model_dir=folder, follow_adapter=True).load()
    tokenizer.padding_side = "left"
    torch.manual_seed(0)
    rows, start = [], time.perf_counter()
    for _, atom, answer, edited in pairs:
        enc = _encode(tokenizer, [infer_prompt(answer, edited, facts=False)])
        common = {"max_new_tokens": 40, "no_repeat_ngram_size": 6,
                  "pad_token_id": tokenizer.pad_token_id}
        with torch.inference_mode():
            greedy = model.generate(**enc, do_sample=False, **common)
            samples = model.generate(**enc, do_sample=True, temperature=1.0, top_p=0.95,
                                     num_return_sequences=k, **common)
        n_in = enc["input_ids"].shape[1]
        cands = []
        for row in [greedy[0], *samples]:
            try:
                cands.append(clean_phrase(tokenizer.decode(row[n_in:], skip_special_tokens=True)))
            except LearningError:
                cands.append("")
        scores = []
        for cand in cands:
            if not cand:
                scores.append(None)
                continue
            prompt = follow_prompt(request[answer_of[answer]], cand)
            revised, original = loglikelihoods(model, tokenizer, prompt, [edited, answer])
            scores.append(revised - original)
        right = [bool(c) and names[int(np.argmax(vecs @ embedder.embed([c])[0]))]
                 == atom_type(atom) for c in cands]
        rows.append({"atom": atom.name, "cands": cands, "score": scores, "right": right})

    def chosen(row: dict) -> int:
        known = [i for i, s in enumerate(row["score"]) if s is not None]
        return max(known, key=lambda i: row["score"][i], default=0)

    (HERE / f"{split}_raw.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(  # noqa: T201
        f"{len(rows)} edits in {time.perf_counter() - start:.0f} s: greedy",
        np.mean([r["right"][0] for r in rows]),
        "chosen", np.mean([r["right"][chosen(r)] for r in rows]),
        f"any of {k + 1}", np.mean([any(r["right"]) for r in rows]),
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
