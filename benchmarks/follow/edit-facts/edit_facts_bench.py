"""Counted edit facts in CIPHER's inference prompt: do they help the local model name the
preference behind an edit? (session 20)

CIPHER's inference prompt shows the original answer, the user's revision, a word diff and,
since session 20, "What changed, counted": :func:`persona.learn.edit_facts.edit_facts`, a
few generic measurements of the two texts that changed (length, sentences, line starts,
words added at either end, letter case, punctuation and symbol counts). This script asks the
same edits with and without that section, of the base model and follow adapters, and judges
each inferred phrase by its nearest atom-type description (MiniLM), as ``persona bench
follow`` does.

Splits:
- ``train``, ``held_out``: the follow bench's edits (13 bench training types, 5 held-out
  types), judged among those 18 types' descriptions;
- ``more``: the 32 further types of :mod:`persona.follow.more_atoms` (never in the shipped
  adapter's training data, nor in the ``--atoms benchmark`` adapters'), one atom each, on the
  first 9 evaluation inputs, judged among all 50 types.

What was seen while the facts were written (so how far each split is held out from them):
the facts of one sample text edited by every atom of the 50 types (no model in the loop),
and, after the first run (facts v1), the held-out types' facts and inferred phrases. v2's
three changes came from those: a list mark alone ("1.") is no longer "words added at the
start", one word added at either end is reported (it took two), and "the first line now
starts with X" was added; a list mark no longer counts as a word. So the held-out split
tests the model, not the facts' design; ``more`` is the cleaner test of both.

Usage, from the repository root (about 5 minutes per configuration on 2 cores)::

    python benchmarks/follow/edit-facts/edit_facts_bench.py base:off base:on shipped:off shipped:on
    python benchmarks/follow/edit-facts/edit_facts_bench.py shipped:on DIR:on DIR:off

A configuration is ``MODEL:FACTS``: the model is ``base`` (no adapter), ``shipped`` (the
follow adapter persona ships) or an adapter folder; ``on``/``off`` shows the facts or not.
``rule:on`` and ``rule1:on`` use no model: the phrase is the facts themselves (all, or the
first), a baseline for what the facts alone tell the judge; ``wishes:on`` is the phrase CIPHER
stores with ``infer="facts"`` (:func:`~persona.learn.edit_facts.edit_wishes`).
Each run adds its configurations to ``result.json`` beside this script (``--out=FILE``:
another file, e.g. for edits made by the model in another dtype), under the name of
the model and the version of the facts (``facts_version`` below, bumped whenever
:func:`~persona.learn.edit_facts.edit_facts` changes), with the command that made them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from persona.agents.models import LocalChatModel, ensure_local_model
from persona.bench.edits import model_label
from persona.bench.machine import machine_info
from persona.errors import LearningError
from persona.follow.data import applicable
from persona.follow.evaluate import base_edits
from persona.follow.generate import generate
from persona.follow.more_atoms import TYPES
from persona.follow.phrases import atom_type
from persona.learn.cipher_text import clean_phrase, infer_prompt
from persona.learn.edit_facts import edit_facts, edit_wishes, facts_block
from persona.store.embed import embedder_id, load_embedder

HERE = Path(__file__).parent
#: Baselines with no model (session 21): the counted facts themselves as the inferred phrase,
#: all of them joined ("rule") or the largest alone ("rule1"). They bound what the facts
#: carry for the judge; v2 of the facts was written after seeing the held-out types' facts.
RULES = {
    "rule": lambda a, e: "; ".join(edit_facts(a, e)),
    "rule1": lambda a, e: (edit_facts(a, e) or [""])[0],
    # session 24: the facts stated as wishes, as CIPHER stores them with infer="facts"
    "wishes": lambda a, e: "; ".join(edit_wishes(a, e)),
}
#: v1: session 20's first facts; v2: list marks, one-word ends, the first line's start.
FACTS_VERSION = "v2"
#: v2: session 24's first measured wishes; v3: bullet points and hashtags by name, an opening
#: swapped for another, and the whole last sentence when the added words finish it.
WISHES_VERSION = "v3"


def main(configs: list[str], path: Path = HERE / "result.json") -> None:
    torch.set_num_threads(2)
    folder = str(ensure_local_model())
    doc = json.loads(path.read_text()) if path.is_file() else {"results": {}}
    made_by = model_label(LocalChatModel(model_dir=folder, follow_adapter=False))
    if doc.get("edited_answers_by", made_by) != made_by:
        raise SystemExit(
            f"{path} holds results on edits of answers by {doc['edited_answers_by']}, and this "
            f"run's are by {made_by}: pass --out=FILE (or PERSONA_DTYPE) to keep them apart."
        )
    items, plain, sets, pairs = base_edits(folder)
    more = [t.atoms[0] for t in TYPES]
    for n, item in enumerate(items[:9]):
        for atom in more:
            if applicable(atom, item.kind):
                edited = atom.edit(plain[n])
                if edited != plain[n]:
                    pairs.append(("more", atom, plain[n], edited))
    embedder = load_embedder()
    bench_types = {atom_type(a): a.description for s in sets.values() for a in s}
    all_types = {**bench_types, **{atom_type(a): a.description for a in more}}
    judges = {}
    for name, types in (("bench", bench_types), ("all", all_types)):
        judges[name] = (list(types), embedder.embed(list(types.values())))
    bar = tqdm(total=len(configs) * len(pairs), desc="inferring")
    loaded: dict[str, tuple] = {}
    for config in configs:
        mname, _, facts_on = config.rpartition(":")
        if facts_on not in ("on", "off") or not mname:
            raise SystemExit(f"{config!r}: use MODEL:on or MODEL:off (MODEL: base, shipped, DIR)")
        facts = facts_on == "on"
        if mname in RULES:
            if not facts:
                raise SystemExit(f"{config!r}: a rule reads only the facts; use {mname}:on")
            start = time.perf_counter()
            raws = [RULES[mname](a, e) for _, _, a, e in pairs]
            bar.update(len(pairs))
            label = f"no LLM: {mname}"
        elif mname not in loaded:
            follow: bool | str = {"base": False, "shipped": True}.get(mname, mname)
            local = LocalChatModel(model_dir=folder, follow_adapter=follow)
            loaded[mname] = (local.load(), model_label(local))
        if mname not in RULES:
            (model, tokenizer), label = loaded[mname]
            start = time.perf_counter()
            asked = [infer_prompt(a, e, facts=facts) for _, _, a, e in pairs]
            raws = []
            for i in range(0, len(asked), 8):
                raws += generate(model, tokenizer, asked[i : i + 8], max_new_tokens=40)
                bar.update(len(asked[i : i + 8]))
        hits: dict[str, list[bool]] = {}
        per_atom: dict[str, list[bool]] = {}
        samples: list[list[str]] = []
        for (split, atom, _, _), raw in zip(pairs, raws, strict=True):
            try:
                phrase = raw if mname in RULES else clean_phrase(raw)
            except LearningError:
                phrase = ""
            names, vecs = judges["all" if split == "more" else "bench"]
            right = bool(phrase) and names[
                int(np.argmax(vecs @ embedder.embed([phrase])[0]))
            ] == atom_type(atom)
            hits.setdefault(split, []).append(right)
            per_atom.setdefault(atom.name, []).append(right)
            samples.append([split, atom.name, phrase or raw[:60]])
        named = f"{mname} {WISHES_VERSION}" if mname == "wishes" else mname
        key = f"{named}, " + (f"facts {FACTS_VERSION}" if facts else "no facts")
        doc["results"][key] = {
            "llm": label,
            "accuracy": {k: round(float(np.mean(v)), 3) for k, v in hits.items()},
            "hits": {k: int(sum(v)) for k, v in hits.items()},
            "per_atom": {k: round(float(np.mean(v)), 3) for k, v in per_atom.items()},
            "seconds": round(time.perf_counter() - start, 1),
            "machine": machine_info(),
            "command": "python benchmarks/follow/edit-facts/edit_facts_bench.py "
            + " ".join(sys.argv[1:]),
            "samples": samples,
        }
        print(key, doc["results"][key]["accuracy"], flush=True)  # noqa: T201
    doc.update(
        {
            "pairs": {s: sum(p[0] == s for p in pairs) for s in ("train", "held_out", "more")},
            "edited_answers_by": made_by,
            "embedder": embedder_id(embedder),
            "facts_version": FACTS_VERSION,
            "facts_example": {
                p[1].name: facts_block(p[2], p[3]) for p in pairs if p[0] == "held_out"
            },
        }
    )
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    outs = [a for a in sys.argv[1:] if a.startswith("--out=")]
    names = [a for a in sys.argv[1:] if a not in outs]
    main(
        names or ["base:off", "base:on", "shipped:off", "shipped:on"],
        *[Path(a.removeprefix("--out=")) for a in outs[-1:]],
    )
