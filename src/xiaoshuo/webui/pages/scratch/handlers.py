"""随手写 (scratch)'s handlers: plain functions over ``Services`` (and the page's ``lang``), no components.

The story is autosaved per novel name by ``Services.scratch`` (:mod:`xiaoshuo.writing.scratch`,
``data/scratch/``): a scratch text, never a book's chapter, even under a book's slug (the name picks
the memory).  :func:`generate_stream` waits for the engine if it is still loading (``webui.runtime``),
composes a free request over the story with :func:`xiaoshuo.writing.compose` (memory retrieved by the
novel's name, degrading to triggers + BM25 with a warning when the dense part cannot run; only a store
that cannot be opened stops it), and yields coalesced :class:`Update` s while the engine streams;
:func:`generate` turns them into the page's component values.

It works on every backend: without a local tokenizer (``openai`` with no local base model) token
counts are the engine's estimates and the inspector says so; adapters are sent as served names on
``openai``, as folders locally.  Errors are raised as ``XiaoshuoError`` (``layout`` wires every handler
through ``webui.errors.guard``).  Not responsible for the layout (``layout.py``), for prompt text
(``compose`` assembles it, :mod:`xiaoshuo.writing.prompts` holds the texts) or for chapters and
outlines (the book page).  The page keeps no state between events: the story is the name's scratch
file on disk (shared by every page on that name, by design), everything else is the components' own
values.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.runtime import (
    LOAD_TIMEOUT_S,
    MAX_CANDIDATES,
    STREAM_INTERVAL,
    YIELD_S,
    Coalescer,
    inspector_item,
    inspector_reason,
    loading_texts,
    wait_for_engine,
)
from xiaoshuo.webui.services import Services

DEFAULT_NOVEL = "default"  # the story file of a page with no novel chosen
DENSE_TIMEOUT_S = 3.0  # wait this long for an embedding model still loading, then go on without it


@dataclass
class Update:
    """One state of the page: the candidate texts, the inspector report, page-level notices."""

    texts: list[str]
    report: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    loading: bool = False
    finish_reasons: list[str | None] = field(default_factory=lambda: [None] * MAX_CANDIDATES)


# ----------------------------------------------------------------------------- the form
def sampling(temperature, top_p, top_k, max_tokens, rep, seed, n, *, lang: str = "zh"):
    """The form's numbers as ``SamplingSettings``; a bad value is an ``XiaoshuoError``."""
    from xiaoshuo.engine import SamplingSettings

    try:
        return SamplingSettings(
            temperature=float(temperature),
            top_p=float(top_p),
            top_k=int(top_k),
            max_tokens=int(max_tokens),
            repetition_penalty=float(rep),
            # empty (a Textbox: a gr.Number shows and sends 0) or negative: a random seed
            seed=None if seed is None or not str(seed).strip() or int(seed) < 0 else int(seed),
            n=int(n),
        )
    except (TypeError, ValueError) as exc:
        raise XiaoshuoError(
            t("scratch_err_sampling", lang),
            expected=t("scratch_sampling_expected", lang),
            received=f"{type(exc).__name__}: {exc}",
        ) from None


# ----------------------------------------------------------------------------- generation
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
    engine = None
    async for engine in wait_for_engine(services, load_timeout=load_timeout, lang=lang):
        if engine is None:
            yield Update(loading_texts(n, lang), loading=True)
    req, report = await asyncio.to_thread(
        compose_request,
        services, engine, novel or DEFAULT_NOVEL, request, story or "", sampling, memory_on, adapter,
    )  # fmt: skip
    warnings = list(report.get("memory_warnings", []))
    texts = [""] * MAX_CANDIDATES
    reasons: list[str | None] = [None] * MAX_CANDIDATES
    yield Update(list(texts), report, warnings)
    pace = Coalescer(interval)
    async for delta in engine.stream(req):
        if delta.index < MAX_CANDIDATES:
            texts[delta.index] += delta.text or ""
            reasons[delta.index] = delta.finish_reason or reasons[delta.index]
            if delta.text:
                pace.changed()
        if pace.due():
            yield Update(list(texts), report, warnings, finish_reasons=list(reasons))
            # Deltas queue up faster than we read them, so reading never suspends; let Gradio's
            # sender task run, or the page gets nothing until the generation ends.
            await asyncio.sleep(YIELD_S)
    yield Update(list(texts), report, warnings, finish_reasons=list(reasons))


def compose_request(services, engine, novel, request, story, sampling, memory_on, adapter):
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


async def generate(
    services: Services,
    lang: str,
    novel,
    request,
    story,
    temperature,
    top_p,
    top_k,
    max_tokens,
    rep,
    seed,
    n,
    memory_on,
    adapter,
):
    """生成: stream the candidates; yields ``[*texts, the inspector (``inspector_markdown``), notice]``."""
    if not (request or "").strip():
        raise XiaoshuoError(t("err_empty_request", lang))
    settings = sampling(temperature, top_p, top_k, max_tokens, rep, seed, n, lang=lang)
    warned = False
    shown: tuple[int, str] | None = None  # the report the inspector shows (rendered once per report)
    async for update in generate_stream(
        services, novel, request, story or "", settings, memory_on, adapter, lang=lang
    ):
        if shown is None or shown[0] != id(update.report):
            shown = (id(update.report), inspector_markdown(update.report, lang))
        if update.warnings and not warned:
            warned = True
            for warning in update.warnings:
                gr.Warning(warning)
        notice = "\n\n".join(f"⚠ {w}" for w in update.warnings)
        # (gr.skip() for an unchanged inspector stalls the browser: Gradio 6.31)
        yield [*update.texts, shown[1], notice]


def inspector_markdown(report: dict[str, Any], lang: str = "zh") -> str:
    """The inspector for a writer: the token line, one row per part of the prompt (in the page's words,
    as the 创作 page's inspector) and the whole prompt folded away — not the report's JSON."""
    if not report:
        return ""

    def cell(value: Any) -> str:
        return html.escape(str(value)).replace("|", "\\|").replace("\n", " ")

    rows = report.get("account", [])
    line = t("book_insp_tokens", lang, tokens=report.get("prompt_tokens", 0), budget=report.get("budget", 0))
    line += "" if report.get("token_counts_exact") else t("book_insp_estimate", lang)
    line += t(
        "book_insp_counts",
        lang,
        kept=sum(1 for r in rows if r["included"]),
        cut=sum(1 for r in rows if not r["included"] or "cut" in r["reason"]),
    )
    head = [h for i, h in enumerate(t("book_cols_inspector", lang).split("|")) if i != 2]  # no chapters here
    table = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        section = t("book_insp_sec_system", lang) if r["section"] == "system" else r["section"]
        what = (section, inspector_item(r, lang), r["tokens"], "✓" if r["included"] else "✗")
        table.append("| " + " | ".join(cell(x) for x in (*what, inspector_reason(r["reason"], lang))) + " |")
    prompt = html.escape(report.get("prompt", ""))
    folded = f"<details><summary>{t('book_prompt', lang)}</summary><pre>{prompt}</pre></details>"
    return "\n\n".join([line, "\n".join(table), folded])


# ----------------------------------------------------------------------------- the story
def use_candidate(services: Services, novel, story, chosen) -> str:
    """采用候选: append the candidate (cleaned like every stored model text) to the story and save it;
    returns the new story."""
    return services.scratch.append_generated(novel or DEFAULT_NOVEL, story or "", chosen or "")


def autosave(services: Services, novel, text) -> None:
    services.scratch.save(novel or DEFAULT_NOVEL, text or "")


def switch_novel(services: Services, novel):
    """Another novel picked: its story, and its adapter when it has one."""
    default = services.scratch.adapter(novel or DEFAULT_NOVEL)
    return services.scratch.load(novel or DEFAULT_NOVEL), default if default else gr.skip()


def set_adapter(services: Services, novel, adapter) -> None:
    services.scratch.set_adapter(novel or DEFAULT_NOVEL, adapter)


def on_load(services: Services, lang: str, novel):
    """Every page load reads the story from disk (never the value the server started with)."""
    novel = novel or DEFAULT_NOVEL
    default = services.scratch.adapter(novel)
    choices = [t("none", lang), *services.adapters()]
    return (
        gr.update(choices=services.novels()),
        services.scratch.load(novel),
        gr.update(choices=choices, value=default) if default else gr.update(choices=choices),
    )
