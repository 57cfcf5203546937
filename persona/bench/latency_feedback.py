"""The latency bench's feedback scenario: ``condition()`` for a user with C3PO preferences.

C3PO's scope model embeds each request's content words with MiniLM, in a word LRU shared by
all requests, so a request's first sight of a word costs an embedding. This part measures
that: cold (every word new) against warm (every word cached). See :mod:`.latency`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from persona.bench.latency import FEEDBACK_PARTS, FEEDBACKS, LatencyConfig, Samples, _progress
from persona.bench.synthetic import SyntheticText
from persona.errors import InvalidInputError

if TYPE_CHECKING:
    from rich.console import Console

    from persona.store.embed import Embedder


def measure_feedback(
    cfg: LatencyConfig, root: Path, embedder: Embedder, console: Console | None
) -> tuple[dict[str, Any], dict[str, dict[str, list[float]]]]:
    """A user with feedback preferences (C3PO, learned without an LLM): ``condition()`` on
    requests whose words the process never saw (cold), then on the same requests again
    (warm). Always a SQLite store: what is measured is the scope step, not the store."""
    from persona.layer import PreferenceLayer
    from persona.learn.request_words import WordVectors, request_words

    uid = "feedback-000"
    texts = FEEDBACKS[: cfg.minilm_feedbacks]
    requests_text = SyntheticText(cfg.seed + 12)
    requests = [requests_text.context() for _ in range(cfg.minilm_feedback_requests)]
    path = root / "minilm-feedback.db"
    with PreferenceLayer.open(path, llm="fake", embedder=embedder, c3po_categories=0) as layer:
        if layer.store.has_user(uid):  # a kept --db: learn again from scratch
            layer.delete_user(uid)
        t0 = time.perf_counter()
        prefs = [layer.learn_from_feedback(uid, text) for text in texts]
        learn_s = time.perf_counter() - t0
        layer.condition(uid, "Write a short note to the team about lunch.")  # warm-up call
        c3po = layer.c3po
        capacity = c3po._words.capacity
        cold, warm = Samples(FEEDBACK_PARTS), Samples(FEEDBACK_PARTS)
        applied = 0
        with _progress(console) as progress:
            task = progress.add_task("query (feedback)", total=2 * len(requests))
            for context in requests:  # cold: every word of the request new to the process
                c3po._words = WordVectors(embedder, capacity)
                applied += bool(cold.record(layer, uid, context).preferences)
                progress.advance(task)
            words = list(dict.fromkeys(w for r in requests for w in request_words(r)))
            if len(words) > capacity:
                raise InvalidInputError(
                    f"the requests' {len(words)} distinct words do not fit the word cache "
                    f"({capacity}), so the warm pass would not be warm; measure fewer requests "
                    f"(minilm_feedback_requests={cfg.minilm_feedback_requests})."
                )
            c3po._words = WordVectors(embedder, capacity)
            c3po._words.embed(words)  # warm: every word of every request cached
            for context in requests:
                warm.record(layer, uid, context)
                progress.advance(task)
    per_request = [len(request_words(r)) for r in requests]

    def phase(samples: Samples) -> dict[str, Any]:
        out: dict[str, Any] = samples.summary(p95=True)
        total, scope = sum(samples.parts["total_ms"]), sum(samples.parts["scope_ms"])
        out["scope_share_of_total"] = round(scope / total, 4) if total else None
        return out

    import torch

    summary = {
        "store": "sqlite",
        "feedbacks": len(prefs),
        "feedback_texts": list(texts),
        "scopes": [p.scope for p in prefs],
        "learn_seconds": round(learn_s, 2),
        "llm": None,
        "requests": len(requests),
        "words_per_request_mean": round(float(np.mean(per_request)), 2),
        "distinct_words": len(words),
        "word_cache_capacity": capacity,
        "torch_threads": torch.get_num_threads(),
        "requests_with_feedback_applied": applied,
        "cold": phase(cold),
        "warm": phase(warm),
    }
    return summary, {"feedback_cold": cold.parts, "feedback_warm": warm.parts}
