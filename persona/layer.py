"""``PreferenceLayer``: the facade that wires the store, the learners and the agents."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from persona.adapters.api import AdapterMethods
from persona.config import (
    check_text,
    check_user_id,
)
from persona.errors import InvalidInputError, UnknownUserError
from persona.feedback import FeedbackMethods
from persona.labels import LabelMethods
from persona.learn.base import Hit, Learner, Request, Write, merge
from persona.learn.compose import make_learners
from persona.manual import ManualPreferenceMethods
from persona.options import LayerOptions
from persona.store.base import Store
from persona.store.embed import Embedder, load_embedder, reembed_if_changed
from persona.store.index import VectorIndex
from persona.types import Conditioning, Preference
from persona.users import UserMethods

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from persona.agents.runnable import Mode, Placement, PreferenceRunnable

log = logging.getLogger(__name__)


class PreferenceLayer(
    ManualPreferenceMethods, FeedbackMethods, LabelMethods, AdapterMethods, UserMethods
):
    """Learns each user's preferences and conditions agents with them.

    Open one with :meth:`open`; it is safe to share between threads.
    """

    def __init__(
        self,
        store: Store,
        *,
        embedder: Embedder,
        llm: BaseChatModel | str | None = None,
        home: Path | None = None,
        **options: Any,
    ) -> None:
        """``options``: see :class:`~persona.options.LayerOptions` (each with why it exists)."""
        opts = self.options = LayerOptions.of(options)
        if llm is not None and not isinstance(llm, str):
            from langchain_core.language_models import BaseChatModel

            if not isinstance(llm, BaseChatModel):
                raise InvalidInputError(
                    f"llm must be a LangChain BaseChatModel or a spec string, got "
                    f"{type(llm).__name__}; pass e.g. llm='local' or llm=ChatOpenAI(...)."
                )
        elif llm is not None:
            from persona.agents.models import check_spec

            check_spec(llm)
        self.follow_adapter = opts.follow_adapter
        self.guidance_scale = opts.guidance_scale
        self.rerank = opts.rerank
        self.store = store
        self.embedder = embedder
        self.home = home
        self._llm_spec: BaseChatModel | str = llm if llm is not None else "local"
        self._llm: BaseChatModel | None = None
        self._lock = threading.RLock()
        self.index = VectorIndex(
            store, home / "index" if home else None, capacity=opts.index_capacity
        )
        # Rows fetched per request for every learner to choose from (nearest first).
        self._search_k = 4 * (opts.top_k + opts.cipher_k)
        learners = make_learners(
            store,
            embedder,
            lambda: self.llm,
            self._nearest,
            opts,
            local_llm=self._local_llm(),
            follows=self._follows(),
            cache_dir=home / "cache" if home else None,
        )
        self.stated, self.c3po, self.cipher, self.fspo = learners
        self.learners: tuple[Learner, ...] = (self.stated, self.c3po, self.cipher, self.fspo)
        for user in reembed_if_changed(store, embedder):
            self.index.invalidate(user)
        self.index.sweep(store.users())  # users deleted through another app server

    def _local_llm(self) -> bool:
        """True when the layer's LLM is the embedded local model."""
        from persona.agents.models import LocalChatModel

        return self._llm_spec == "local" or isinstance(self._llm_spec, LocalChatModel)

    def _follows(self) -> bool:
        """True when the layer's LLM is the local model with a follow adapter on."""
        from persona.agents.models import LocalChatModel

        if isinstance(self._llm_spec, LocalChatModel):
            return bool(self._llm_spec.follow_adapter)
        return self._llm_spec == "local" and bool(self.follow_adapter)

    # -- construction ----------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        llm: BaseChatModel | str | None = None,
        embedder: Embedder | str | None = None,
        **options: Any,
    ) -> PreferenceLayer:
        """Open (or create) a layer.

        ``path``: a directory (``$PERSONA_HOME`` or ``~/.local/share/persona`` by default) that
        holds ``persona.db``, the FAISS cache and adapters; or a ``.db`` file; or a
        ``postgresql://`` URL (then ``$PERSONA_HOME`` holds this server's FAISS cache and
        adapters).
        ``llm``: a LangChain chat model or a spec (``"local"``, ``"openai:MODEL@URL"``,
        ``"fake"``); loaded on first use. ``embedder``: ``"minilm"`` (default), ``"hash"`` or
        an :class:`~persona.store.embed.Embedder`.
        """
        from persona.store.locate import open_store

        synchronous = options.pop("synchronous", "normal")
        LayerOptions.of(options)  # refuse bad options before creating anything
        store, home = open_store(path, synchronous=synchronous)
        try:
            return cls(store, embedder=load_embedder(embedder), llm=llm, home=home, **options)
        except Exception:
            store.close()
            raise

    @property
    def llm(self) -> BaseChatModel:
        """The chat model the learners use (loaded on first use)."""
        with self._lock:
            if self._llm is None:
                from persona.agents.models import load_chat_model

                self._llm = load_chat_model(
                    self._llm_spec,
                    home=self.home,
                    follow_adapter=self.follow_adapter,
                    guidance_scale=self.guidance_scale,
                    rerank=self.rerank,
                )
            return self._llm

    # -- helpers ----------------------------------------------------------------
    def _known(self, user_id: str) -> str:
        check_user_id(user_id)
        if not self.store.has_user(user_id):
            raise UnknownUserError(
                f"user {user_id!r} has no data here; check the id (layer.users() lists them) "
                "or learn something for this user first."
            )
        return user_id

    def _embed_one(self, text: str) -> Any:
        return self.embedder.embed([text])[0]

    @contextmanager
    def _writing(self, user_id: str) -> Iterator[Write]:
        """One SQL transaction; the user's FAISS cache is updated after it commits.

        The cache is never touched while the store's write lock is held (one lock order), and
        it moves only from the exact version the transaction started at.
        """
        write = Write(self.store, user_id)
        with self.store.transaction():
            write.before = self.store.index_version(user_id)
            yield write
            write.after = self.store.index_version(user_id)
        if write.after != write.before and write.rebuild:
            self.index.forget(user_id)
        elif write.after != write.before:
            add = None
            if write.added:
                import numpy as np

                ids, vecs = zip(*write.added, strict=True)
                add = (np.asarray(ids, dtype=np.int64), np.stack(vecs))
            self.index.update(user_id, write.before, write.after, add=add, remove=write.removed)

    def _nearest(
        self, user_id: str, embedding: Any, timings: dict[str, float] | None = None
    ) -> tuple[Hit, ...]:
        """The user's enabled, unflagged rows nearest to ``embedding``, nearest first (with
        the FAISS and SQL times added to ``timings`` when given)."""
        t0 = time.perf_counter()
        hits = self.index.search(user_id, embedding, self._search_k)
        t1 = time.perf_counter()
        rows = self.store.get_preferences(user_id, [i for i, _ in hits])
        if timings is not None:
            timings["faiss_ms"] = (t1 - t0) * 1e3
            timings["sql_ms"] = (time.perf_counter() - t1) * 1e3
        sims = dict(hits)
        return tuple(Hit(p, sims[p.id]) for p in rows if not p.flagged)

    # -- learning ----------------------------------------------------------------
    def learn_from_edit(
        self, user_id: str, context: str, output: str, edited: str
    ) -> list[Preference]:
        """CIPHER: learn the preference behind the user's edit of ``output`` into ``edited``.

        If the edit changes nothing, the preference that was used for this context is stored
        again (CIPHER's accept rule). Otherwise the LLM infers a short preference phrase from
        the two texts and their word diff (or, with ``cipher_infer="facts"``, the edit's
        counted changes are stated as wishes with no model call), stored with the context's
        embedding; provenance is the edit's id. If the LLM fails or answers junk, a
        :class:`PersonaError` is raised and the store is left as it was.
        """
        check_user_id(user_id)
        context = check_text(context, "context")
        output = check_text(output, "output")
        edited = check_text(edited, "edited")
        vec = self._embed_one(context)
        return self.cipher.learn(self._writing, user_id, context, vec, output, edited)

    # -- conditioning ----------------------------------------------------------------
    def condition(self, user_id: str, context: str) -> Conditioning:
        """What applies to ``context`` for this user, and the prompt text that carries it.

        Embeds the context once, searches the user's index once, asks every learner for its
        contribution, then merges them. No LLM is called unless ``cipher_aggregate="sync"``.
        """
        check_user_id(user_id)
        context = check_text(context, "context")
        if not self.store.has_user(user_id):
            return Conditioning()
        t0 = time.perf_counter()
        qvec = self._embed_one(context)
        timings = {"embed_ms": (time.perf_counter() - t0) * 1e3}
        request = Request(user_id, context, qvec, self._nearest(user_id, qvec, timings))
        parts = [learner.contribute(request) for learner in self.learners]
        return merge(parts, timings, self.store.get_adapter(user_id))

    def as_runnable(
        self,
        chat_model: BaseChatModel | str | None = None,
        *,
        placement: Placement = "auto",
        best_of: int = 1,
        mode: Mode = "both",
    ) -> PreferenceRunnable:
        """A Runnable that conditions ``chat_model`` (default: the layer's LLM) per user.

        Call it with ``config={"configurable": {"user_id": ...}}``. ``best_of=n``: sample n
        answers and return the one the user's reward (:meth:`score`) prefers. ``mode``:
        "both" (the prompt and the user's adapter when there is one), "prompt" or "adapter".
        """
        from persona.agents.models import load_chat_model
        from persona.agents.runnable import PreferenceRunnable

        model = (
            self.llm
            if chat_model is None
            else load_chat_model(
                chat_model,
                home=self.home,
                follow_adapter=self.follow_adapter,
                guidance_scale=self.guidance_scale,
                rerank=self.rerank,
            )
        )
        return PreferenceRunnable(
            self.condition,
            model,
            placement,
            best_of=best_of,
            reward=self._reward,
            mode=mode,
            adapter_folder=self._adapter_folder,
            served_adapters=self.options.served_adapters,
        )

    def close(self) -> None:
        self.cipher.close()
        self.index.clear()
        self.store.close()

    def __enter__(self) -> PreferenceLayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
