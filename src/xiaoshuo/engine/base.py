"""The one ``Engine`` interface every caller uses, and what all backends share.

A backend implements ``_submit(prepared, sink)`` — start generating on *its own*
thread (or event loop) and push :class:`Delta` items, then ``END`` or an
exception, into ``sink`` — and ``_abort(request_id)``.  This base class turns
that into:

* ``stream(request)``: an async iterator usable from any thread and any event
  loop.  Items cross threads through ``loop.call_soon_threadsafe`` into a queue
  owned by the *caller's* loop, so no caller ever awaits on another loop's
  objects (the seed's WebUI hang).  A consumer that stops early, a cancelled
  task, or ``cancel(request_id)`` aborts the request in the backend.
* ``generate(request)``: a blocking call returning the finished candidates.
* ``close()`` / context manager.

``score(prefix, text, lora=)`` measures instead of generating: the log-probability of ``text`` after
``prefix`` (the model's prompt log-probs; nothing is sampled), through the backend's ``_score``.

It also renders chat messages with the tokenizer's chat template (adding the
configured system prompt), counts prompt tokens and refuses prompts that do not
fit the context.  It does not know about vLLM, transformers or HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xiaoshuo.engine.types import Candidate, Delta, GenerationRequest, GenerationResult, SamplingError
from xiaoshuo.errors import XiaoshuoError

log = logging.getLogger(__name__)

#: The context assumed when a backend does not know its model's (``max_model_len`` None): a remote server.
DEFAULT_CONTEXT = 32768
ESTIMATE_SOURCE = "estimate: no local tokenizer (≈1 token per 汉字, over-counts) / 估算：无本地分词器"

END = object()  # the backend's last item for a request
Sink = Callable[[Any], None]


class EngineError(XiaoshuoError):
    """The engine failed or was used wrongly (closed, unknown adapter, prompt too long …)."""


@dataclass(frozen=True)
class TextScore:
    """How likely a model finds a text after a prefix: the sum of the text's token log-probabilities
    (natural log) and the number of tokens summed."""

    logprob: float
    tokens: int


@dataclass(frozen=True)
class Prepared:
    """A validated request with the token ids of its rendered prompt."""

    request: GenerationRequest
    prompt_ids: list[int] | None  # None when no local tokenizer (openai backend)
    lora: tuple[str, str] | None  # (name, path)


class Engine(ABC):
    """Generation engine.  Build with :func:`xiaoshuo.engine.load_engine`."""

    backend: str = "?"

    def __init__(self, *, tokenizer: Any, max_model_len: int | None, system_prompt: str) -> None:
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        self.system_prompt = system_prompt
        self._adapters: dict[str, str] = {}
        self._closed = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ adapters
    @property
    def adapters(self) -> dict[str, str]:
        """Registered LoRA adapters: name → path."""
        return dict(self._adapters)

    def register_adapter(self, name: str, path: str | Path) -> str:
        """Make a peft-format adapter folder usable by ``request.lora = name``."""
        folder = Path(path).expanduser()
        if not (folder / "adapter_config.json").is_file():
            raise EngineError(
                f"LoRA 适配器目录无效 (not a LoRA adapter folder): {name}",
                expected="a folder with adapter_config.json and adapter weights (peft format)",
                received=str(folder),
                fix="检查路径，或先用 xiaoshuo train 训练出适配器",
            )
        with self._lock:
            known = self._adapters.get(name)
            if known is not None and known != str(folder.resolve()):
                raise EngineError(
                    f"适配器名称已被占用 (adapter name already used): {name}",
                    received=str(folder),
                    expected=f"a new name (taken by {known})",
                )
            self._adapters[name] = str(folder.resolve())
        self._adapter_registered(name, self._adapters[name])
        return name

    def _adapter_registered(self, name: str, path: str) -> None:  # noqa: B027 - optional hook
        """Backends that preload adapters override this."""

    def _resolve_lora(self, lora: str | None) -> tuple[str, str] | None:
        from xiaoshuo.adapters import is_none

        if is_none(lora):
            return None
        if lora in self._adapters:
            return lora, self._adapters[lora]
        if Path(lora).expanduser().is_dir():
            resolved = str(Path(lora).expanduser().resolve())
            for name, path in self._adapters.items():
                if path == resolved:
                    return name, path
            name = self.register_adapter(self._free_name(Path(resolved)), lora)
            return name, self._adapters[name]
        raise EngineError(
            f"未知的 LoRA 适配器 (unknown adapter): {lora}",
            expected="a registered adapter name (" + ", ".join(self._adapters) + ") or an adapter folder"
            if self._adapters
            else "an adapter folder with adapter_config.json",
            received=lora,
            fix="用 --lora name=path 注册，或检查路径",
        )

    def _free_name(self, folder: Path) -> str:
        """A name for an adapter used by path: its folder (its run for ``<run>/final_model``), made unique."""
        from xiaoshuo.adapters import run_name

        stem = run_name(folder)
        name, i = stem, 1
        while name in self._adapters:
            i += 1
            name = f"{stem}-{i}"
        return name

    # ------------------------------------------------------------------ prompts
    def render(self, request: GenerationRequest) -> str:
        """The exact prompt text sent to the model (chat template applied for messages)."""
        if request.prompt is not None:
            return request.prompt
        messages = list(request.messages or ())
        if self.system_prompt and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        if self.tokenizer is None:
            raise EngineError("没有本地分词器，无法渲染对话模板 (no local tokenizer to render messages)")
        if not getattr(self.tokenizer, "chat_template", None):
            raise EngineError(
                "模型的分词器没有对话模板 (the tokenizer has no chat template)",
                expected="an instruct/chat model (e.g. Qwen2.5-*-Instruct) for messages",
                received=str(getattr(self.tokenizer, "name_or_path", "?")),
                fix="改用 prompt 文本请求，或换用带对话模板的模型",
            )
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` for this model (callers trim memory/history with it).

        Exact with a local tokenizer; otherwise :func:`estimate_tokens`, an
        over-estimate (see :attr:`token_count_exact`).  Never raises for lack of one.
        """
        if not text:
            return 0
        if self.tokenizer is None:
            return estimate_tokens(text)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # ------------------------------------------------------------------ token budgets
    @property
    def context_len(self) -> int:
        """The model's context in tokens (prompt + answer): ``max_model_len``, or :data:`DEFAULT_CONTEXT`
        when the backend does not know it.  Every token budget starts from this."""
        return self.max_model_len or DEFAULT_CONTEXT

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """Tokens of ``messages`` as this engine will send them (chat template and system prompt included).

        Exact when the engine renders locally (a tokenizer with a chat template).  Otherwise — an
        OpenAI-compatible server renders remotely — a documented over-estimate: every message's content
        (:meth:`count_tokens`, itself an over-estimate without a tokenizer) plus 8 tokens of template per
        message, plus the system prompt this engine would add and 8 more for the generation prompt.
        """
        try:
            rendered = self.render(GenerationRequest(messages=list(messages)))
        except Exception:  # no local tokenizer / chat template: estimate below
            rendered = ""
        if rendered.strip():
            return self.count_tokens(rendered)
        system = "" if any(m["role"] == "system" for m in messages) else (self.system_prompt or "")
        return sum(self.count_tokens(m["content"]) + 8 for m in messages) + self.count_tokens(system) + 8

    @property
    def token_count_exact(self) -> bool:
        """True when :meth:`count_tokens` uses the model's tokenizer, False when it estimates."""
        return self.tokenizer is not None

    @property
    def tokenizer_source(self) -> str:
        """A short description of how tokens are counted (for the context inspector)."""
        if self.tokenizer is None:
            return ESTIMATE_SOURCE
        return f"local tokenizer {getattr(self.tokenizer, 'name_or_path', '') or '?'}"

    def served_adapters(self) -> list[str]:
        """Adapter names a request's ``lora`` can use right now (local: the registered names)."""
        with self._lock:
            return list(self._adapters)

    def prepare(self, request: GenerationRequest) -> Prepared:
        """Validate a request against this engine: adapter, backend limits, context length."""
        if self._closed:
            raise EngineError("引擎已关闭 (the engine is closed)", fix="重新 load_engine()")
        self._check_sampling(request)
        lora = self._resolve_lora(request.lora)
        text = self.render(request)
        ids = None
        if self.tokenizer is not None:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if self.max_model_len is not None and len(ids) + request.sampling.max_tokens > self.max_model_len:
                raise EngineError(
                    "提示词过长 (prompt does not fit the context)",
                    expected=f"prompt tokens + max_tokens <= {self.max_model_len} (the model's context)",
                    received=f"{len(ids)} prompt tokens + {request.sampling.max_tokens} max_tokens",
                    fix="缩短前文/记忆，或减小 max_tokens",
                )
        return Prepared(request, ids, lora)

    def _check_sampling(self, request: GenerationRequest) -> None:  # noqa: B027 - optional hook
        """Backends reject settings they cannot honour (raise SamplingError)."""

    def _unsupported(self, name: str, value: Any, why: str) -> SamplingError:
        return SamplingError(
            f"{self.backend} 后端不支持该设置 (backend {self.backend} cannot honour {name})",
            received=value,
            expected=why,
            fix="修改该参数，或换用 vllm 后端",
        )

    # ------------------------------------------------------------------ streaming
    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """Stream deltas of ``request``; safe from any thread and any event loop."""
        prepared = self.prepare(request)
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[Any] = asyncio.Queue()

        def sink(item: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the caller's loop is gone: nothing to wake
                loop.call_soon_threadsafe(items.put_nowait, item)

        finished = False
        self._submit(prepared, sink)
        try:
            while True:
                item = await items.get()
                if item is END:
                    finished = True
                    return
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                yield item
        finally:
            if not finished:
                self._abort(request.request_id)

    def generate(self, request: GenerationRequest, *, timeout: float | None = None) -> GenerationResult:
        """Blocking generation of all candidates (do not call from inside an event loop)."""
        prepared = self.prepare(request)
        items: queue.Queue[Any] = queue.Queue()
        self._submit(prepared, items.put)
        result = GenerationResult(request.request_id, [], len(prepared.prompt_ids or ()))
        by_index: dict[int, Candidate] = {}
        try:
            while True:
                item = items.get(timeout=timeout)
                if item is END:
                    break
                if isinstance(item, BaseException):
                    raise item
                cand = by_index.setdefault(item.index, Candidate(item.index))
                cand.text += item.text
                cand.token_ids.extend(item.token_ids)
                cand.completion_tokens = max(cand.completion_tokens, item.completion_tokens)
                if item.finish_reason:
                    cand.finish_reason = item.finish_reason
                result.prompt_tokens = item.prompt_tokens or result.prompt_tokens
        except BaseException:
            self._abort(request.request_id)
            raise
        result.candidates = [by_index[i] for i in sorted(by_index)]
        return result

    # ------------------------------------------------------------------ scoring
    def score(self, prefix: str, text: str, *, lora: str | None = None) -> TextScore:
        """Log-probability of ``text`` following ``prefix`` under the model (or adapter ``lora``).

        The model reads ``prefix`` + ``text`` once and reports the log-probability of each of ``text``'s
        tokens (vLLM's prompt log-probs; one forward pass on transformers); nothing is generated.  The two
        parts are tokenized separately, so the boundary is the same for every model sharing a tokenizer
        (base and adapter).  Blocking; safe from any thread.  Backends that cannot score raise
        :class:`EngineError`.
        """
        if self._closed:
            raise EngineError("引擎已关闭 (the engine is closed)", fix="重新 load_engine()")
        if not text:
            return TextScore(0.0, 0)
        return self._score(prefix, text, self._resolve_lora(lora))

    def _score_ids(self, prefix: str, text: str) -> tuple[list[int], list[int]]:
        """Token ids of ``prefix`` and ``text`` (tokenized separately), checked against the context."""
        if self.tokenizer is None:
            raise self._cannot_score("no local tokenizer")
        pre = self.tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else []
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not pre:  # the first token has no log-prob: a BOS (or the text's first token) opens the prompt
            bos = getattr(self.tokenizer, "bos_token_id", None)
            pre, ids = ([bos], ids) if bos is not None else (ids[:1], ids[1:])
        if self.max_model_len is not None and len(pre) + len(ids) + 1 > self.max_model_len:
            raise EngineError(
                "评分文本过长 (text to score does not fit the context)",
                expected=f"prefix + text tokens < {self.max_model_len}",
                received=f"{len(pre)} + {len(ids)} tokens",
                fix="缩短前文或评分文本 (shorten the prefix or the text)",
            )
        return pre, ids

    def _score(self, prefix: str, text: str, lora: tuple[str, str] | None) -> TextScore:
        raise self._cannot_score("not implemented by this backend")

    def _cannot_score(self, why: str) -> EngineError:
        return EngineError(
            f"{self.backend} 后端不能计算文本概率 (backend {self.backend} cannot score text: {why})",
            fix="换用 vllm 或 transformers 后端 (use the vllm or transformers backend)",
        )

    def cancel(self, request_id: str) -> None:
        """Abort a running request (the stop button); its stream ends with finish_reason 'abort'."""
        self._abort(request_id)

    # ------------------------------------------------------------------ lifecycle
    @abstractmethod
    def _submit(self, prepared: Prepared, sink: Sink) -> None: ...

    @abstractmethod
    def _abort(self, request_id: str) -> None: ...

    @abstractmethod
    def unfinished_requests(self) -> int:
        """Requests the backend still holds (0 once everything finished or was aborted)."""

    @abstractmethod
    def _shutdown(self) -> None: ...

    def close(self) -> None:
        """Stop the backend and free its memory; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._shutdown()
        _free_memory()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def estimate_tokens(text: str) -> int:
    """A conservative count of the tokens of ``text`` when no tokenizer is at hand.

    Made to *over*-count a Qwen-style byte-level BPE (Qwen2/2.5/3, Llama-3 style
    vocabularies), so that memory and history trimmed with it still fit:
    one token per 汉字 / CJK or fullwidth punctuation / digit / ASCII punctuation
    mark / other BMP character, one per 3 bytes of an ASCII letter or space run,
    every byte of a character beyond the BMP (a byte-level BPE never needs more),
    and one more per line.  Qwen merges common words, so typical prose (简体 or
    繁體) counts 1.1-1.5× its exact size (tests/unit/test_engine_tokens.py); a text
    made only of 生僻字 (2-3 tokens each in Qwen) can count below it.
    """
    if not text:
        return 0
    total = text.count("\n") + 1
    run = 0  # bytes of the current ASCII letter/space run
    for ch in text:
        code = ord(ch)
        if code < 128 and (ch.isalpha() or ch in " \t"):
            run += 1
            continue
        if run:
            total += -(-run // 3)
            run = 0
        if ch == "\n":
            continue
        if code > 0xFFFF:
            total += len(ch.encode("utf-8"))
        else:  # CJK, digits, ASCII punctuation, other BMP characters: one each
            total += 1
    if run:
        total += -(-run // 3)
    return total


def _free_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


class WorkerQueueEngine(Engine):
    """An :class:`Engine` whose one worker thread owns the model and takes jobs from a queue (transformers,
    llamacpp): the request bookkeeping both share — which requests run, which were cancelled — under one
    lock.  The worker reads :meth:`_is_cancelled` between tokens and discards a finished request's ids."""

    def _init_queue(self) -> None:
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._cancelled: set[str] = set()
        self._running: set[str] = set()
        self._state_lock = threading.Lock()

    def _submit(self, prepared: Prepared, sink: Sink) -> None:
        with self._state_lock:
            self._running.add(prepared.request.request_id)
        self._jobs.put((prepared, sink))

    def _abort(self, request_id: str) -> None:
        with self._state_lock:
            if request_id in self._running:
                self._cancelled.add(request_id)

    def unfinished_requests(self) -> int:
        with self._state_lock:
            return len(self._running)

    def _is_cancelled(self, rid: str) -> bool:
        with self._state_lock:
            return rid in self._cancelled

