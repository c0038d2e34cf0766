"""``novel resync``: the forward flow's pending work, done in chapter order and in batches.

:func:`resync` re-summarises (:func:`~xiaoshuo.writing.planning.summarize_chapter`) and re-extracts
(:class:`~xiaoshuo.writing.extraction.Extractor`, which first drops the chapter's unreviewed proposals)
the chapters :mod:`xiaoshuo.writing.flow` lists as pending, ``writing.resync_batch`` chapters at a time:
a batch's summary and extraction forms go to the engine together (vLLM runs them concurrently).  After
each batch the journal (``flow.json``) is saved with what it finished, and extraction's own record
(``review/extracted.json``) skips a chapter already done at its text, so a run killed with ``kill -9``
resumes where it stopped without doing a chapter twice.  At the end the stale marks are re-checked
(:func:`flow.recheck`).  Locked chapters are skipped; no chapter's text is ever changed here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xiaoshuo.writing.flow import clear_pending, load, recheck, save


@dataclass
class ResyncResult:
    novel: str
    summarized: list[int] = field(default_factory=list)
    extracted: list[int] = field(default_factory=list)
    skipped_locked: list[int] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)  # {chapter, task, error}
    cleared_stale: list[int] = field(default_factory=list)
    batches: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "novel": self.novel,
            "summarized": self.summarized,
            "extracted": self.extracted,
            "skipped_locked": self.skipped_locked,
            "failed": self.failed,
            "cleared_stale": self.cleared_stale,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
        }


def todo(novel: Any, start: int = 1) -> tuple[list[tuple[int, bool, bool]], list[int]]:
    """``([(chapter, summary?, extract?)], locked chapters skipped)`` of the pending work from ``start``."""
    data = load(novel)
    outline = novel.outline()
    work, locked = [], []
    for k, row in sorted(data["pending"].items(), key=lambda kv: int(kv[0])):
        n = int(k)
        if n < start or not (row.get("summary") or row.get("extract")):
            continue
        plan = outline.chapter(n)
        if plan is not None and plan.locked:
            locked.append(n)
            continue
        work.append((n, bool(row.get("summary")) and plan is not None, bool(row.get("extract"))))
    return work, locked


async def resync(
    settings: Any,
    engine: Any,
    novel: Any,
    store: Any,
    *,
    start: int = 1,
    batch: int | None = None,
    lora: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ResyncResult:
    """Re-summarise and re-extract the pending chapters from ``start`` in order, ``batch`` chapters at a
    time (``writing.resync_batch``), then re-check the stale marks.  See the module docstring.

    ``store`` None: no memory — the extractions stay pending.  A form the model fails to fill is listed in
    ``failed`` and stays pending; other errors propagate (what finished before is kept)."""
    import asyncio

    from xiaoshuo.writing.extraction import Extractor
    from xiaoshuo.writing.planning import PlanLimits, summarize_chapter
    from xiaoshuo.writing.prompts import Prompts
    from xiaoshuo.writing.structured import StructuredOutputError

    started = time.monotonic()
    size = max(1, batch or settings.writing.resync_batch)
    work, locked = todo(novel, start)
    result = ResyncResult(novel.slug, skipped_locked=locked)
    limits, prompts = PlanLimits.from_settings(settings), Prompts.from_settings(settings)
    extractor = Extractor(settings, engine, novel, store, batch=size) if store is not None else None
    total = len(work)
    if progress is not None:
        progress(0, total)
    for i in range(0, total, size):
        part = work[i : i + size]
        texts = {n: novel.text(n) for n, _, _ in part}
        sums = [n for n, s, _ in part if s and texts[n].strip()]
        exts = [n for n, _, e in part if e and texts[n].strip()]

        async def summaries(sums=sums):
            return await asyncio.gather(
                *(summarize_chapter(engine, novel, n, limits=limits, lora=lora, prompts=prompts, save=False)
                  for n in sums),
                return_exceptions=True,
            )  # fmt: skip

        async def extractions(exts=exts):
            return await extractor.extract(exts, resume=True) if extractor is not None and exts else []

        # the batch's summaries and extraction forms go to the engine together (one round per batch)
        answers, extracted = await asyncio.gather(summaries(), extractions())
        done_sum = []
        for n, answer in zip(sums, answers, strict=True):
            if isinstance(answer, StructuredOutputError):
                result.failed.append({"chapter": n, "task": "summary", "error": str(answer)})
            elif isinstance(answer, BaseException):
                raise answer
            else:
                done_sum.append((n, answer))
        done_ext: list[int] = []
        for r in extracted:
            if r.error:
                result.failed.append({"chapter": r.chapter, "task": "extract", "error": r.error})
            else:
                done_ext.append(r.chapter)
        with novel.writer(timeout=60, what="novel resync"):
            saved = []
            for n, answer in done_sum:
                if novel.text(n) != texts[n]:
                    continue  # changed while the model read it: stays pending
                novel.update_plan(n, summary=answer.summary.strip(), summary_who=answer.who,
                                  summary_where=answer.where, summary_when=answer.when.strip())  # fmt: skip
                saved.append(n)  # (update_plan marks the chapters that used the old summary)
            data = load(novel)  # after update_plan and the Extractor wrote it
            for n in saved:
                clear_pending(data, n, summary=True, extract=False)
                result.summarized.append(n)
            for n, s, _ in part:
                if not texts[n].strip():  # an emptied chapter: nothing to summarise or extract
                    clear_pending(data, n, summary=True, extract=True)
                elif not s:
                    clear_pending(data, n, summary=True, extract=False)
            for n in done_ext:
                if novel.text(n) == texts[n]:
                    clear_pending(data, n, summary=False, extract=True)
                    result.extracted.append(n)
            save(novel, data)  # the journal: what is cleared here is never redone
        result.batches += 1
        if progress is not None:
            progress(min(i + size, total), total)
    queue_pending: set[int] = set()
    entries = None
    if store is not None:
        from xiaoshuo.writing.review import ReviewQueue

        entries = store.list(novel.slug)
        queue_pending = {p.chapter for p in ReviewQueue.of(novel).list("pending")}
    result.cleared_stale = recheck(novel, entries, queue_pending)
    result.seconds = time.monotonic() - started
    return result
