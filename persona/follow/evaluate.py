"""``persona bench follow``: does the follow adapter make the local model apply and name
preferences, on atom types it never saw, without spoiling plain answers?

On the corpus's evaluation inputs (never trained on), base model vs base + adapter:

- **satisfaction**: the request with one atom's description in the user turn (the layer's
  placement); the share of answers whose checker passes, per atom, for training and held-out
  atom types;
- **inference accuracy**: the base model's plain answer, edited by one atom; CIPHER's inference
  prompt; the inferred phrase is right when its embedding is closest to that atom's description
  among every atom type's;
- **side effects**: plain requests: answer length, share of looping answers, a sample.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from persona.bench import atoms as A
from persona.bench.metrics import repeats
from persona.errors import InvalidInputError, LearningError
from persona.follow.data import Input, applicable, follow_prompt, is_eval, load_inputs
from persona.follow.phrases import HELD_OUT, atom_type
from persona.learn.cipher_model import wishes, with_wishes
from persona.learn.cipher_text import clean_phrase, infer_prompt, without_contradicted
from persona.store.embed import Embedder

#: Tokens for an inferred phrase (CIPHER's inference budget is larger; phrases are short).
INFER_TOKENS = 40

#: What is scored of each inference: the model's phrase as cleaned ("phrase", the figure of
#: sessions before 34) and what CIPHER stores of it under each ``cipher_infer`` mode
#: (:func:`stored`).
INFER_SCORES: tuple[str, ...] = ("phrase", "llm", "facts", "both")

#: An answer to a stated-preference request with fewer words than this is not an answer to
#: the task (a document's summary, an email, a chat answer): often the preference echoed.
SHORT_WORDS = 12


def eval_atoms() -> dict[str, list[A.Atom]]:
    """One atom per type at the sizes the edit benchmark uses: training and held-out."""
    train = [a for a in A.ATOMS.values() if atom_type(a) not in HELD_OUT]
    seen: dict[str, A.Atom] = {}
    for atom in train:
        seen.setdefault(atom_type(atom), atom)
    return {"train": list(seen.values()), "held_out": [A.ATOMS[n] for n in HELD_OUT]}


@dataclass
class Model:
    """A named (model, tokenizer) to generate with; ``guidance`` != 1 guides its answers to
    stated preferences toward the preference (classifier-free guidance against the request
    alone, as ``LocalChatModel.guidance_scale`` does); ``rerank`` > 1 keeps the best of that
    many answers to each (``LocalChatModel.rerank``). Either changes only answers to a stated
    preference."""

    name: str
    model: Any
    tokenizer: Any
    guidance: float = 1.0
    rerank: int = 1

    @property
    def steered(self) -> bool:
        """Guided or reranked: its plain and inference answers are the unsteered model's."""
        return self.guidance != 1.0 or self.rerank > 1


def _rate(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 3) if flags else None


def run_follow_bench(
    models: Sequence[Model],
    embedder: Embedder,
    *,
    inputs: Sequence[Input] | None = None,
    max_tokens: int = 128,
    batch_size: int = 8,
    tick: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    previous: dict[str, Any] | None = None,
    reuse: Sequence[str] = (),
    edit_facts: bool = False,
    plain_only: bool = False,
    inference_only: bool = False,
) -> dict[str, Any]:
    """Every measurement for every model, on the evaluation inputs (``on_total``: told how
    many prompts will be generated, for a progress bar that ``tick`` advances);
    ``plain_only``: only the side effects (plain answers), minutes where the rest takes an
    hour on two cores; ``inference_only``: only CIPHER's inference, scored for each way the
    layer can store a phrase (:func:`score_inference`).

    Models named in ``reuse`` keep their figures from ``previous`` (an earlier result of this
    function on the same inputs, atoms and answer budget: checked) and only answer the plain
    requests again (the first model's plain answers are what inference edits). ``edit_facts``:
    CIPHER's inference prompt also shows the counted changes (the layer's cipher_edit_facts)."""

    items = [i for i in (inputs if inputs is not None else load_inputs()) if is_eval(i)]
    sets = eval_atoms()
    cases = [
        (item, atom, split)
        for item in items
        for split, atoms in sets.items()
        for atom in atoms
        if applicable(atom, item.kind)
    ]
    if plain_only:
        if reuse:
            raise InvalidInputError("plain answers only: nothing to reuse (drop --reuse-base).")
        return _plain_only(models, items, max_tokens, batch_size, tick, on_total)
    if inference_only:
        if reuse:
            raise InvalidInputError("inference only: nothing to reuse (drop --reuse-base).")
        return _inference_only(
            models, items, sets, max_tokens, batch_size, tick, on_total, embedder, edit_facts
        )
    kept = _reusable(previous, reuse, len(items), sets, max_tokens, edit_facts)
    pairs = _inference_pairs(items, sets)
    if on_total:
        measured = [m for m in models if m.name not in kept]
        inferring = [m for m in measured if not m.steered]
        on_total(
            len(models) * len(items) + len(measured) * len(cases) + len(inferring) * len(pairs)
        )
    every_type = {atom_type(a): a.description for s in sets.values() for a in s}
    result: dict[str, Any] = {
        "inputs": len(items),
        "atoms": {k: [a.name for a in v] for k, v in sets.items()},
        "max_tokens": max_tokens,
        "edit_facts": edit_facts,
        "models": {},
    }

    def run(
        m: Model, prompts_: list[str], tokens: int, negatives: list[str] | None = None
    ) -> list[str]:
        return _answers(m, prompts_, tokens, batch_size, tick, negatives)

    plain_by_model: dict[str, list[str]] = {}
    for m in models:
        plain = run(m, [i.request for i in items], max_tokens)
        plain_by_model[m.name] = plain
        if m.name in kept:
            result["models"][m.name] = kept[m.name]
            continue
        stated = [follow_prompt(i.request, a.description) for i, a, _ in cases]
        answers = run(m, stated, max_tokens, [i.request for i, _, _ in cases])
        per_atom: dict[str, list[bool]] = {}
        per_split: dict[str, list[bool]] = {"train": [], "held_out": []}
        # The same prompt without the preference: did the atom hold anyway?
        by_id = {i.id: text for i, text in zip(items, plain, strict=True)}
        already: dict[str, list[bool]] = {"train": [], "held_out": []}
        # An answer that is not one (a few words, often the preference echoed) satisfies
        # "no emoji" or "at most 50 words" by doing nothing: counted apart.
        real: dict[str, list[bool]] = {"train": [], "held_out": []}
        oks: list[bool] = []
        for (item, atom, split), answer in zip(cases, answers, strict=True):
            ok = atom.check(answer)
            oks.append(ok)
            per_atom.setdefault(atom.name, []).append(ok)
            per_split[split].append(ok)
            already[split].append(atom.check(by_id[item.id]))
            real[split].append(ok and len(answer.split()) >= SHORT_WORDS)
        short = [a for a in answers if len(a.split()) < SHORT_WORDS]
        result["models"][m.name] = {
            "satisfaction": {k: _rate(v) for k, v in per_split.items()},
            "satisfied_by_a_real_answer": {k: _rate(v) for k, v in real.items()},
            "satisfied_without_preference": {k: _rate(v) for k, v in already.items()},
            "satisfaction_per_atom": {k: _rate(v) for k, v in per_atom.items()},
            "stated_answers": {
                "short": _rate([len(a.split()) < SHORT_WORDS for a in answers]),
                "repetition_rate": _rate([repeats(a) for a in answers]),
                "short_samples": short[:8],
            },
            "plain": _plain_stats(plain),
            "guidance_scale": m.guidance,
            "rerank": m.rerank,
            # every stated answer, so a changed checker can score them again without a model
            "answers": [
                {"input": item.id, "atom": atom.name, "split": split, "ok": ok, "answer": answer}
                for (item, atom, split), answer, ok in zip(cases, answers, oks, strict=True)
            ],
        }
    pairs = _inference_pairs(items, sets, plain_by_model[models[0].name])
    infer_prompts = [infer_prompt(a, e, facts=edit_facts) for _, _, a, e in pairs]
    for m in (m for m in models if m.name not in kept and m.steered):
        # CIPHER's inference prompt states no preference: guidance and reranking have nothing
        # to act on, and the answers are the unsteered model's.
        result["models"][m.name]["inference_accuracy"] = None
    for m in (m for m in models if m.name not in kept and not m.steered):
        raws = run(m, infer_prompts, INFER_TOKENS)
        result["models"][m.name].update(score_inference(pairs, raws, embedder, every_type))
    result["inference_pairs"] = {
        split: sum(p[0] == split for p in pairs) for split in ("train", "held_out")
    }
    result["plain_samples"] = _plain_samples(items, plain_by_model)
    return result


def stored(mode: str, raw: str, output: str, edited: str) -> str:
    """What CIPHER stores for ``output`` → ``edited`` when its model answered ``raw`` to the
    inference prompt, as :meth:`~persona.learn.cipher_model.Cipher.infer` would with
    ``infer=mode``; "" when it stores nothing. ``mode="phrase"``: the cleaned phrase before
    CIPHER's consistency checks."""
    try:
        phrase = clean_phrase(raw)
    except LearningError:
        phrase = ""
    if mode == "phrase":
        return phrase
    wished = [] if mode == "llm" else wishes(output, edited)
    if mode == "facts" and wished:
        return "; ".join(wished)
    return with_wishes(without_contradicted(phrase, edited) if phrase else "", wished)


def score_inference(
    pairs: Sequence[tuple[str, A.Atom, str, str]],
    raws: Sequence[str],
    embedder: Embedder,
    types: dict[str, str],
) -> dict[str, Any]:
    """A model's inferences (``raws``, one per pair) scored: a stored phrase is right when its
    embedding is closest to its atom's type description among every type's (``types``),
    per split and atom, for each of :data:`INFER_SCORES`; "inference_accuracy" is the
    "phrase" figure, as before session 34."""
    names = list(types)
    type_vecs = embedder.embed(list(types.values()))
    by_mode: dict[str, dict[str, Any]] = {}
    samples: list[dict[str, str]] = []
    for mode in INFER_SCORES:
        phrases = [stored(mode, raw, a, e) for (_, _, a, e), raw in zip(pairs, raws, strict=True)]
        said = [p for p in phrases if p]
        vecs = iter(embedder.embed(said) if said else [])
        hits: dict[str, list[bool]] = {"train": [], "held_out": []}
        per_atom: dict[str, list[bool]] = {}
        for (split, atom, _, _), phrase in zip(pairs, phrases, strict=True):
            right = bool(phrase) and names[int(np.argmax(type_vecs @ next(vecs)))] == atom_type(
                atom
            )
            hits[split].append(right)
            per_atom.setdefault(atom.name, []).append(right)
        by_mode[mode] = {
            "accuracy": {k: _rate(v) for k, v in hits.items()},
            "stored_nothing": _rate([not p for p in phrases]),
            "per_atom": {k: _rate(v) for k, v in per_atom.items()},
        }
        held = [
            (atom.name, phrase, raw)
            for (split, atom, _, _), phrase, raw in zip(pairs, phrases, raws, strict=True)
            if split == "held_out"
        ]
        if mode == "phrase":
            samples = [{"atom": n, "inferred": p or r[:80]} for n, p, r in held[:10]]
    return {
        "inference_accuracy": by_mode["phrase"]["accuracy"],
        "inference_accuracy_per_atom": by_mode["phrase"]["per_atom"],
        "inference_samples_held_out": samples,
        "inference_by_mode": by_mode,
    }


def _inference_only(
    models: Sequence[Model],
    items: Sequence[Input],
    sets: dict[str, list[A.Atom]],
    max_tokens: int,
    batch_size: int,
    tick: Callable[[int], None] | None,
    on_total: Callable[[int], None] | None,
    embedder: Embedder,
    edit_facts: bool,
) -> dict[str, Any]:
    """CIPHER's inference alone: the first model's plain answers edited by each atom, every
    model's phrase for each edit, scored by :func:`score_inference`."""
    inferring = [m for m in models if not m.steered]
    if on_total:
        on_total(len(items) + len(inferring) * len(_inference_pairs(items, sets)))
    plain = _answers(models[0], [i.request for i in items], max_tokens, batch_size, tick)
    pairs = _inference_pairs(items, sets, plain)
    prompts_ = [infer_prompt(a, e, facts=edit_facts) for _, _, a, e in pairs]
    types = {atom_type(a): a.description for s in sets.values() for a in s}
    return {
        "inputs": len(items),
        "atoms": {k: [a.name for a in v] for k, v in sets.items()},
        "max_tokens": max_tokens,
        "edit_facts": edit_facts,
        "inference_only": True,
        "inference_pairs": {s: sum(p[0] == s for p in pairs) for s in ("train", "held_out")},
        "models": {
            m.name: score_inference(
                pairs, _answers(m, prompts_, INFER_TOKENS, batch_size, tick), embedder, types
            )
            for m in inferring
        },
    }


def _answers(
    m: Model,
    prompts_: list[str],
    tokens: int,
    batch_size: int,
    tick: Callable[[int], None] | None,
    negatives: list[str] | None = None,
) -> list[str]:
    """``m``'s answers to ``prompts_`` (guided against ``negatives``, or reranked, when ``m``
    is; never without ``negatives``: plain and inference prompts state no preference)."""
    from persona.follow.generate import generate

    return generate(
        m.model,
        m.tokenizer,
        prompts_,
        max_new_tokens=tokens,
        batch_size=batch_size,
        tick=tick,
        negatives=negatives,
        guidance_scale=m.guidance,
        rerank=m.rerank if negatives is not None else 1,
    )


def _plain_samples(
    items: Sequence[Input], plain_by_model: dict[str, list[str]]
) -> list[dict[str, str]]:
    return [
        {"request": items[i].request[:160], **{m: plain_by_model[m][i] for m in plain_by_model}}
        for i in (0, len(items) // 2, len(items) - 1)
    ]


def _plain_only(
    models: Sequence[Model],
    items: Sequence[Input],
    max_tokens: int,
    batch_size: int,
    tick: Callable[[int], None] | None,
    on_total: Callable[[int], None] | None,
) -> dict[str, Any]:
    """Every model's plain answers (length, looping, every answer kept) and nothing else."""
    if on_total:
        on_total(len(models) * len(items))
    requests = [i.request for i in items]
    plain_by_model = {m.name: _answers(m, requests, max_tokens, batch_size, tick) for m in models}
    return {
        "inputs": len(items),
        "max_tokens": max_tokens,
        "plain_only": True,
        "models": {
            name: {"plain": _plain_stats(plain), "plain_answers": plain}
            for name, plain in plain_by_model.items()
        },
        "plain_samples": _plain_samples(items, plain_by_model),
    }


def _reusable(
    previous: dict[str, Any] | None,
    reuse: Sequence[str],
    inputs: int,
    sets: dict[str, list[A.Atom]],
    max_tokens: int,
    edit_facts: bool,
) -> dict[str, dict[str, Any]]:
    """The blocks of ``previous`` for the models in ``reuse``, once it is shown comparable."""
    if not reuse:
        return {}
    if previous is None:
        raise InvalidInputError("reuse needs the earlier result to take the figures from.")
    if previous.get("plain_only"):
        raise InvalidInputError(
            "the earlier follow result has plain answers only; measure every model again "
            "(drop --reuse-base)."
        )
    atoms = {k: [a.name for a in v] for k, v in sets.items()}
    same = (
        previous.get("inputs") == inputs
        and previous.get("atoms") == atoms
        and previous.get("max_tokens") == max_tokens
        and previous.get("edit_facts", False) == edit_facts  # before session 20: none
    )
    if not same:
        raise InvalidInputError(
            "the earlier follow result was measured on other inputs, atoms, --max-tokens or "
            "--edit-facts; measure every model again (drop --reuse-base)."
        )
    missing = [m for m in reuse if m not in previous.get("models", {})]
    if missing:
        raise InvalidInputError(f"the earlier follow result has no figures for {missing}.")
    when = previous.get("machine", {}).get("date_utc", "an earlier run")
    return {m: {**previous["models"][m], "reused_from": when} for m in reuse}


def _inference_pairs(
    items: Sequence[Input],
    sets: dict[str, list[A.Atom]],
    answers: Sequence[str] | None = None,
) -> list[tuple[str, A.Atom, str, str]]:
    """(split, atom, answer, edited) for inference: the first model's plain answers, each
    edited by one atom where that changes it; without ``answers``, an upper bound on the count
    (every applicable pair), for the progress bar."""
    pairs = []
    for n, item in enumerate(items):
        answer = answers[n] if answers is not None else ""
        for split, atoms in sets.items():
            for atom in atoms:
                if not applicable(atom, item.kind):
                    continue
                edited = atom.edit(answer) if answers is not None else "x"
                if edited != answer:
                    pairs.append((split, atom, answer, edited))
    return pairs


def base_edits(
    folder: str,
) -> tuple[list[Input], list[str], dict[str, list[A.Atom]], list[tuple[str, A.Atom, str, str]]]:
    """For scripts that study CIPHER's inference: the evaluation inputs, the base model's plain
    answers to them (from the local model in ``folder``; 128 tokens, as the bench), the atom
    sets, and every (split, atom, answer, edited) pair of :func:`run_follow_bench`."""
    from persona.agents.models import LocalChatModel
    from persona.follow.generate import generate

    items = [i for i in load_inputs() if is_eval(i)]
    base = LocalChatModel(model_dir=folder, follow_adapter=False)
    plain = generate(*base.load(), [i.request for i in items], max_new_tokens=128)
    sets = eval_atoms()
    return items, plain, sets, _inference_pairs(items, sets, plain)


def _plain_stats(answers: Sequence[str]) -> dict[str, Any]:
    words = [len(a.split()) for a in answers]
    return {
        "mean_words": round(statistics.mean(words), 1),
        "median_words": statistics.median(words),
        "repetition_rate": _rate([repeats(a) for a in answers]),
        "empty": sum(not a.strip() for a in answers),
    }


def plot(result: dict[str, Any], path: str) -> None:
    """Satisfaction per atom, one bar per model; held-out atoms marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*result["atoms"]["train"], *result["atoms"]["held_out"]]
    models = list(result["models"])
    fig, ax = plt.subplots(figsize=(12, 4.5))
    width = 0.8 / len(models)
    for k, m in enumerate(models):
        per = result["models"][m]["satisfaction_per_atom"]
        ax.bar(
            [i + k * width for i in range(len(names))],
            [per.get(n) or 0 for n in names],
            width,
            label=m,
        )
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))])
    held = set(result["atoms"]["held_out"])
    ax.set_xticklabels([f"{n}*" if n in held else n for n in names], rotation=45, ha="right")
    ax.set_ylabel("share of answers satisfying the atom")
    ax.set_ylim(0, 1)
    ax.set_title(f"{result.get('llm', '')}: stated preference followed (* = held-out type)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
