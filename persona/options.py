"""The options of :class:`~persona.PreferenceLayer`, checked once, each with why it exists."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from persona.config import check_count, check_follow_adapter, check_similarity
from persona.errors import InvalidInputError


@dataclass(frozen=True)
class LayerOptions:
    # -- stated preferences (manual ones tied to a context)
    top_k: int = 5  # contextual preferences applied per request
    min_similarity: float = 0.25  # below this cosine a context does not match
    # -- CIPHER (edits)
    cipher_k: int = 5  # nearest learned preferences considered per request
    cipher_min_similarity: float = 0.0  # CIPHER retrieves by nearest, not by a floor
    # "vote": the clauses most of the nearest state, by embedding (no LLM at request time);
    # "list": the nearest preferences as they are (no LLM either); "sync": CIPHER's
    # aggregation by the LLM on the request path; "background": aggregated off the path.
    cipher_aggregate: str = "vote"
    # CIPHER's inference with the local model: context-aware decoding, each token pushed away
    # from what the model would say had the user changed nothing (1: off). Other models: no
    # effect. Costs a second forward pass per inferred token.
    cipher_infer_guidance: float = 1.0
    # CIPHER's inference with the local model: it writes this many phrases (its greedy one and
    # samples) and keeps the one under which the user's revision is likeliest against the
    # original answer (1: the greedy phrase alone). Other models: no effect.
    cipher_infer_candidates: int = 1
    # CIPHER's inference prompt also shows the edit's counted changes (line starts, words
    # added at either end, letter case, length, punctuation): edit_facts(). Off: the
    # follow-data-7 adapter saw them in all its inference examples (the shipped follow-data-9
    # in half), and with them it names the preference more often but saves no more edits
    # (4 seeds, session 28; benchmarks/follow/README.md, "The follow-data-7 adapter ships").
    # With follow-r64 they do save edits (session 35: 965 -> 697 summaries, 607 -> 574 emails
    # with the wishes).
    # None: on for the local model with its follow adapter (follow-r64 was trained with them
    # in half its inference prompts), off for every other model (PRELUDE's prompt).
    cipher_edit_facts: bool | None = None
    # Where CIPHER's phrase for an edit comes from: "llm" (the model reads the edit, as in
    # PRELUDE), "facts" (the edit's counted changes stated as wishes, "no emoji; at most 40
    # words": no model call unless nothing counted changed) or "both" (the model's phrase and
    # the wishes it leaves out). None: "facts" for the local model with its follow adapter
    # (with follow-r64 the wishes cost 681 / 603 edits where its phrase cost 779 / 759,
    # summaries / emails, 4 seeds, session 33; benchmarks/follow/README.md), "llm" for every
    # other model (the local one without the adapter included: its wishes cost more edits,
    # session 25).
    cipher_infer: str | None = None
    # An edit also stores the clauses of the description its answer was conditioned on that
    # the revision visibly kept (a literal opening or ending, a list or emoji it has): the
    # edit itself shows only what changed. Off: with follow-r64 and the wishes it cost 33
    # more edits on summaries and 51 fewer on emails (4 seeds, session 34;
    # benchmarks/follow/README.md).
    cipher_keep_shown: bool = False
    index_capacity: int = 256  # users whose FAISS index is kept in memory
    # -- the local model: True, the shipped follow adapter; False, none; or a folder path
    follow_adapter: bool | str = True
    # the local model's classifier-free guidance toward the preferences in its prompt (1: off;
    # None: LocalChatModel's default). Costs a second forward pass per token where it applies.
    guidance_scale: float | None = None
    # the local model writes this many answers to a stated preference and keeps the one the
    # preference explains best (1: off; None: LocalChatModel's default). 4 costs about three
    # answers' time on a CPU.
    rerank: int | None = None
    # -- C3PO (verbal feedback)
    # categories the LLM writes per feedback (0: no LLM, pool and the user's examples only).
    # None: 4, except with the embedded 135M model, whose datasets made the learned scope
    # worse than none (test-set recall 0.20 vs 0.34, accuracy 0.674 vs 0.705; README).
    c3po_categories: int | None = None
    c3po_prompts: int = 5  # in- and near-scope prompts per category
    # scope probability at or above which a feedback applies: lower applies it more readily
    # (in-scope recall up, near-scope requests withheld less often). None: the shipped 0.4.
    c3po_threshold: float | None = None
    # -- FSPO (labeled pairs)
    fspo_shots: int = 4  # pairs placed in context (the reference: 4 or 8)
    fspo_describe: bool = False  # also infer a user description from the labels (LLM call)
    # "learned": the embedding scorer with its meta-learned prior (fast, no LLM); "llm": the
    # LLM as a few-shot judge (the local model only: it needs log-likelihoods).
    scorer: str = "learned"
    # -- per-user adapters (persona train-adapters): True when the layer's OpenAI-compatible
    # server serves them (vLLM --lora-modules, see `persona serve-config vllm`), so a request
    # asks for the user's adapter by name; the local model loads them itself either way.
    served_adapters: bool = False

    def __post_init__(self) -> None:
        from persona.learn.cipher_model import AGGREGATE_MODES, INFER_MODES
        from persona.learn.fspo import SCORERS

        if self.c3po_categories is not None:
            check_count("c3po_categories", self.c3po_categories, minimum=0)
        for name in ("c3po_prompts", "top_k", "cipher_k", "index_capacity", "fspo_shots"):
            check_count(name, getattr(self, name))
        if self.c3po_threshold is not None:
            t = self.c3po_threshold
            if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < 1:
                raise InvalidInputError(
                    f"c3po_threshold={t!r:.40} must be a probability strictly between 0 and "
                    "1, e.g. 0.4 (lower applies a feedback more readily)."
                )
        check_similarity("min_similarity", self.min_similarity)
        check_similarity("cipher_min_similarity", self.cipher_min_similarity)
        if self.cipher_aggregate not in AGGREGATE_MODES:
            raise InvalidInputError(
                f"cipher_aggregate={self.cipher_aggregate!r:.40} is unknown; use one of "
                f"{AGGREGATE_MODES} ('vote': no LLM at request time, the default)."
            )
        if self.cipher_infer is not None and self.cipher_infer not in INFER_MODES:
            raise InvalidInputError(
                f"cipher_infer={self.cipher_infer!r:.40} is unknown; use one of {INFER_MODES} "
                "('facts': the edit's counted changes, no model call)."
            )
        check_follow_adapter(self.follow_adapter)
        g = self.cipher_infer_guidance
        if isinstance(g, bool) or not isinstance(g, int | float) or not 0 <= g <= 10:
            raise InvalidInputError(
                f"cipher_infer_guidance={g!r:.40} must be a number from 0 to 10, e.g. 2 "
                "(1: no guidance)."
            )
        n = self.cipher_infer_candidates
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 16:
            raise InvalidInputError(
                f"cipher_infer_candidates={n!r:.40} must be a whole number from 1 to 16, e.g. 6 "
                "(1: the greedy phrase alone)."
            )
        if not isinstance(self.cipher_keep_shown, bool):
            raise InvalidInputError(
                f"cipher_keep_shown={self.cipher_keep_shown!r:.40} must be True or False "
                "(True: an edit also keeps what the user left of the preference applied)."
            )
        if self.cipher_edit_facts is not None and not isinstance(self.cipher_edit_facts, bool):
            raise InvalidInputError(
                f"cipher_edit_facts={self.cipher_edit_facts!r:.40} must be True, False or None "
                "(True: CIPHER's inference prompt shows the edit's counted changes)."
            )
        if self.guidance_scale is not None:
            g = self.guidance_scale
            if isinstance(g, bool) or not isinstance(g, int | float) or not 0 <= g <= 10:
                raise InvalidInputError(
                    f"guidance_scale={g!r:.40} must be a number from 0 to 10, e.g. 1.5 "
                    "(1: no guidance)."
                )
        if self.rerank is not None:
            n = self.rerank
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 16:
                raise InvalidInputError(
                    f"rerank={n!r:.40} must be a whole number from 1 to 16, e.g. 4 (1: off)."
                )
        if not isinstance(self.served_adapters, bool):
            raise InvalidInputError(
                f"served_adapters={self.served_adapters!r:.40} must be True or False."
            )
        if not isinstance(self.fspo_describe, bool):
            raise InvalidInputError(
                f"fspo_describe={self.fspo_describe!r:.40} must be True or False."
            )
        if self.scorer not in SCORERS:
            raise InvalidInputError(
                f"scorer={self.scorer!r:.40} is unknown; use one of {SCORERS} ('learned': "
                "fast, no LLM, the default)."
            )

    @classmethod
    def of(cls, options: dict[str, Any]) -> LayerOptions:
        """Options from keyword arguments; an unknown name is refused with the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise InvalidInputError(
                f"unknown option(s) {sorted(unknown)}; PreferenceLayer takes "
                f"{sorted(known | {'synchronous'})}."
            )
        return cls(**options)
