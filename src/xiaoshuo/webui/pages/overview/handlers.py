"""总览's handlers: plain functions over ``Services`` that read the novel and its memory through
:mod:`xiaoshuo.writing.overview` and draw with :mod:`xiaoshuo.writing.overview_figures`.

A page load reads the book once (texts, appearances, memory) into a per-session ``Snapshot``; moving the
chapter slider or picking a character redraws from it without reading the disk again.  Nothing here
writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.locale import t
from xiaoshuo.writing import overview as ov
from xiaoshuo.writing import overview_figures as figs


@dataclass
class Snapshot:
    """What one load read: the memory entries, appearances, stable node positions, the data."""

    entries: list[Any] = field(default_factory=list)
    appearances: dict[int, dict[str, Any]] = field(default_factory=dict)
    index: dict[str, list[int]] = field(default_factory=dict)
    pos: dict[str, tuple[float, float]] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


def load(
    services: Any, slug: str | None, chapter: int | None, lang: str = "zh"
) -> tuple[Snapshot | None, str]:
    """Read the novel ``slug`` (None/empty: nothing chosen) → (snapshot, a warning or "")."""
    from xiaoshuo.writing import Novels

    if not (slug or "").strip():
        return None, ""
    novel = Novels.from_settings(services.settings).get(slug.strip())
    warning = ""
    try:
        entries = services.store().list(novel.slug)
    except XiaoshuoError as exc:  # a locked or damaged store: the dashboard still shows
        entries, warning = [], t("ov_memory_off", lang, error=exc.message)
    read = ov.read_book(novel, entries)
    data = ov.book_overview(novel, entries, chapter=chapter, read=read)
    snap = Snapshot(entries, read[1], ov.appearance_index(read[1]), data=data)
    last = max([data["last_written"], data["chapter"], *(e.chapter or 0 for e in entries)])
    snap.pos = figs.layout_positions(ov.graph_at(entries, snap.appearances, last, index=snap.index))
    return snap, warning


def slider_max(snap: Snapshot | None) -> int:
    """The slider's last chapter: the outline's or the text's last (at least 2: Gradio needs a range)."""
    if snap is None:
        return 2
    chapters = [r["number"] for r in snap.data["dashboard"]["chapters"]]
    return max([2, snap.data["last_written"], *chapters])


def graph(snap: Snapshot, chapter: int) -> dict[str, Any]:
    return ov.graph_at(snap.entries, snap.appearances, int(chapter), index=snap.index)


def summary(snap: Snapshot | None, chapter: int, warning: str = "", lang: str = "zh") -> str:
    if snap is None:
        return t("ov_no_novel", lang)
    d, g = snap.data["dashboard"], graph(snap, chapter)
    text = t(
        "ov_summary",
        lang,
        title=snap.data["title"],
        chars=f"{d['total_chars']:,}",
        target=f"{d['target_chars']:,}",
        progress=f"{d['progress']:.0%}",
        streak=d["streak"],
        pending=d["pending_reviews"],
        people=len(g["nodes"]),
        edges=len(g["edges"]),
        chapter=int(chapter),
    )
    return f"{text}\n\n{warning}" if warning else text


def figures(snap: Snapshot | None, chapter: int) -> tuple[Any, Any, Any]:
    """(graph, timeline, dashboard) figures; None each when no novel is open."""
    if snap is None:
        return None, None, None
    return (
        figs.graph_figure(graph(snap, chapter), snap.pos),
        figs.timeline_figure(snap.data["timeline"], snap.data["last_written"]),
        figs.dashboard_figure(snap.data["dashboard"]),
    )


def character_choices(snap: Snapshot | None, chapter: int) -> list[str]:
    return [] if snap is None else [n["id"] for n in graph(snap, chapter)["nodes"]]


def character_card(snap: Snapshot | None, name: str | None, chapter: int, lang: str = "zh") -> str:
    """The card of ``name`` as known at ``chapter``: its text, newest state, state history, chapters."""
    if snap is None or not name:
        return t("ov_card_none", lang)
    node = next((n for n in graph(snap, chapter)["nodes"] if n["id"] == name), None)
    if node is None:
        return t("ov_card_unknown", lang, name=name, chapter=int(chapter))
    none, sep = t("ov_none", lang), t("ov_list_sep", lang)
    history = t("ov_history_sep", lang).join(
        t("ov_history_item", lang, chapter=x["chapter"], state=x["state"]) for x in node["history"]
    )
    aliases = t("ov_aliases", lang, aliases=sep.join(node["aliases"])) if node["aliases"] else ""
    return t(
        "ov_card",
        lang,
        name=node["id"],
        aliases=aliases,
        text=node["text"] or none,
        state=node["state"] or none,
        history=history or none,
        chapters=sep.join(map(str, node["chapters"])) or none,
    )
