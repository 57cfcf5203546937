"""C3PO's synthetic dataset for one feedback (RLVF, Stephan et al. 2024).

The paper's pipeline, with the layer's LLM:

1. **scope**: a short phrase naming where the feedback applies ("emails to my boss");
2. **categories** of requests where it applies (the paper asks for about 30);
3. per category, **in-scope** prompts (it applies) and **near-scope** prompts (similar
   requests where it must *not* apply);
4. **out-of-scope** prompts drawn from a general prompt pool (shipped with persona, see
   :func:`load_pool`);
5. a seeded 90/10 train/test split of each set.

Baseline and revised answers come later, from the model an adapter is trained on
(:mod:`persona.adapters.c3po`), not from this LLM.

Every LLM answer is parsed defensively: list markers, quotes and preambles are stripped;
empty, too short or too long lines, duplicates, echoes of the feedback and lines that look like
chat-template debris are dropped and counted, never stored raw. A step that yields too few
usable prompts is recorded as such and the dataset falls back on what is certain: the
feedback's own wording of its scope (:func:`scope_phrases`), the user's examples and the pool.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage

from persona.errors import PersonaError
from persona.learn import prompts
from persona.learn.guard import looks_like_injection, until_template_token
from persona.learn.scope_words import scope_phrases
from persona.llm import complete, describe, usage

POOL_FILE = Path(__file__).with_name("corpus") / "prompt_pool.json"
#: What the builder writes: 2 since a scope or category may be a part of the feedback's own
#: words (1 dropped them as echoes) and the reader's phrases are kept (``scope_read``).
DATASET_VERSION = 2


@dataclass(frozen=True)
class DatasetConfig:
    """Sizes of the synthetic dataset. The paper's: 30 categories x 32 prompts per set."""

    categories: int = 4
    per_category: int = 5  # in-scope prompts per category, and as many near-scope ones
    pool_size: int = 48  # out-of-scope prompts drawn from the pool
    test_fraction: float = 0.1
    min_prompts: int = 3  # fewer usable prompts from a step: the step counts as failed
    generate: bool = True  # False: no LLM calls (scope from the feedback's wording only)
    max_tokens: int = 320

    @classmethod
    def paper(cls) -> DatasetConfig:
        return cls(categories=30, per_category=32, pool_size=960)


@dataclass
class Cost:
    """What building one dataset cost."""

    llm: str = ""
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> lines dropped
    failed_steps: list[str] = field(default_factory=list)


# -- the general prompt pool ---------------------------------------------------------------


@cache
def load_pool() -> tuple[str, ...]:
    """The shipped pool of general requests (C3PO's out-of-scope prompts)."""
    data = json.loads(POOL_FILE.read_text(encoding="utf-8"))
    return tuple(p["text"] for p in data["prompts"])


def pool_sample(feedback: str, n: int, exclude: Sequence[str] = ()) -> list[str]:
    """``n`` pool prompts, seeded by the feedback so the same feedback gets the same rows."""
    skip = {_norm(t) for t in exclude}
    pool = [p for p in load_pool() if _norm(p) not in skip]
    rnd = random.Random(_seed(feedback, "pool"))
    return rnd.sample(pool, min(n, len(pool)))


# -- parsing LLM output ----------------------------------------------------------------------

_MARKER = re.compile(r"^\s*(?:[-*•+]|\(?\d{1,3}[.):]|[a-z][.)])\s*", re.IGNORECASE)
_PREAMBLE = re.compile(
    r"^(?:here (?:are|is)|sure|certainly|of course|below|these are|i hope|note:|okay|ok,)",
    re.IGNORECASE,
)
_LABEL = re.compile(r"^(?:prompt|request|category|example|question)\s*\d*\s*[:.-]\s*", re.I)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


_STOP = frozenset(
    "a an the to of in on for and or my your our me i you it is are be when whenever if with "
    "that this these those at by from as do don t dont not no always never please".split()
)
#: Example phrases the prompts show: an answer that copies one learned nothing.
PROMPT_EXAMPLES = frozenset({"birthday cards for my family", "unit tests in java"})


def _stems(text: str) -> set[str]:
    words = [w for w in _norm(text).split() if w not in _STOP]
    return {re.sub(r"(ing|es|s|ed|e)$", "", w) or w for w in words}


def restates(item: str, feedback: str, *, share: float = 0.5) -> bool:
    """True when most of ``item``'s content words are the feedback's: a restatement of the
    feedback, not a request it could apply to."""
    mine = _stems(item)
    return bool(mine) and len(mine & _stems(feedback)) / len(mine) > share


def _seed(*parts: str) -> int:
    return int(hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12], 16)


def parse_lines(
    raw: str,
    *,
    feedback: str,
    min_words: int = 3,
    max_words: int = 60,
    seen: set[str] | None = None,
    rejected: dict[str, int] | None = None,
    restate: bool = True,
    parts: bool = False,
) -> list[str]:
    """The usable items of a list the LLM wrote, one per line; what is dropped is counted.
    ``parts``: an item may be a part of the feedback's own words (a scope or a category may
    well be: "summaries of research papers"; a request may not)."""
    seen = set() if seen is None else seen
    rejected = {} if rejected is None else rejected

    def drop(reason: str) -> None:
        rejected[reason] = rejected.get(reason, 0) + 1

    items: list[str] = []
    fb = _norm(feedback)
    for line in until_template_token(raw).splitlines():
        text = _LABEL.sub("", _MARKER.sub("", line.strip())).strip().strip("\"'“”‘’`").strip()
        if not text:
            continue
        words = len(text.split())
        key = _norm(text)
        if _PREAMBLE.match(text) or text.endswith(":"):
            drop("preamble")
        elif words < min_words:
            drop("too short")
        elif words > max_words:
            drop("too long")
        elif not key or key == fb or (len(key) > 20 and ((key in fb and not parts) or fb in key)):
            drop("echoes the feedback")
        elif restate and restates(text, feedback):
            drop("restates the feedback")
        elif key in PROMPT_EXAMPLES:
            drop("copies the prompt's example")
        elif "<|" in text or "|>" in text or looks_like_injection(text):
            drop("template or injection text")
        elif key in seen:
            drop("duplicate")
        else:
            seen.add(key)
            items.append(text)
    return items


# -- building the dataset --------------------------------------------------------------------


def _split(items: Sequence[str], fraction: float, seed: int) -> dict[str, list[str]]:
    order = list(items)
    random.Random(seed).shuffle(order)
    n_test = int(round(len(order) * fraction)) if len(order) >= 5 else 0
    return {"train": order[n_test:], "test": order[:n_test]}


class DatasetBuilder:
    """Builds C3PO's dataset for one feedback with ``llm`` (or without, see the config)."""

    def __init__(self, llm: BaseChatModel | None, config: DatasetConfig | None = None) -> None:
        self.llm = llm
        self.config = config or DatasetConfig()

    def _ask(self, prompt: str, cost: Cost) -> str:
        assert self.llm is not None
        msg = complete(self.llm, [HumanMessage(prompt)], max_tokens=self.config.max_tokens)
        tin, tout = usage(msg)
        cost.calls += 1
        cost.tokens_in += tin
        cost.tokens_out += tout
        return msg.text

    def _list(
        self,
        step: str,
        prompt: str,
        cost: Cost,
        feedback: str,
        seen: set[str],
        need: int | None = None,
        **kw: Any,
    ) -> list[str]:
        try:
            raw = self._ask(prompt, cost)
        except PersonaError as exc:  # a failing LLM costs the step, not the feedback
            cost.failed_steps.append(f"{step}: {exc}")
            return []
        items = parse_lines(raw, feedback=feedback, seen=seen, rejected=cost.rejected, **kw)
        if len(items) < (self.config.min_prompts if need is None else need):
            cost.failed_steps.append(f"{step}: {len(items)} usable lines")
        return items

    def build(
        self,
        feedback: str,
        in_scope: Sequence[str] = (),
        out_of_scope: Sequence[str] = (),
    ) -> tuple[dict[str, Any], Cost]:
        """The dataset (JSON-ready) and what it cost."""
        cfg = self.config
        cost = Cost(llm=describe(self.llm) if self.llm is not None else "none")
        t0 = time.perf_counter()
        read = scope_phrases(feedback)
        scopes = list(read)
        categories: list[str] = []
        ins: list[str] = []
        near: list[str] = []
        if cfg.generate and self.llm is not None:
            seen = {_norm(t) for t in [*in_scope, *out_of_scope]}
            said = self._list(
                "scope",
                prompts.C3PO_SCOPE.format(feedback=feedback),
                cost,
                feedback,
                set(),
                need=1,
                restate=False,
                parts=True,
                min_words=1,
                max_words=12,
            )
            scopes = list(dict.fromkeys([*scopes, *said[:1]]))
            categories = self._list(
                "categories",
                prompts.C3PO_CATEGORIES.format(feedback=feedback, n=cfg.categories),
                cost,
                feedback,
                set(),
                need=1,
                restate=False,
                parts=True,
                min_words=1,
                max_words=15,
            )[: cfg.categories]
            for category in categories or scopes[:1] or [feedback]:
                ask = {"feedback": feedback, "category": category, "n": cfg.per_category}
                ins += self._list(
                    f"in-scope {category!r}",
                    prompts.C3PO_IN_SCOPE.format(**ask),
                    cost,
                    feedback,
                    seen,
                )[: cfg.per_category]
                near += self._list(
                    f"near-scope {category!r}",
                    prompts.C3PO_NEAR_SCOPE.format(**ask),
                    cost,
                    feedback,
                    seen,
                )[: cfg.per_category]
        outs = pool_sample(feedback, cfg.pool_size, exclude=[*ins, *near, *in_scope])
        seed = _seed(feedback, "split")
        cost.seconds = round(time.perf_counter() - t0, 3)
        dataset = {
            "version": DATASET_VERSION,
            "feedback": feedback,
            "scope": scopes,
            # the reader's phrases alone: refreshed when a better reader reads them otherwise
            "scope_read": read,
            "categories": categories,
            "user_in_scope": list(in_scope),
            "user_out_of_scope": list(out_of_scope),
            "in_scope": _split(ins, cfg.test_fraction, seed),
            "near_scope": _split(near, cfg.test_fraction, seed + 1),
            "out_of_scope": _split(outs, cfg.test_fraction, seed + 2),
            "config": asdict(cfg),
            "cost": asdict(cost),
        }
        return dataset, cost


def describe_scope(dataset: dict[str, Any]) -> str:
    """The scope as a person reads it in the preference list."""
    scopes = dataset.get("scope") or []
    head = scopes[0] if scopes else "requests like the feedback's own"
    n_in = len(dataset["in_scope"]["train"]) + len(dataset.get("user_in_scope", []))
    n_out = len(dataset["near_scope"]["train"]) + len(dataset.get("user_out_of_scope", []))
    return f"{head} (learned from {n_in} in-scope and {n_out} near-scope examples)"
