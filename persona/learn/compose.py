"""The layer's learners, built from its options (registered in the order they contribute)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from persona.learn.c3po import C3PO, C3POConfig
from persona.learn.c3po_data import DatasetConfig
from persona.learn.cipher import Aggregate, CipherConfig, CipherLearner, Infer
from persona.learn.fspo import FSPO, FSPOConfig, ScorerName
from persona.learn.scope import THRESHOLD
from persona.learn.stated import Stated, StatedConfig
from persona.options import LayerOptions
from persona.store.base import Store
from persona.store.embed import Embedder

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


class Learners(NamedTuple):
    stated: Stated
    c3po: C3PO
    cipher: CipherLearner
    fspo: FSPO


def make_learners(
    store: Store,
    embedder: Embedder,
    llm: Callable[[], BaseChatModel],
    nearest: Callable[..., Any],
    opts: LayerOptions,
    *,
    local_llm: bool,
    follows: bool = False,
    cache_dir: Path | None = None,
) -> Learners:
    """Every learner, sharing the store, the embedder, the layer's LLM (loaded on first use)
    and its nearest-rows search. With the local model, C3PO writes no dataset by default
    (``c3po_categories=None``): its datasets cost scope accuracy. With the local model and
    its follow adapter (``follows``), CIPHER stores the edit's counted changes by default
    (``cipher_infer=None``): they cost fewer edits than the model's phrase
    (benchmarks/follow/README.md, session 33), and shows them in the inference prompt
    (``cipher_edit_facts=None``; session 35)."""
    categories = opts.c3po_categories
    if categories is None:
        categories = 0 if local_llm else 4
    dataset = DatasetConfig(categories, opts.c3po_prompts, generate=categories > 0)
    threshold = THRESHOLD if opts.c3po_threshold is None else float(opts.c3po_threshold)
    return Learners(
        stated=Stated(store, StatedConfig(opts.top_k, opts.min_similarity)),
        c3po=C3PO(store, embedder, llm, C3POConfig(dataset, threshold), cache_dir),
        cipher=CipherLearner(
            llm,
            nearest,
            CipherConfig(
                k=opts.cipher_k,
                min_similarity=opts.cipher_min_similarity,
                aggregate=cast(Aggregate, opts.cipher_aggregate),
                infer_guidance=float(opts.cipher_infer_guidance),
                infer_candidates=opts.cipher_infer_candidates,
                edit_facts=follows if opts.cipher_edit_facts is None else opts.cipher_edit_facts,
                keep_shown=opts.cipher_keep_shown,
                infer=cast(Infer, opts.cipher_infer or ("facts" if follows else "llm")),
            ),
            embedder.embed,
        ),
        fspo=FSPO(
            store,
            embedder,
            llm,
            FSPOConfig(
                shots=opts.fspo_shots,
                describe=opts.fspo_describe,
                scorer=cast(ScorerName, opts.scorer),
            ),
        ),
    )
