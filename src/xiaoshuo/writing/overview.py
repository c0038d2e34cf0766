"""The book at a glance (``xiaoshuo novel report``, the 总览 page): the data behind three views.

* :func:`graph_at` — the **relationship graph as of chapter N**: characters (size by appearances up to N,
  their newest state at or before N, its history), relations as labelled edges.  Chapter-aware by the
  same rule :func:`~xiaoshuo.writing.compose.compose` keeps: nothing dated after N is shown — a
  character first recorded in chapter 12 is absent at chapter 11, a relation recorded in chapter 10 is
  absent at 9 and present at 10, and a later state never replaces the one known at N.  An undated card
  (the writer's own, or a new character approved without a chapter) is known from the start.
* :func:`timeline` — characters × chapters swimlanes (appearances), plot events on the chapter axis,
  threads (伏笔) as spans from set-up to their planned or actual payoff (overdue ones marked), volumes as
  bands.
* :func:`dashboard` — 字 per chapter against its target, totals per volume, progress toward the planned
  length, 字 written per day (from version timestamps) and the streak, chapters by status, pending
  reviews.

:func:`book_overview` gathers all three for a novel.  This module reads the novel, its memory entries
and its bookkeeping; it writes nothing (appearances of chapters the bookkeeping has not seen yet are
found in memory, not saved).  Drawing is :mod:`xiaoshuo.writing.overview_figures`'s job.
"""

from __future__ import annotations

import bisect
import datetime as dt
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from xiaoshuo.memory.schema import MemoryEntry
from xiaoshuo.writing.bookkeeping import Appearances, find_names, first_offsets, names_digest, names_of, sha
from xiaoshuo.writing.textstats import count_chars
from xiaoshuo.writing.threads import thread_report

SCHEMA_VERSION = 1
#: words in a character's state that mean the character is out of the story (colours the node)
GONE_WORDS = {
    "dead": ("死", "亡", "遇害", "身故", "牺牲", "阵亡", "殒命"),
    "missing": ("失踪", "下落不明", "不知所踪", "失联"),
}


def _state_kind(state: str) -> str:
    for kind, words in GONE_WORDS.items():
        if any(w in state for w in words):
            return kind
    return "alive" if state else ""


def _characters(entries: Iterable[MemoryEntry]) -> dict[str, list[MemoryEntry]]:
    """name → that character's entries (the undated card first, then dated ones by chapter)."""
    out: dict[str, list[MemoryEntry]] = {}
    for e in entries:
        if e.kind == "character" and not e.archived:
            out.setdefault(e.name, []).append(e)
    for mine in out.values():
        mine.sort(key=lambda e: (e.chapter is not None, e.chapter or 0, e.created))
    return out


def _alias_map(chars: dict[str, list[MemoryEntry]]) -> dict[str, str]:
    alias = {}
    for name, mine in chars.items():
        for e in mine:
            for a in e.aliases:
                alias.setdefault(a, name)
    alias.update({name: name for name in chars})
    return alias


def appearance_index(appearances: dict[int, dict[str, Any]]) -> dict[str, list[int]]:
    """name → the sorted chapters it appears in (the records name characters by their card's name)."""
    out: dict[str, list[int]] = {}
    for number in sorted(appearances):
        for name in appearances[number].get("characters", {}):
            out.setdefault(name, []).append(number)
    return out


def graph_at(
    entries: Iterable[MemoryEntry],
    appearances: dict[int, dict[str, Any]],
    chapter: int,
    *,
    index: dict[str, list[int]] | None = None,
) -> dict[str, Any]:
    """Nodes and edges as known at ``chapter`` (see the module docstring).

    ``appearances``: chapter → ``{"characters": {name: offset}}`` (:func:`chapter_appearances`);
    ``index``: its :func:`appearance_index`, when the caller draws many chapters.
    """
    chars = _characters(entries)
    alias = _alias_map(chars)
    index = appearance_index(appearances) if index is None else index
    nodes: dict[str, dict[str, Any]] = {}
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for name, mine in chars.items():
        known = [e for e in mine if e.chapter is None or e.chapter <= chapter]
        if not known:
            continue  # first recorded after the chapter: not known yet
        card = known[0]
        history = [
            {"chapter": e.chapter, "state": e.state} for e in known if e.chapter is not None and e.state
        ]
        state = history[-1]["state"] if history else card.state
        every = index.get(name, [])
        seen = every[: bisect.bisect_right(every, chapter)]
        nodes[name] = {
            "id": name,
            "aliases": sorted({a for e in known for a in e.aliases}),
            "text": card.text,
            "traits": card.traits,
            "state": state,
            "state_kind": _state_kind(state),
            "history": history,
            "first": card.chapter,
            "appearances": len(seen),
            "chapters": seen,
            "last_seen": seen[-1] if seen else None,
        }
        for e in known:  # later entries override an earlier label of the same pair
            for other, label in e.relationships.items():
                target = alias.get(other.strip(), other.strip())
                if not target or target == name:
                    continue
                pairs[(name, target)] = {"source": name, "target": target, "label": label, "since": e.chapter}
    for edge in pairs.values():  # a relation may name someone with no card: a small grey node
        if edge["target"] not in nodes:
            nodes[edge["target"]] = {
                "id": edge["target"], "aliases": [], "text": "", "traits": [], "state": "",
                "state_kind": "unknown", "history": [], "first": edge["since"], "appearances": 0,
                "chapters": [], "last_seen": None,
            }  # fmt: skip
    return {
        "chapter": chapter,
        "nodes": sorted(nodes.values(), key=lambda n: (-n["appearances"], n["id"])),
        "edges": sorted(pairs.values(), key=lambda e: (e["source"], e["target"])),
    }


def chapter_appearances(
    novel: Any, entries: list[MemoryEntry], texts: dict[int, str]
) -> dict[int, dict[str, Any]]:
    """chapter → ``{"characters": {name: offset}, "places": {...}}``: the bookkeeping's record where it
    matches the chapter's text and today's names, else found now (in memory; nothing is saved)."""
    book = Appearances(novel.root).data.get("chapters", {})
    chars, places = names_of(entries, ("character",)), names_of(entries, ("setting",))
    known = names_digest(chars, places)
    out = {}
    for number, text in texts.items():
        row = book.get(str(number))
        if row and row.get("sha256") == sha(text) and row.get("names") == known:
            out[number] = row
            continue
        out[number] = {
            "characters": first_offsets(find_names(text, chars)),
            "places": first_offsets(find_names(text, places)),
        }
    return out


def timeline(
    outline: Any, entries: list[MemoryEntry], appearances: dict[int, dict[str, Any]], last_written: int
) -> dict[str, Any]:
    """Swimlanes, events, threads and volume bands (see the module docstring)."""
    index = appearance_index(appearances)
    lanes = []
    for name in _characters(entries):
        seen = index.get(name, [])
        lanes.append({"name": name, "chapters": seen, "first": seen[0] if seen else None})
    lanes.sort(key=lambda r: (r["first"] is None, r["first"] or 0, r["name"]))
    events = [
        {
            "chapter": e.chapter,
            "chapter_end": e.chapter_end,
            "name": e.name or e.text[:20],
            "text": e.text,
            "characters": e.characters,
            "importance": e.importance,
        }
        for e in entries
        if e.kind == "plot" and not e.archived and e.chapter is not None and not e.thread
    ]
    events.sort(key=lambda r: (r["chapter"], -r["importance"], r["name"]))
    threads = [
        {
            "name": r["name"] or r["text"][:20],
            "text": r["text"],
            "start": r["chapter"],
            "planned": r["payoff_chapter"],
            "closed_in": r["closed_in"],
            "status": r["status"],
            "end": r["closed_in"] or max(r["payoff_chapter"] or 0, last_written, r["chapter"] or 0),
        }
        for r in thread_report(entries, last_written=last_written, include_closed=True)
    ]
    volumes = [
        {"title": v.title, "first": v.chapters[0].number, "last": v.chapters[-1].number}
        for v in outline.volumes
        if v.chapters
    ]
    return {"lanes": lanes, "events": events, "threads": threads, "volumes": volumes}


def daily_chars(versions: Iterable[Any], *, tz: dt.tzinfo | None = None) -> dict[str, int]:
    """字 written per day: per chapter, the growth of its longest text of the day over its longest text of
    any earlier day (so three candidates of one chapter count once, a rewrite that shortens counts 0, and
    imported text counts nothing)."""
    by_chapter: dict[int, list[Any]] = {}
    for v in versions:
        if v.source != "imported":
            by_chapter.setdefault(v.chapter, []).append(v)
    out: Counter[str] = Counter()
    for mine in by_chapter.values():
        best = 0
        days: dict[str, int] = {}
        for v in sorted(mine, key=lambda v: v.time):
            day = dt.datetime.fromtimestamp(v.time, tz).date().isoformat()
            days[day] = max(days.get(day, 0), v.chars)
        for day in sorted(days):
            if days[day] > best:
                out[day] += days[day] - best
                best = days[day]
    return dict(sorted(out.items()))


def streak(days: dict[str, int], today: dt.date) -> int:
    """Days in a row with writing, ending today (or yesterday: today's writing may not have begun)."""
    written = {d for d, n in days.items() if n > 0}
    day = today if today.isoformat() in written else today - dt.timedelta(days=1)
    count = 0
    while day.isoformat() in written:
        count += 1
        day -= dt.timedelta(days=1)
    return count


def dashboard(
    card: Any,
    outline: Any,
    chars: dict[int, int],
    versions: list[Any],
    *,
    pending_reviews: int = 0,
    stale: Iterable[int] = (),
    today: dt.date | None = None,
) -> dict[str, Any]:
    """Numbers for the dashboard (see the module docstring); ``chars``: chapter → its current 字."""
    stale = set(stale)
    rows, volumes = [], []
    for v in outline.volumes:
        vol_chars = vol_target = 0
        for c in v.chapters:
            target = c.target_chars or card.chapter_chars
            got = chars.get(c.number, 0)
            status = "stale" if c.number in stale else c.status
            rows.append(
                {
                    "number": c.number,
                    "title": c.title,
                    "volume": v.title,
                    "status": status,
                    "chars": got,
                    "target_chars": target,
                }
            )
            vol_chars += got
            vol_target += target
        volumes.append({"title": v.title, "chars": vol_chars, "target_chars": vol_target})
    planned = {r["number"] for r in rows}
    for number in sorted(set(chars) - planned):  # text on disk without an outline entry
        rows.append(
            {
                "number": number,
                "title": f"第{number}章",
                "volume": "",
                "status": "drafted",
                "chars": chars[number],
                "target_chars": card.chapter_chars,
            }
        )
    total = sum(r["chars"] for r in rows)
    target_total = sum(r["target_chars"] for r in rows)
    per_day = daily_chars(versions)
    today = today or dt.date.today()
    return {
        "chapters": rows,
        "volumes": volumes,
        "total_chars": total,
        "target_chars": target_total,
        "progress": round(total / target_total, 4) if target_total else 0.0,
        "per_day": per_day,
        "streak": streak(per_day, today),
        "status_counts": dict(Counter(r["status"] for r in rows)),
        "pending_reviews": pending_reviews,
    }


def read_book(novel: Any, entries: list[MemoryEntry]) -> tuple[dict[int, str], dict[int, dict[str, Any]]]:
    """(chapter → current text, chapter → appearances) of every written chapter, read once."""
    texts = {n: novel.text(n) for n in novel.written_chapters()}
    return texts, chapter_appearances(novel, entries, texts)


def book_overview(
    novel: Any,
    entries: list[MemoryEntry] | None,
    *,
    chapter: int | None = None,
    stale: Iterable[int] = (),
    read: tuple[dict[int, str], dict[int, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """All three views of ``novel`` as JSON-ready data; the graph as of ``chapter`` (default: the last
    written chapter).  ``entries``: its memory (None: memory unavailable — empty graph and timeline, a
    warning); ``read``: :func:`read_book`'s result when the caller has it."""
    from xiaoshuo.writing.review import ReviewQueue

    started = time.perf_counter()
    card, outline = novel.card(), novel.outline()
    warnings = []
    if entries is None:
        warnings.append("记忆不可用：没有人物关系与时间线 (memory unavailable: no graph, no timeline)")
        entries = []
    texts, appearances = read_book(novel, entries) if read is None else read
    written = list(texts)
    chars = {n: count_chars(t) for n, t in texts.items()}
    last = max((n for n, c in chars.items() if c), default=0)
    at = chapter if chapter is not None else max(last, 1)
    versions = [v for n in written for v in novel.versions(n)]
    try:
        pending = ReviewQueue.of(novel).stats().get("pending", 0)
    except Exception as exc:  # a damaged queue file must not hide the overview
        warnings.append(f"审阅队列无法读取 (review queue unreadable): {exc}")
        pending = 0
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "overview",
        "novel": novel.slug,
        "title": card.title,
        "chapter": at,
        "last_written": last,
        "graph": graph_at(entries, appearances, at),
        "timeline": timeline(outline, entries, appearances, last),
        "dashboard": dashboard(card, outline, chars, versions, pending_reviews=pending, stale=stale),
        "warnings": warnings,
        "seconds": round(time.perf_counter() - started, 3),
    }


def report_html(
    novel: Any, entries: list[MemoryEntry] | None, *, chapter: int | None = None, stale: Iterable[int] = ()
) -> tuple[str, dict[str, Any]]:
    """(the self-contained HTML of the three views, the overview data behind it)."""
    from xiaoshuo.writing import overview_figures as fig

    entries = entries or []
    read = read_book(novel, entries)
    data = book_overview(novel, entries, chapter=chapter, stale=stale, read=read)
    appearances = read[1]
    last = max(data["last_written"], data["chapter"])
    index = appearance_index(appearances)
    whole = graph_at(entries, appearances, max([last, *(e.chapter or 0 for e in entries)]), index=index)
    frames = [
        graph_at(entries, appearances, n, index=index) for n in fig.slider_chapters(last, data["chapter"])
    ]
    return fig.report_html(data, frames, fig.layout_positions(whole)), data
