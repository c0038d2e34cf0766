"""The 创作 page's generation, as a plain async function the page (and tests) call.

``generate_stream(services, novel, request, story, sampling, memory_on, adapter)`` waits for the
engine if it is still loading (yielding a 模型加载中… placeholder meanwhile), recalls story memory
(degrading to triggers + BM25 with a warning when the dense part cannot run; only a store that cannot
be opened stops it), composes the request, and yields coalesced :class:`Update` s while the engine
streams.  ``app.py`` only turns updates into component values and errors into ``gr.Error``.

It works on every backend: without a local tokenizer (``openai``) token counts are estimates and
the inspector says so; adapters are sent as served names on ``openai``, as folders locally.
It does not build the page, and ``_compose`` is temporary (``xiaoshuo.writing.compose`` replaces it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from xiaoshuo.errors import XiaoshuoError

MAX_CANDIDATES = 3
STORY_TAIL_CHARS = 6000
STREAM_INTERVAL = 0.05  # seconds between page updates while streaming (not one re-render per token)
LOADING_TEXT = "模型加载中… (loading the model)"
LOAD_TIMEOUT_S = 1800.0


@dataclass
class Update:
    """One state of the page: the candidate texts, the inspector report, page-level notices."""

    texts: list[str]
    report: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    loading: bool = False
    finish_reasons: list[str | None] = field(default_factory=lambda: [None] * MAX_CANDIDATES)


async def generate_stream(
    services: Any,
    novel: str,
    request: str,
    story: str,
    sampling: Any,
    memory_on: bool,
    adapter: str | None,
    *,
    interval: float = STREAM_INTERVAL,
    load_timeout: float = LOAD_TIMEOUT_S,
) -> AsyncIterator[Update]:
    """Stream one generation for the page; raises :class:`XiaoshuoError` for anything user-fixable."""
    if not (request or "").strip():
        raise XiaoshuoError("请先填写写作要求 (empty writing request)", fix="在「写作要求」里写下要写什么")
    n = min(sampling.n, MAX_CANDIDATES)
    deadline = time.monotonic() + load_timeout
    while services.engine.loading():  # wait for the engine instead of failing the click
        if time.monotonic() > deadline:
            raise XiaoshuoError(
                "模型加载超时 (the model is still loading)",
                expected=f"the model loaded within {load_timeout:.0f} s",
                received=services.engine.status()[1],
                fix="查看页面顶部的模型状态；大模型首次加载可能很慢，稍后再试",
            )
        yield Update([LOADING_TEXT] * n + [""] * (MAX_CANDIDATES - n), loading=True)
        await asyncio.sleep(0.5)
    engine = services.engine.get()  # a failed load raises its clear error here
    req, report = await asyncio.to_thread(
        _compose, services, engine, novel or "default", request, story or "", sampling, memory_on, adapter
    )
    warnings = list(report.get("memory_warnings", []))
    texts = [""] * MAX_CANDIDATES
    reasons: list[str | None] = [None] * MAX_CANDIDATES
    yield Update(list(texts), report, warnings)
    last, pending = time.monotonic(), False
    async for delta in engine.stream(req):
        if delta.index < MAX_CANDIDATES:
            texts[delta.index] += delta.text or ""
            reasons[delta.index] = delta.finish_reason or reasons[delta.index]
            pending = pending or bool(delta.text)
        # coalesce: one page update per interval, not one per token
        if pending and time.monotonic() - last >= interval:
            yield Update(list(texts), report, warnings, finish_reasons=list(reasons))
            last, pending = time.monotonic(), False
            # Deltas queue up faster than we read them, so reading never suspends; let Gradio's
            # sender task run, or the page gets nothing until the generation ends.
            await asyncio.sleep(0.005)
    yield Update(list(texts), report, warnings, finish_reasons=list(reasons))


# --------------------------------------------------------------------------- tokens
def estimate_tokens(text: str) -> int:
    """A conservative token count without a tokenizer: one per CJK character, one per 3 other characters."""
    cjk = sum(1 for ch in text if ord(ch) >= 0x2E80)
    return cjk + -(-(len(text) - cjk) // 3)


def token_counter(engine: Any) -> tuple[Callable[[str], int], bool, str]:
    """``(count, exact, source)`` for an engine, with or without a local tokenizer."""
    exact = getattr(engine, "token_count_exact", None)
    if exact is None:  # engines before Engine.token_count_exact existed
        exact = engine.tokenizer is not None
        count = engine.count_tokens if exact else estimate_tokens
    else:
        count = engine.count_tokens  # never raises: estimates itself when it has no tokenizer
    source = getattr(engine, "tokenizer_source", None) or ("local tokenizer" if exact else "estimate")
    return count, bool(exact), str(source)


# --------------------------------------------------------------------------- memory
def recall(services: Any, novel: str, query: str, recent_text: str) -> tuple[list[Any], list[str], bool]:
    """Memory hits, warnings, and whether dense retrieval ran.  Only an unopenable store raises."""
    import xiaoshuo.memory as memory
    from xiaoshuo.memory import StoryMemoryError

    store = services.store()  # an unreadable / locked store stops generation: the writer must know
    retrieve = getattr(memory, "retrieve", None)
    if retrieve is not None:
        got = retrieve(store, novel, query, recent_text=recent_text)
        return list(got.hits), list(got.warnings), bool(got.dense_used)
    try:  # fallback until xiaoshuo.memory.retrieve lands
        return memory.search(store, novel, query, recent_text=recent_text), [], store.embedding.dense
    except StoryMemoryError as exc:
        if type(exc).__name__ == "StoreLockedError":
            raise
        warning = (
            "记忆的向量检索不可用，本次只用触发词与 BM25 "
            f"(dense memory retrieval unavailable): {exc.message}"
        )
        try:
            hits = store.retriever(novel).search(
                query, recent_text=recent_text, k=store.settings.memory.top_k, dense=[]
            )
        except XiaoshuoError as inner:
            return [], [warning, f"记忆检索失败，本次不用记忆 (memory skipped): {inner.message}"], False
        return hits, [warning], False


# --------------------------------------------------------------------------- compose (temporary)
def _compose(services, engine, novel, request, story, sampling, memory_on, adapter):
    """The request sent to the engine, and the inspector's account of it."""
    from xiaoshuo.engine import GenerationRequest
    from xiaoshuo.memory import build_context

    count, exact, source = token_counter(engine)
    memory_text, included, dropped, warnings, dense_used = "", [], [], [], None
    if memory_on:
        hits, warnings, dense_used = recall(services, novel, request, story[-2000:])
        ctx = build_context(hits, services.settings.memory.context_token_budget, count)
        memory_text, included, dropped = ctx.text, ctx.included, ctx.dropped
    lora = services.lora_for(engine, adapter)
    tail = story[-STORY_TAIL_CHARS:]
    while True:
        parts = [
            f"【记忆】\n{memory_text}" if memory_text else "",
            f"【前文】\n{tail}" if tail else "",
            f"【写作要求】\n{request.strip()}",
        ]
        req = GenerationRequest(
            messages=[{"role": "user", "content": "\n\n".join(p for p in parts if p)}],
            sampling=sampling,
            lora=lora,
        )
        prompt = engine.render(req) or "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in req.messages)
        limit = (engine.max_model_len or 1 << 30) - sampling.max_tokens
        if count(prompt) <= limit or not tail:
            break
        tail = tail[len(tail) // 4 :]  # keep the most recent three quarters, until it fits
    report = {
        "prompt": prompt,
        "prompt_tokens": count(prompt),
        "token_counts": f"exact: {source}" if exact else f"estimate 估算: {source}",
        "memory_included": included,
        "memory_dropped": dropped,
        "memory_warnings": warnings,
        "memory_dense_used": dense_used,
        "story_chars_sent": len(tail),
        "adapter": adapter,
        "lora_sent": lora,
    }
    return req, report
