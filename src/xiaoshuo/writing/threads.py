"""Open threads (伏笔): plot entries with ``thread = "open"`` and an optional ``payoff_chapter``.

A thread is planted in a chapter (the entry's ``chapter``) and stays open until the writer closes it
(``xiaoshuo memory edit ID --thread closed``, or approving a ``thread_close`` proposal, which also
sets ``chapter_end``).  :func:`due_threads` picks the threads a prompt for chapter N should mention:
planted at or before N, still open, and planned to pay off within ``writing.thread_window`` chapters
of N (or already overdue).  :func:`thread_report` lists every thread with its state for
``xiaoshuo threads``.  This module reads memory entries; it writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from xiaoshuo.memory.schema import MemoryEntry


def threads(entries: Iterable[MemoryEntry], *, include_closed: bool = False) -> list[MemoryEntry]:
    """Plot entries that are threads, in planting order."""
    out = [
        e
        for e in entries
        if e.kind == "plot"
        and not e.archived
        and (e.thread == "open" or (include_closed and e.thread == "closed"))
    ]
    return sorted(out, key=lambda e: (e.chapter if e.chapter is not None else -1, e.created, e.id))


def due_threads(entries: Iterable[MemoryEntry], chapter: int, window: int) -> list[MemoryEntry]:
    """Open threads to remind a prompt for ``chapter`` of: overdue first, then by payoff chapter."""
    if window < 0:
        return []
    out = []
    for e in threads(entries):
        if e.chapter is not None and e.chapter > chapter:
            continue  # planted later: the chapter being written does not know it yet
        if e.payoff_chapter is None or e.payoff_chapter > chapter + window:
            continue
        out.append(e)
    return sorted(out, key=lambda e: (e.payoff_chapter, e.chapter or 0, e.id))


def status_of(e: MemoryEntry, last_written: int) -> str:
    """closed · overdue (payoff chapter already written) · due (within 3 chapters) · open."""
    if e.thread == "closed":
        return "closed"
    if e.payoff_chapter is None:
        return "open"
    if e.payoff_chapter <= last_written:
        return "overdue"
    if e.payoff_chapter <= last_written + 3:
        return "due"
    return "open"


def thread_report(
    entries: Iterable[MemoryEntry], *, last_written: int = 0, include_closed: bool = False
) -> list[dict[str, Any]]:
    """One row per thread: id, name, text, planted chapter, payoff chapter, status, chapters open."""
    rows = []
    for e in threads(entries, include_closed=include_closed):
        end = e.chapter_end if e.thread == "closed" and e.chapter_end is not None else last_written
        rows.append(
            {
                "id": e.id,
                "name": e.name,
                "text": e.text,
                "chapter": e.chapter,
                "payoff_chapter": e.payoff_chapter,
                "closed_in": e.chapter_end if e.thread == "closed" else None,
                "status": status_of(e, last_written),
                "open_for": max(0, end - (e.chapter or 0)),
                "characters": e.characters,
            }
        )
    return rows


def render_due(e: MemoryEntry, chapter: int) -> str:
    """One prompt line: what the thread is and when it is to be paid off."""
    where = f"第{e.chapter}章埋下" if e.chapter is not None else "已埋下"
    if e.payoff_chapter is None:
        when = ""
    elif e.payoff_chapter < chapter:
        when = f"，原定第{e.payoff_chapter}章回收，已逾期"
    elif e.payoff_chapter == chapter:
        when = "，计划本章回收"
    else:
        when = f"，计划第{e.payoff_chapter}章回收"
    title = f"{e.name}：" if e.name else ""
    return f"- {title}{e.text}（{where}{when}）"
