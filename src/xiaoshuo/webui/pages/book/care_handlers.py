"""The 创作 page's care panel: 修订, 锁定, 待同步/同步 and 体检 — plain functions over ``Services``.

Each calls the use case the CLI calls: :func:`xiaoshuo.writing.actions.plan_revise` / ``revise``
(``chapter revise [--dry-run]``), :func:`~xiaoshuo.writing.actions.lock` (``chapter lock|unlock``),
:func:`xiaoshuo.writing.flow.status` (``novel status``), :func:`xiaoshuo.writing.resync.resync`
(``novel resync``) and :func:`xiaoshuo.eval.book.book_health` with the figures of
:mod:`xiaoshuo.eval.html` (``eval book --html``).  Like ``handlers.py``: the page's API first (plain
values in, rows / text / figures out), the events ``care_layout.py`` wires (``on_*``) at the end.  The
model runs on a worker thread with its own event loop (its file writes never block the page's).  This
module computes no finding, no stale mark and no metric, and lays nothing out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.locale import STRINGS, t
from xiaoshuo.webui.pages.book import handlers as h
from xiaoshuo.webui.runtime import ready_engine, wait_for_engine
from xiaoshuo.writing import actions, flow
from xiaoshuo.writing.schema import WritingError

QUOTE_CHARS = 40  # a finding's quote is cut to this many characters in the tables


def _need_chapter(slug: Any, number: Any, lang: str) -> tuple[str, int]:
    if not slug or not number:
        raise WritingError(t("book_err_no_chapter", lang), fix=t("book_fix_no_chapter", lang))
    return str(slug), int(number)


def _flavour(services: Any) -> Any:
    from xiaoshuo.eval.flavour import load_flavour

    return load_flavour(services.settings.eval.ai_flavour_file or None)


def _entries(services: Any, slug: str) -> list[Any] | None:
    """The novel's memory entries; None when the store cannot be opened (locked, unreadable …)."""
    try:
        return services.store().list(slug)
    except XiaoshuoError:
        return None


def _word(prefix: str, value: str, lang: str) -> str:
    key = f"care_{prefix}_{value}"
    return t(key, lang) if key in STRINGS else str(value)


# ----------------------------------------------------------------------------- findings
def headers(lang: str = "zh") -> list[str]:
    """The findings tables' headers: 类型 程度 原文 问题 修改要求."""
    return t("care_cols_findings", lang).split("|")


def finding_rows(findings: list[Any], lang: str = "zh") -> list[list[Any]]:
    """Findings (``ReviewFinding`` or its dict) as table rows in words: kind, severity, quote, message,
    instruction — no ids, no offsets."""
    rows = []
    for f in findings:
        d = f if isinstance(f, dict) else f.as_dict()
        quote = " ".join(str(d.get("quote") or "").split())
        if len(quote) > QUOTE_CHARS:
            quote = quote[: QUOTE_CHARS - 1] + "…"
        rows.append(
            [
                _word("kind", d["kind"], lang),
                _word("sev", d["severity"], lang),
                quote,
                d.get("message") or "",
                d.get("instruction") or "",
            ]
        )
    return rows


def plan(services: Any, slug: Any, number: Any, lang: str = "zh") -> tuple[str, list[list[Any]]]:
    """修订's plan (``chapter revise --dry-run``): a line with the counts and the planned edits, and the
    findings; reads only, loads no model.  A locked chapter raises (revise leaves it alone)."""
    slug, number = _need_chapter(slug, number, lang)
    novel = h.open_novel(services, slug, lang)
    result = actions.plan_revise(
        services.settings, novel, number, flavour=_flavour(services), entries=_entries(services, slug) or []
    )
    edits = result.passes[0]["edits"] if result.passes else []
    if not result.before.findings:
        return t("care_plan_clean", lang, n=number), []
    modes: dict[str, int] = {}
    for e in edits:
        modes[e["mode"]] = modes.get(e["mode"], 0) + 1
    line = t(
        "care_plan_summary",
        lang,
        n=number,
        count=len(result.before.findings),
        weighted=result.before.weighted,
        edits=len(edits),
        modes="、".join(f"{_word('mode', m, lang)} {k}" for m, k in modes.items()) or "-",
    )
    return line, finding_rows(result.before.findings, lang)


async def revise(
    services: Any,
    slug: str,
    number: int,
    *,
    passes: int = 2,
    memory_on: bool = True,
    adapter: str | None = None,
    engine: Any = None,
    lang: str = "zh",
) -> Any:
    """修订 chapter ``number`` (``chapter revise``): the ``Revision`` (findings before → after, the
    versions kept).  ``engine``: the loaded engine (default: waits for the page's)."""
    novel = h.open_novel(services, slug, lang)
    engine = engine if engine is not None else await ready_engine(services, lang=lang)
    writer, _ = h.make_writer(services, novel, engine, memory_on=memory_on, adapter=adapter, lang=lang)
    entries = writer.store.list(slug) if writer.store is not None else []
    coro = actions.revise(writer, number, flavour=_flavour(services), entries=entries, passes=int(passes))
    return await asyncio.to_thread(asyncio.run, coro)


def revision_line(result: Any, lang: str = "zh") -> str:
    """What a revise run did, in one line: kept as version N (weighted before → after), or why not."""
    data = result.as_dict()
    if data["kept"]:
        return t(
            "care_kept",
            lang,
            versions=", ".join(map(str, data["versions"])),
            before=data["weighted_before"],
            after=data["weighted_after"],
        )
    reason = next((p.get("reason") for p in reversed(data["passes"]) if p.get("reason")), "") or "-"
    return t("care_not_kept", lang, reason=reason)


# ----------------------------------------------------------------------------- lock, stale
def is_locked(services: Any, slug: Any, number: Any) -> bool:
    if not slug or not number:
        return False
    plan_ = h.open_novel(services, slug).outline().chapter(int(number))
    return bool(plan_ and plan_.locked)


def set_lock(services: Any, slug: Any, number: Any, locked: bool, lang: str = "zh") -> bool:
    """锁定本章 / 解锁 (``chapter lock|unlock``); returns the chapter's lock as stored."""
    slug, number = _need_chapter(slug, number, lang)
    return bool(actions.lock(h.open_novel(services, slug, lang), number, locked=bool(locked)).locked)


def stale_reasons(services: Any, slug: Any, number: Any, lang: str = "zh") -> str:
    """The selected chapter's stale reasons as Markdown (``novel status``); empty when it is not stale."""
    if not slug or not number:
        return ""
    report = flow.status(h.open_novel(services, slug, lang))
    reasons = next((r["reasons"] for r in report["stale"] if r["chapter"] == int(number)), [])
    if not reasons:
        return ""
    return "\n".join([t("care_stale_head", lang, n=int(number)), *(f"- {r}" for r in reasons)])


def pending_line(services: Any, slug: Any, lang: str = "zh") -> str:
    """待同步: how many summaries and extractions wait for 同步, and how many chapters are stale."""
    if not slug:
        return ""
    report = flow.status(h.open_novel(services, slug, lang))
    summaries = sum(1 for p in report["pending"] if p["summary"])
    extracts = sum(1 for p in report["pending"] if p["extract"])
    if not (summaries or extracts or report["stale"]):
        return t("care_nothing_pending", lang)
    return t("care_pending", lang, summaries=summaries, extracts=extracts, stale=len(report["stale"]))


async def resync(services: Any, slug: str, *, progress: Any = None, engine: Any = None, lang: str = "zh"):
    """同步 (``novel resync``): the pending summaries and extractions in chapter order, in batches;
    ``progress(done, total)`` after each batch.  Without a memory store only the summaries are done.
    Returns ``(ResyncResult, warnings)``."""
    from xiaoshuo.writing import resync as rs

    novel = h.open_novel(services, slug, lang)
    warnings: list[str] = []
    try:
        store = services.store()
    except XiaoshuoError as exc:
        store = None
        warnings.append(t("care_no_store", lang, message=exc.message))
    work, locked = rs.todo(novel)
    if not work:
        return rs.ResyncResult(novel.slug, skipped_locked=locked), warnings
    engine = engine if engine is not None else await ready_engine(services, lang=lang)
    coro = rs.resync(services.settings, engine, novel, store, progress=progress)
    return await asyncio.to_thread(asyncio.run, coro), warnings


def resync_line(result: Any, lang: str = "zh") -> str:
    r = result.as_dict()
    parts = [
        t("care_resync_done", lang, summarized=len(r["summarized"]), extracted=len(r["extracted"]),
          batches=r["batches"]),
    ]  # fmt: skip
    if r["cleared_stale"]:
        parts.append(t("care_resync_cleared", lang, chapters="、".join(map(str, r["cleared_stale"]))))
    if r["skipped_locked"]:
        parts.append(t("care_resync_locked", lang, chapters="、".join(map(str, r["skipped_locked"]))))
    for f in r["failed"]:
        parts.append(t("care_resync_failed", lang, chapter=f["chapter"], task=f["task"], error=f["error"]))
    return "  \n".join(parts)


# ----------------------------------------------------------------------------- 体检
def health(services: Any, slug: Any, lang: str = "zh") -> tuple[str, Any, Any]:
    """体检 (``eval book``): a summary line, the per-chapter lines (length score, repetition, AI味 per
    1,000 字, findings) and 字 vs target — the figures of the HTML report."""
    from xiaoshuo.eval.book import book_health
    from xiaoshuo.eval.html import BOOK_SERIES, book_figure, chars_figure

    if not slug:
        raise WritingError(t("book_err_no_novel", lang), fix=t("book_fix_no_novel", lang))
    w = services.settings.writing
    report = book_health(
        h.open_novel(services, slug, lang),
        entries=_entries(services, slug),
        flavour=_flavour(services),
        ngram=w.repetition_ngram,
        reappear_gap=w.reappear_gap,
    )
    b = report["book"]
    line = t(
        "care_health_summary",
        lang,
        chapters=b["chapters"],
        chars=b["chars"],
        length="-" if b["length_score"] is None else b["length_score"],
        rep=f"{b['repetition_rate']:.2%}",
        ai=b["ai_flavour"],
        findings=b["findings"],
        threads=b["threads_overdue"],
    )
    line = "  \n".join([line, *(f"⚠ {w_}" for w_ in report["warnings"])])
    # the report's figures, their words in the page's language
    series = tuple((key, t(f"care_series_{key}", lang)) for key, _ in BOOK_SERIES)
    look = {"margin": {"l": 50, "r": 20, "t": 40, "b": 40}, "template": "plotly_white"}
    lines = book_figure(report, series)
    lines.update_layout(height=200 * len(series), **look)
    lines.update_xaxes(title_text=t("care_axis_chapter", lang), row=len(series), col=1)
    chars = chars_figure(report)
    chars.update_layout(height=320, title=t("care_chart_chars", lang), **look)
    chars.update_xaxes(title_text=t("care_axis_chapter", lang))
    chars.data[0].name, chars.data[1].name = t("care_series_chars", lang), t("care_series_target", lang)
    return line, lines, chars


# ----------------------------------------------------------------------------- page events
def on_chapter(services: Any, lang: str, slug, number) -> list[Any]:
    """Another chapter (or novel): [锁定本章, its stale reasons, the editor (read-only while locked),
    the 待同步 line]."""
    locked = is_locked(services, slug, number)
    return [
        locked,
        stale_reasons(services, slug, number, lang),
        gr.update(interactive=not locked),
        pending_line(services, slug, lang),
    ]


def on_lock(services: Any, lang: str, slug, number, locked) -> list[Any]:
    """锁定本章 clicked: [the lock as stored, message, the editor, the outline (its 锁定 mark)]."""
    now = set_lock(services, slug, number, bool(locked), lang)
    msg = t("care_locked_msg" if now else "care_unlocked_msg", lang, n=int(number))
    return [now, msg, gr.update(interactive=not now), h.outline_rows(services, slug, lang=lang)]


def on_plan(services: Any, lang: str, slug, number) -> list[Any]:
    """查看计划修改: [the plan's line, the findings before]."""
    line, rows = plan(services, slug, number, lang)
    return [line, rows]


async def on_revise(
    services: Any, lang: str, slug, number, value, passes, mem, adapter_v
) -> AsyncIterator[list[Any]]:
    """修订本章 of the editor's text (saved first, as 生成 does): streams [status, findings before, findings
    after, diff, *chapter view, outline, 待同步, stale reasons]; first the plan (and 模型加载中… while the
    model loads), at the end what was kept."""
    slug, number = _need_chapter(slug, number, lang)
    if value is not None and not is_locked(services, slug, number):
        h.save_text(services, slug, number, value, lang=lang)  # what the writer sees is what is revised
    rest = [gr.skip()] * (h.CHAPTER_FIELDS + 3)
    line, before = plan(services, slug, number, lang)  # a locked chapter is refused here, before the model
    engine = None
    async for engine in wait_for_engine(services, lang=lang):
        if engine is None:
            yield [t("engine_loading", lang), before, [], "", *rest]
    yield [f"{line}  \n{t('care_revising', lang)}", before, [], "", *rest]
    novel = h.open_novel(services, slug, lang)
    was = novel.current_version(number)
    result = await revise(
        services,
        slug,
        number,
        passes=passes,
        memory_on=bool(mem),
        adapter=adapter_v,
        engine=engine,
        lang=lang,
    )
    diff = ""
    if result.kept:
        diff = h.diff_html(services, slug, number, was, result.versions[-1], lang=lang)
    yield [
        revision_line(result, lang),
        finding_rows(result.before.findings, lang),
        finding_rows(result.after.findings, lang),
        diff,
        *h.chapter_outputs(services, lang, slug, number),
        h.outline_rows(services, slug, lang=lang),
        pending_line(services, slug, lang),
        stale_reasons(services, slug, number, lang),
    ]


async def on_resync(services: Any, lang: str, slug, number, progress=gr.Progress()) -> list[Any]:  # noqa: B008
    """同步: [message, the outline, 待同步, the chapter's stale reasons, the review table, its title]."""
    if not slug:
        raise WritingError(t("book_err_no_novel", lang), fix=t("book_fix_no_novel", lang))
    desc = t("care_resync_progress", lang)

    def step(done: int, total: int) -> None:
        progress((done, total), desc=desc)

    result, warnings = await resync(services, slug, progress=step, lang=lang)
    for w in warnings:
        gr.Warning(w)
    return [
        resync_line(result, lang),
        h.outline_rows(services, slug, lang=lang),
        pending_line(services, slug, lang),
        stale_reasons(services, slug, number, lang),
        h.review_rows(services, slug, lang=lang),
        h.review_label(services, lang, slug),
    ]


def on_health(services: Any, lang: str, slug) -> list[Any]:
    """体检全书: [summary line, per-chapter lines, 字 vs target]."""
    return list(health(services, slug, lang))
