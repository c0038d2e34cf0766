"""The 随手写 (scratch) page's generation, as a plain async function the page (and tests) call.

``generate_stream(services, novel, request, story, sampling, memory_on, adapter)`` waits for the
engine if it is still loading (yielding a 模型加载中… placeholder meanwhile), composes a free request
over the story with :func:`xiaoshuo.writing.compose` (memory retrieved by the novel's name, degrading to
triggers + BM25 with a warning when the dense part cannot run; only a store that cannot be opened stops
it), and yields coalesced :class:`Update` s while the engine streams.  ``scratch.py`` only turns
updates into component values and errors into ``gr.Error``.

It works on every backend: without a local tokenizer (``openai`` with no local base model) token
counts are the engine's estimates and the inspector says so; adapters are sent as served names on
``openai``, as folders locally.  It does not build the page, and builds no prompt text itself
(``compose`` assembles it, :mod:`xiaoshuo.writing.prompts` holds the texts); the 创作 (book) page's
generation is ``book_handlers.write_stream``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.locale import t

MAX_CANDIDATES = 3
STREAM_INTERVAL = 0.25  # seconds between page updates (at 0.05 a 2-core machine lagged up to 7.5 s behind)
LOADING_TEXT = t("scratch_loading")  # the Chinese page's text (tests compare with it)
LOAD_TIMEOUT_S = 1800.0
DENSE_TIMEOUT_S = 3.0  # wait this long for an embedding model still loading, then go on without it


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
    lang: str = "zh",
) -> AsyncIterator[Update]:
    """Stream one generation for the page; raises :class:`XiaoshuoError` for anything user-fixable.

    ``lang``: the page's language, for this function's own messages (the library's errors and
    warnings pass through as they are)."""
    if not (request or "").strip():
        raise XiaoshuoError(t("scratch_err_empty_request", lang), fix=t("scratch_fix_empty_request", lang))
    n = min(sampling.n, MAX_CANDIDATES)
    deadline = time.monotonic() + load_timeout
    while services.engine.loading():  # wait for the engine instead of failing the click
        if time.monotonic() > deadline:
            raise XiaoshuoError(
                t("scratch_err_load_timeout", lang),
                expected=f"the model loaded within {load_timeout:.0f} s",
                received=services.engine.status()[1],
                fix=t("scratch_fix_load_timeout", lang),
            )
        yield Update([t("scratch_loading", lang)] * n + [""] * (MAX_CANDIDATES - n), loading=True)
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


# --------------------------------------------------------------------------- compose
def _compose(services, engine, novel, request, story, sampling, memory_on, adapter):
    """The request sent to the engine, and the inspector's account of it — built by ``writing.compose``.

    The page is a free request over a story (no chapter: chapters are the book page's), so the novel's
    memory is retrieved by name and the story is the preceding text.
    """
    from xiaoshuo.engine import GenerationRequest
    from xiaoshuo.writing import compose
    from xiaoshuo.writing.compose import prompt_budget

    budget = prompt_budget(engine, sampling.max_tokens)
    comp = compose(
        None,
        settings=services.settings,
        count_tokens=engine.count_tokens,
        text=story,
        request=request,
        store=services.store() if memory_on else None,  # only a store that cannot be read raises
        memory_novel=novel,
        memory_on=memory_on,
        budget=budget,
        token_count_exact=engine.token_count_exact,
        tokenizer_source=engine.tokenizer_source,
        dense_timeout=DENSE_TIMEOUT_S,
    )
    lora = services.lora_for(engine, adapter)
    req = GenerationRequest(messages=comp.messages, sampling=sampling, lora=lora)
    prompt = engine.render(req) or "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in req.messages)
    memory_rows = [r for r in comp.account if str(r["source"]).startswith("memory:")]
    story_section = next((r["section"] for r in comp.account if r["source"] == "text"), None)
    report = {
        "prompt": prompt,
        "prompt_tokens": comp.tokens,
        "budget": comp.budget,
        "token_counts": comp.tokenizer_source,  # says "estimate" when there is no local tokenizer
        "token_counts_exact": comp.token_count_exact,
        "account": comp.account,
        "memory_included": [r for r in memory_rows if r["included"]],
        "memory_dropped": [r for r in memory_rows if not r["included"]],
        "memory_warnings": comp.warnings,
        "memory_dense_used": comp.dense_used,
        "story_chars_sent": len(comp.section(story_section)) if story_section else 0,
        "adapter": adapter,
        "lora_sent": lora,
    }
    return req, report
