"""The 创作 (book) page's handlers: plain functions over ``Services`` calling :mod:`xiaoshuo.writing`.

Two layers, both without a browser (``tests/unit/webui/test_book.py``):

- the page's API: functions that take the ``Services`` object and plain values (a novel slug, a chapter
  number, text) and return plain values (rows, text, HTML, dicts), raising ``XiaoshuoError``;
- the page's events (``on_*``, at the end): what ``layout.py`` wires with ``functools.partial``; they
  decide what the page shows next (which chapter a novel opens at, what a selection says, the review
  panel's title …) and return the outputs' values, ``gr.skip()`` / ``gr.update`` included.

Per-session state (the candidates of the last generation, the selection, the novel and chapter a
reload reopens) is passed in and returned as plain dicts; the page keeps it in ``gr.State`` /
``gr.BrowserState``.

Generation (:func:`write_stream`) runs the writing core's ``Writer`` on a thread with its own event
loop (its file writes and memory retrieval never block the page's loop) and yields coalesced
:class:`BookUpdate` s; closing the generator (the stop button) cancels the run and the engine aborts
its requests.  Writing, the inspector's preview, accept (with ``writing.auto_*``), saving an edit and
reverting are :mod:`xiaoshuo.writing.actions`, the functions the CLI calls too; chapters, versions and
summaries are stored by :class:`xiaoshuo.writing.Novel`.  This module builds no prompt, lays nothing
out (``layout.py``) and keeps no state of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import threading
import time
import typing
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.locale import STRINGS, t
from xiaoshuo.webui.runtime import (  # one interval, one MAX_CANDIDATES, one load timeout for every page
    LOAD_TIMEOUT_S,
    MAX_CANDIDATES,
    STREAM_INTERVAL,
    engine_when_ready,
    inspector_item,
    inspector_reason,
    loading_texts,
    ready_engine,
    wait_for_engine,
)
from xiaoshuo.writing import actions
from xiaoshuo.writing.schema import ChapterPlan, NovelCard, WritingError
from xiaoshuo.writing.textstats import count_chars

ACTIONS = actions.ACTIONS
# Novel content, not page text: a new chapter's default title and first volume; Chinese in every UI language.
CONTENT_CHAPTER_TITLE = "第{number}章"
CONTENT_FIRST_VOLUME = "第一卷"


def headers(table: str, lang: str = "zh") -> list[str]:
    """Column headers of ``table``: outline, versions, inspector, review, findings or threads."""
    return t(f"book_cols_{table}", lang).split("|")


def label(prefix: str, value: Any, lang: str = "zh") -> str:
    """A stored value in words (prefix status, kind, rkind or thread); the value itself when unknown."""
    key = f"book_{prefix}_{value}"
    return t(key, lang) if key in STRINGS else str(value)


def _err(key: str, lang: str, *, fix: str | None = None, **kwargs: Any) -> WritingError:
    """A ``WritingError`` with the message ``key`` (and the fix ``book_fix_…`` when ``fix`` names it)."""
    return WritingError(t(key, lang), fix=t(fix, lang) if fix else None, **kwargs)


# ----------------------------------------------------------------------------- novels
def library(services: Any):
    from xiaoshuo.writing import Novels

    return Novels.from_settings(services.settings)


def open_novel(services: Any, slug: str | None, lang: str = "zh"):
    if not (slug or "").strip():
        raise _err("book_err_no_novel", lang, fix="book_fix_no_novel")
    return library(services).get(slug.strip())


def novel_choices(services: Any, lang: str = "zh") -> list[tuple[str, str]]:
    """``(label, slug)`` for the picker: 《书名》 · slug; a novel whose card or outline is damaged is
    listed too, marked ⚠, after the others (a page load opens the first; opening a damaged one says
    what is wrong).  Chapter files are not read here."""
    out = []
    for c in sorted(library(services).summaries(chapters=False), key=lambda c: bool(c.problems)):
        name = f"《{c.title}》 {c.slug}" if c.title != c.slug else c.slug
        out.append((t("book_novel_damaged", lang, name=name) if c.problems else name, c.slug))
    return out


def create_novel(
    services: Any,
    slug: str,
    title: str,
    *,
    genre: str = "",
    premise: str = "",
    style: str = "",
    chapter_chars: int | float | None = None,
    adapter: str | None = None,
    author: str = "",
    pov: str = "",
    lang: str = "zh",
) -> str:
    """新建小说: a card and an empty outline; returns the slug (the title when no slug is given)."""
    title = (title or "").strip()
    slug = (slug or "").strip() or title
    if not title:
        raise _err("book_err_no_title", lang, fix="book_fix_no_title")
    from xiaoshuo.adapters import is_none

    lora = "" if is_none(adapter) else adapter
    library(services).create(
        slug,
        title=title,
        genre=(genre or "").strip(),
        premise=(premise or "").strip(),
        style=(style or "").strip(),
        chapter_chars=int(chapter_chars) if chapter_chars else None,
        adapter=lora,
        author=(author or "").strip(),
        pov=(pov or "").strip(),
    )
    return slug


def card_markdown(services: Any, slug: str | None, lang: str = "zh") -> str:
    if not slug:
        return ""
    ov = open_novel(services, slug, lang).overview()
    c = ov["card"]
    bits = [f"**《{c['title']}》**", f"`{c['slug']}`"]
    bits += [v for v in (c.get("genre"), c.get("style")) if v]
    bits.append(
        t(
            "book_card_counts",
            lang,
            chapters=len(ov["chapters"]),
            chars=ov["total_chars"],
            target=c["chapter_chars"],
        )
    )
    return " · ".join(bits)


CARD_FIELDS = list(actions.CARD_FIELDS)  # the card form's fields, in the page's order
VARIANTS = typing.get_args(NovelCard.model_fields["variant"].annotation)  # 简 / 繁: the card's own values


def card_values(services: Any, slug: str | None, lang: str = "zh") -> list[Any]:
    """The open novel's card as the form's values (``CARD_FIELDS``); the adapter 无 when none."""
    if not slug:
        return [gr.skip()] * len(CARD_FIELDS)
    card = open_novel(services, slug, lang).card()
    values = {k: getattr(card, k) for k in CARD_FIELDS}
    values["adapter"] = values["adapter"] or t("none", lang)
    return [values[k] for k in CARD_FIELDS]


def save_card(services: Any, slug: str | None, values: dict[str, Any], lang: str = "zh") -> Any:
    """保存小说信息: every card field of the form (``actions.update_card``); returns the new card."""
    from xiaoshuo.adapters import is_none

    changes = {k: v for k, v in values.items() if k in CARD_FIELDS}
    if "adapter" in changes:
        changes["adapter"] = "" if is_none(changes["adapter"]) else (changes["adapter"] or "")
    if "chapter_chars" in changes and changes["chapter_chars"] is not None:
        changes["chapter_chars"] = int(changes["chapter_chars"])
    for k in ("author", "genre", "premise", "style", "pov"):  # an emptied field clears it
        if k in changes and changes[k] is None:
            changes[k] = ""
    return actions.update_card(open_novel(services, slug, lang), **changes)


def status_label(status: str, lang: str = "zh") -> str:
    """A chapter's status in the page's language: 未写 / 草稿 / 定稿 (``actions.STATUS_LABELS``) in zh."""
    if lang == "zh" and status in actions.STATUS_LABELS:
        return actions.STATUS_LABELS[status]
    return label("status", status, lang)


def mark_final(services: Any, slug: str | None, number: int | None, final: bool, lang: str = "zh") -> Any:
    """定稿 (or back to 草稿): the chapter's status (``actions.mark_final``); returns its plan."""
    if not slug or not number:
        raise _err("book_err_no_chapter", lang, fix="book_fix_no_chapter")
    return actions.mark_final(open_novel(services, slug, lang), int(number), bool(final))


# ----------------------------------------------------------------------------- outline
OUTLINE_WIDTHS = ["9%", "17%", "32%", "12%", "14%", "16%"]  # 章 卷 标题 状态 字数 目标
VOLUME_CHARS = 8  # a longer 卷 name is cut to this many characters (…) in the outline table


def short_volume(title: str) -> str:
    return title if len(title) <= VOLUME_CHARS else title[: VOLUME_CHARS - 1] + "…"


def outline_rows(services: Any, slug: str | None, lang: str = "zh") -> list[list[Any]]:
    """卷 → 章 as table rows: number, volume (a long name cut, :data:`VOLUME_CHARS`), title, status (with
    ⚠ for a stale chapter, 待同步, and 🔒 for a locked one), 字数, target."""
    if not slug:
        return []
    from xiaoshuo.writing import flow

    novel = open_novel(services, slug, lang)
    card = novel.card()
    stale = {int(k) for k, v in flow.load(novel)["stale"].items() if v}  # 待同步: `novel status`'s marks
    rows = []
    for vol in novel.outline().volumes:
        for c in vol.chapters:
            rows.append(
                [
                    c.number,
                    short_volume(vol.title),
                    c.title,
                    status_label(c.status, lang)
                    + (t("care_stale_mark", lang) if c.number in stale else "")
                    + (t("care_locked_mark", lang) if c.locked else ""),
                    count_chars(novel.read(c.number, version=False).text),
                    c.target_chars or card.chapter_chars,
                ]
            )
    return rows


def _written(novel: Any, number: int) -> bool:
    return novel.chapter_file(number).is_file() or bool(novel.versions(number))


def add_chapter(
    services: Any, slug: str, title: str, synopsis: str = "", *, volume: str = "", lang: str = "zh"
) -> int:
    """A planned chapter at the end of the last volume (or of a new volume ``volume``)."""
    from xiaoshuo.writing.schema import Volume

    novel = open_novel(services, slug, lang)
    with novel.writer(what="webui outline add"):
        outline = novel.outline()
        number = len(outline.chapters()) + 1
        title = (title or "").strip() or CONTENT_CHAPTER_TITLE.format(number=number)
        if volume.strip() and (not outline.volumes or outline.volumes[-1].title != volume.strip()):
            outline.volumes.append(Volume(title=volume.strip()))
        if not outline.volumes:
            outline.volumes.append(Volume(title=CONTENT_FIRST_VOLUME))
        outline.volumes[-1].chapters.append(
            ChapterPlan(number=number, title=title[:200], synopsis=(synopsis or "").strip())
        )
        novel.save_outline(outline)
    return number


def edit_chapter(
    services: Any, slug: str, number: int, title: str, synopsis: str | None = None, lang: str = "zh"
) -> None:
    """Rename a chapter (and replace its synopsis when given)."""
    fields: dict[str, Any] = {"title": (title or "").strip()}
    if not fields["title"]:
        raise _err("book_err_empty_chapter_title", lang, fix="book_fix_empty_chapter_title")
    if synopsis is not None:
        fields["synopsis"] = synopsis.strip()
    open_novel(services, slug, lang).update_plan(int(number), **fields)


def _planned_only(novel: Any, numbers: list[int], what: str, lang: str) -> None:
    """``what``: ``move`` or ``delete``."""
    written = [n for n in numbers if _written(novel, n)]
    if written:
        raise _err(
            f"book_err_{what}_written",
            lang,
            fix="book_fix_written",
            expected="chapters without text or versions",
            received=t("book_written_list", lang, chapters=written),
        )


def move_chapter(services: Any, slug: str, number: int, delta: int, lang: str = "zh") -> int:
    """Swap a planned chapter with its neighbour (both unwritten); returns its new number."""
    novel = open_novel(services, slug, lang)
    number, other = int(number), int(number) + (1 if delta > 0 else -1)
    with novel.writer(what="webui outline move"):
        outline = novel.outline()
        plans = outline.chapters()
        if not (1 <= other <= len(plans)) or outline.chapter(number) is None:
            return number
        _planned_only(novel, [number, other], "move", lang)
        a, b = outline.chapter(number), outline.chapter(other)
        keep = ("number",)
        da, db = a.model_dump(exclude=set(keep)), b.model_dump(exclude=set(keep))
        for k, v in db.items():
            setattr(a, k, v)
        for k, v in da.items():
            setattr(b, k, v)
        novel.save_outline(outline)
    return other


def delete_chapter(services: Any, slug: str, number: int, lang: str = "zh") -> None:
    """Delete a planned chapter; every chapter after it must be unwritten too (they are renumbered)."""
    novel = open_novel(services, slug, lang)
    number = int(number)
    with novel.writer(what="webui outline delete"):
        outline = novel.outline()
        if outline.chapter(number) is None:
            novel.plan(number)  # raises with the range
        _planned_only(novel, [c.number for c in outline.chapters() if c.number >= number], "delete", lang)
        for vol in outline.volumes:
            vol.chapters = [c for c in vol.chapters if c.number != number]
        outline.volumes = [v for v in outline.volumes if v.chapters] or outline.volumes[:1]
        outline.renumber()
        novel.save_outline(outline)


def plan_fields(services: Any, slug: str | None, number: int | None) -> tuple[str, str, int | None]:
    """Title, synopsis and target of a chapter ('' when not planned)."""
    if not slug or not number:
        return "", "", None
    plan = open_novel(services, slug).outline().chapter(int(number))
    return (plan.title, plan.synopsis, plan.target_chars) if plan else ("", "", None)


# ----------------------------------------------------------------------------- chapter text
@dataclass
class ChapterView:
    header: str
    text: str
    chars: str
    summary: str
    versions: list[list[Any]]


def chars_label(text: str, target: int | None = None, lang: str = "zh") -> str:
    n = count_chars(text or "")
    return t("book_chars_label", lang, n=n) + (t("book_chars_target", lang, target=target) if target else "")


def chapter_view(services: Any, slug: str | None, number: int | None, lang: str = "zh") -> ChapterView:
    """A chapter opened on the page.  Never takes the writer lock, so it opens while a chapter of the
    same book generates: an edit made elsewhere is shown (and said so) and kept as a version by the
    next write; an undecodable file shows its best-effort text and how to replace it."""
    if not slug or not number:
        return ChapterView("", "", chars_label("", lang=lang), "", [])
    novel = open_novel(services, slug, lang)
    number = int(number)
    got = novel.read(number)
    plan = novel.outline().chapter(number)
    target = (plan.target_chars if plan else None) or novel.card().chapter_chars
    text = got.text
    if plan is None:
        header = t("book_header_new", lang, number=number)
    else:
        from xiaoshuo.writing.exporting import chapter_heading

        status = status_label(plan.status, lang)
        heading = chapter_heading(number, plan.title)
        if heading != plan.title:  # not the author's own heading: 第N章 标题 in the page's language
            heading = t("book_header_chapter", lang, number=number, title=plan.title)
        header = t("book_header", lang, heading=heading, status=status)
        if plan.synopsis:
            header += t("book_header_synopsis", lang, synopsis=plan.synopsis)
    if got.problem:
        header += t("book_header_damaged", lang, problem=got.problem)
    elif got.outside_edit:
        header += t("book_header_outside_edit", lang)
    return ChapterView(
        header,
        text,
        chars_label(text, target, lang),
        plan.summary if plan else "",
        version_rows(services, slug, number, lang, current=got.version),
    )


def save_text(services: Any, slug: str | None, number: int | None, text: str, lang: str = "zh") -> int | None:
    """Autosave and 保存: text that differs from the chapter's becomes a new current version; returns
    its id.  An unchanged text returns at once without the writer lock (a blur while another chapter
    generates never waits); an emptied editor is refused, never saved as an empty chapter."""
    if not slug or not number:
        return None
    novel = open_novel(services, slug, lang)
    if not (text or "").strip() and novel.chapter_file(int(number)).is_file():
        raise _err("book_err_empty_text", lang, fix="book_fix_empty_text")  # in the page's words
    # blur and the 保存 click arrive together: save_edit compares and writes under the novel's lock
    version = actions.save_edit(novel, int(number), text, note="webui", keep_empty=False)
    return version.id if version is not None else None


def save_summary(services: Any, slug: str, number: int, summary: str, lang: str = "zh") -> None:
    open_novel(services, slug, lang).set_summary(int(number), summary or "")


# ----------------------------------------------------------------------------- versions
def version_rows(
    services: Any, slug: str | None, number: int | None, lang: str = "zh", *, current: int | None = -1
) -> list[list[Any]]:
    """The versions, newest first; ● marks the one the chapter file is (``current``, when the caller
    has read it; none while an outside edit is not recorded yet)."""
    if not slug or not number:
        return []
    novel = open_novel(services, slug, lang)
    if current == -1:
        current = novel.read(int(number)).version
    rows = []
    for v in reversed(novel.versions(int(number))):
        rows.append(
            [
                v.id,
                "●" if v.id == current else "",
                label("source", v.source, lang),
                label("kind", v.kind, lang),
                v.chars,
                time.strftime("%m-%d %H:%M:%S", time.localtime(v.time)),
                v.text[:24].replace("\n", " "),
            ]
        )
    return rows


def diff_html(services: Any, slug: str, number: int, a: int | None, b: int | None, lang: str = "zh") -> str:
    """Character-level diff of versions ``a`` → ``b`` as HTML: deletions struck out red, insertions green."""
    novel = open_novel(services, slug, lang)
    number = int(number)
    ids = [v.id for v in novel.versions(number)]
    if len(ids) < 1:
        return f"<p>{html.escape(t('book_no_versions', lang))}</p>"
    a, b = optional_int(a, lang), optional_int(b, lang)
    b = b or novel.current_version(number) or ids[-1]
    a = a or next((i for i in reversed(ids) if i < b), b)
    ops = novel.diff(number, a, b)
    title = html.escape(t("book_diff_title", lang, a=a, b=b))
    parts = [f'<div class="xs-diff"><p><b>{title}</b></p><div style="white-space: pre-wrap">']
    for i, op in enumerate(ops):
        if op["op"] == "equal":
            where = "only" if len(ops) == 1 else "before" if i == 0 else "after" if i == len(ops) - 1 else ""
            parts.append(_diff_context(op["a"], where or "between", lang))
            continue
        if op["a"]:
            parts.append(f'<del style="background:#fdd;color:#900">{html.escape(op["a"])}</del>')
        if op["b"]:
            parts.append(
                f'<ins style="background:#dfd;color:#060;text-decoration:none">{html.escape(op["b"])}</ins>'
            )
    parts.append("</div></div>")
    return "".join(parts)


DIFF_CONTEXT_LINES = 2  # lines of unchanged text shown beside a change
DIFF_CONTEXT_CHARS = 120  # … and at most this many characters of them (a paragraph is one line)


def _diff_context(text: str, where: str, lang: str) -> str:
    """Unchanged text of a diff as HTML: a few lines beside each change, the rest one 「省略 N 字」 line
    (``where``: before the first change, after the last, between two, or ``only`` — no change at all)."""
    lines = text.splitlines(keepends=True)
    head = "".join(lines[:DIFF_CONTEXT_LINES])[:DIFF_CONTEXT_CHARS]
    tail = "".join(lines[-DIFF_CONTEXT_LINES:])[-DIFF_CONTEXT_CHARS:]
    keep_head, keep_tail = where in ("after", "between"), where in ("before", "between")
    if where == "only" or len(head) * keep_head + len(tail) * keep_tail >= len(text):
        return html.escape(text)
    kept_head, kept_tail = head if keep_head else "", tail if keep_tail else ""
    gap = t("book_diff_gap", lang, n=count_chars(text[len(kept_head) : len(text) - len(kept_tail)]))
    gap_html = f'<span class="xs-gap" style="color:#888">{html.escape(gap)}</span>'
    return html.escape(kept_head) + gap_html + html.escape(kept_tail)


def revert(services: Any, slug: str, number: int, version_id: int, lang: str = "zh") -> int:
    return actions.revert(open_novel(services, slug, lang), int(number), int(version_id)).id


def _after_accept_options(services: Any, lang: str) -> dict[str, Any]:
    """How an accept on the page runs ``writing.auto_*``: the page's engine (waited for while it loads,
    the base model: no adapter, as ``chapter accept``) and the page's memory store."""
    from xiaoshuo.writing.accepted import wanted

    def open_engine() -> tuple[Any, None]:
        return engine_when_ready(services, lang=lang), None  # a failed or timed-out load: its clear error

    extract = wanted(services.settings)[1]
    return {"open_engine": open_engine, "store": services.store() if extract else None}


def accept(services: Any, slug: str, number: int, version_id: int, lang: str = "zh") -> int:
    """采用 a version: :func:`xiaoshuo.writing.actions.accept` (then auto summary / extraction)."""
    novel = open_novel(services, slug, lang)
    done = _run_async(
        actions.accept(
            services.settings, novel, int(number), int(version_id), **_after_accept_options(services, lang)
        )
    )
    return done.version.id


def accept_candidate(
    services: Any, slug: str, session: dict[str, Any], index: int, shown: str, lang: str = "zh"
) -> int:
    """采用候选 ``index`` of the last generation: its saved version, or — for a stopped run whose
    candidate was never saved — the text shown on the page, stored as a new version first."""
    run = session or {}
    if not run.get("chapter") or run.get("novel") != slug:
        raise _err("book_err_no_candidates", lang, fix="book_fix_no_candidates")
    number = int(run["chapter"])
    versions = run.get("versions") or []
    if index < len(versions) and versions[index]:
        return accept(services, slug, number, versions[index], lang)
    if not (shown or "").strip():
        raise WritingError(t("book_err_candidate_empty", lang, i=index + 1))
    full = run.get("before", "") + shown + run.get("after", "")
    novel = open_novel(services, slug, lang)
    done = _run_async(
        actions.accept_text(
            services.settings, novel, number, full, kind=run.get("kind", "chapter"), note="stopped",
            **_after_accept_options(services, lang),
        )
    )  # fmt: skip
    return done.version.id


# ----------------------------------------------------------------------------- selection
def utf16_to_index(text: str, offset: int) -> int:
    """A browser's selection offset (UTF-16 code units) as a Python string index."""
    units = 0
    for i, ch in enumerate(text):
        if units >= offset:
            return i
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(text)


def selection(text: str, index: Any) -> dict[str, int]:
    """The Textbox ``select`` event's ``[start, end]`` as Python indices into ``text``."""
    try:
        start, end = (int(x) for x in index)
    except (TypeError, ValueError):
        return {}
    start, end = utf16_to_index(text or "", start), utf16_to_index(text or "", end)
    return {"start": min(start, end), "end": max(start, end)} if start != end else {}


# ----------------------------------------------------------------------------- generation
@dataclass
class BookUpdate:
    texts: list[str]
    progress: str = ""
    versions: list[int | None] = field(default_factory=lambda: [None] * MAX_CANDIDATES)
    done: bool = False
    loading: bool = False
    warnings: list[str] = field(default_factory=list)
    session: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None


class _Run:
    """A ``Writer`` operation on its own thread and event loop, observed from the page's loop."""

    def __init__(self, make_coro: Any, n: int) -> None:
        self.make_coro = make_coro
        self.texts = [""] * n
        self.segments: dict[int, dict[str, Any]] = {}
        self.committed = [0] * n  # characters of each candidate's finished segments
        self.versions: list[int | None] = [None] * n
        self.events: list[dict[str, Any]] = []
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.changed = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._cancelled = False
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._main, name="xiaoshuo-book-writer", daemon=True)

    def on_text(self, index: int, piece: str) -> None:
        with self._lock:
            if index < len(self.texts):
                self.texts[index] += piece
                self.changed += 1

    def on_progress(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)
            i = event.get("candidate")
            if event.get("event") == "segment" and i is not None:
                self.segments[i] = event
            if event.get("event") == "candidate_saved" and i is not None and i < len(self.versions):
                self.versions[i] = event.get("version")
            if event.get("event") == "segment" and i is not None and i < len(self.texts):
                self.committed[i] = len(self.texts[i])
            if event.get("event") == "repetition_retry" and i is not None and i < len(self.texts):
                self.texts[i] = self.texts[i][: self.committed[i]]  # the repeating piece is generated again
            self.changed += 1

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self.make_coro())
            if self._cancelled:
                self._task.cancel()
            self.result = loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            self.error = None
        except BaseException as exc:  # reported to the page
            self.error = exc
        finally:
            # The writer's candidate loops are tasks of their own: cancel what is left (each stream then
            # aborts its request in the engine) before the loop closes.
            left = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self.done.set()

    def start(self) -> None:
        self.thread.start()

    def cancel(self) -> None:
        self._cancelled = True
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)

    def snapshot(self) -> tuple[list[str], list[int | None], dict[int, dict[str, Any]], int]:
        with self._lock:
            return list(self.texts), list(self.versions), dict(self.segments), self.changed


def progress_text(
    segments: dict[int, dict[str, Any]], n: int, *, done: bool = False, saved=(), lang: str = "zh"
) -> str:
    parts = []
    for i in range(n):
        ev = segments.get(i)
        if ev is None:
            parts.append(t("book_prog_wait", lang, i=i + 1))
        else:
            parts.append(
                t(
                    "book_prog_segment",
                    lang,
                    i=i + 1,
                    segment=ev["segment"] + 1,
                    chars=ev["chars"],
                    target=ev["target"],
                )
            )
        if i < len(saved) and saved[i]:
            parts[-1] += t("book_prog_saved", lang, version=saved[i])
    return t("book_prog_done" if done else "book_prog_running", lang) + " ｜ ".join(parts)


def _store_or_warning(services: Any, memory_on: bool, lang: str = "zh") -> tuple[Any, list[str]]:
    if not memory_on:
        return None, []
    try:
        return services.store(), []
    except XiaoshuoError as exc:
        return None, [t("book_warn_no_store", lang, message=exc.message)]


def make_writer(
    services: Any, novel: Any, engine: Any, *, memory_on: bool, adapter: str | None, lang: str = "zh"
):
    """A ``Writer`` for the page: ``adapter`` None = the novel's default, （无） = the base model."""
    from xiaoshuo.adapters import is_none
    from xiaoshuo.writing import Writer

    store, warnings = _store_or_warning(services, memory_on, lang)
    if not adapter:
        lora = None
    elif is_none(adapter):
        lora = ""
    else:
        lora = services.lora_for(engine, adapter)
    writer = Writer(services.settings, engine, novel, store=store, memory_on=store is not None, adapter=lora)
    return writer, warnings


async def write_stream(
    services: Any,
    slug: str,
    number: int,
    action: str,
    *,
    candidates: int = 1,
    target_chars: int | None = None,
    chars: int | None = None,
    seed: int | None = None,
    sel: dict[str, int] | None = None,
    instruction: str = "",
    memory_on: bool = True,
    adapter: str | None = None,
    interval: float = STREAM_INTERVAL,
    load_timeout: float = LOAD_TIMEOUT_S,
    lang: str = "zh",
) -> AsyncIterator[BookUpdate]:
    """生成本章 / 续写 / 改写 / 扩写 / 缩写 chapter ``number``, streaming ``candidates`` side by side.

    Every finished candidate is a saved version (``BookUpdate.versions``); nothing is accepted
    unless the chapter was empty and one candidate was asked for (the writing core's rule).
    Closing the generator cancels the run (the engine aborts its requests)."""
    if action not in ACTIONS:
        raise _err("book_err_action", lang, expected=", ".join(ACTIONS), received=action)
    n = max(1, min(int(candidates or 1), MAX_CANDIDATES))
    novel = open_novel(services, slug, lang)
    number = int(number or 0)
    if number < 1:
        raise _err("book_err_no_chapter", lang, fix="book_fix_no_chapter")
    text = novel.text(number)
    sel = sel or {}
    if action in ("rewrite", "expand", "shorten") and not sel:
        raise _err("book_err_no_selection", lang, fix="book_fix_no_selection")
    engine = None
    async for engine in wait_for_engine(services, load_timeout=load_timeout, lang=lang):
        if engine is None:
            yield BookUpdate(loading_texts(n, lang), loading=True)
    writer, warnings = make_writer(services, novel, engine, memory_on=memory_on, adapter=adapter, lang=lang)
    session: dict[str, Any] = {"novel": slug, "chapter": number, "kind": action, "before": "", "after": ""}
    options: dict[str, Any] = {}
    if action == "chapter":
        options = {"target_chars": target_chars or None}
    elif action == "continue":
        session["before"] = text
        options = {"chars": chars or 500}
    else:
        from xiaoshuo.writing.generate import MODE_FACTORS

        start, end = sel["start"], sel["end"]
        session["before"], session["after"] = text[:start], text[end:]
        # a short passage still asks for the writing core's shortest target (50 字)
        want = chars or max(50, round(count_chars(text[start:end]) * MODE_FACTORS[action]))
        options = {"start": start, "end": end, "instruction": instruction or "", "chars": want}

    def coro():
        return actions.write(writer, action, number, candidates=n, seed=seed, **options)

    run = _Run(coro, n)
    writer.on_text, writer.on_progress = run.on_text, run.on_progress
    run.start()
    pad = [""] * (MAX_CANDIDATES - n)
    seen = -1
    try:
        yield BookUpdate(
            [""] * MAX_CANDIDATES, progress_text({}, n, lang=lang), warnings=warnings, session=session
        )
        while not run.done.is_set():
            await asyncio.sleep(interval)
            texts, versions, segments, changed = run.snapshot()
            if changed != seen:
                seen = changed
                yield BookUpdate(
                    texts + pad,
                    progress_text(segments, n, saved=versions, lang=lang),
                    versions + pad[: MAX_CANDIDATES - n],
                    warnings=warnings,
                    session=session | {"versions": versions},
                )
    finally:
        if not run.done.is_set():
            run.cancel()
    if run.error is not None:
        raise run.error
    result = run.result
    texts, versions, segments, _ = run.snapshot()
    if result is not None:
        for c in result.candidates:
            texts[c.index] = c.new_text  # trimmed at a sentence end, as saved
            versions[c.index] = c.version
    session = session | {"versions": versions, "accepted": getattr(result, "accepted", None)}
    yield BookUpdate(
        texts + pad,
        progress_text(segments, n, done=True, saved=versions, lang=lang),
        versions + [None] * (MAX_CANDIDATES - n),
        done=True,
        warnings=warnings,
        session=session,
        result=result.as_dict() if result is not None else None,
    )


# ----------------------------------------------------------------------------- inspector
def inspect(
    services: Any,
    slug: str,
    number: int,
    *,
    memory_on: bool = True,
    action: str | None = None,
    lang: str = "zh",
    **options: Any,
) -> dict[str, Any]:
    """What the next generation would send (:func:`xiaoshuo.writing.actions.preview`, the function the
    writer sends with): ``action`` None = 续写 when the chapter has text, else 生成本章; ``options`` as
    :func:`~xiaoshuo.writing.actions.write` takes them (target_chars, chars, start, end, instruction)."""
    novel = open_novel(services, slug, lang)
    number = int(number)
    engine = services.engine.get()
    writer, warnings = make_writer(services, novel, engine, memory_on=memory_on, adapter=None, lang=lang)
    if action is None:
        action = "continue" if novel.text(number).strip() else "chapter"
    preview = actions.preview(writer, action, number, **options)
    comp = preview.composition
    chapters = {m.get("id"): m.get("chapter") for m in comp.memory}
    rows = [
        [
            t("book_insp_sec_system", lang) if r["section"] == "system" else r["section"],
            inspector_item(r, lang),
            chapters.get(r["id"], "") if str(r["source"]).startswith("memory:") else "",
            r["tokens"],
            "✓" if r["included"] else "✗",
            inspector_reason(r["reason"], lang),
        ]
        for r in comp.account
    ]
    return {
        "rows": rows,
        "summary": (
            t("book_insp_tokens", lang, tokens=comp.tokens, budget=comp.budget)
            + ("" if comp.token_count_exact else t("book_insp_estimate", lang))
            + t(
                "book_insp_counts",
                lang,
                kept=sum(1 for r in comp.account if r["included"]),
                cut=sum(1 for r in comp.account if not r["included"] or "cut" in r["reason"]),
            )
        ),
        "memory": [
            {"name": m.get("name"), "kind": m.get("kind"), "chapter": m.get("chapter")} for m in comp.memory
        ],
        "warnings": warnings + comp.warnings,
        "prompt": "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in preview.messages),
        "messages": preview.messages,
        "action": action,
    }


# ----------------------------------------------------------------------------- review queue
def _queue(services: Any, slug: str, lang: str = "zh"):
    from xiaoshuo.writing.review import ReviewQueue

    return ReviewQueue.of(open_novel(services, slug, lang))


def pending_count(services: Any, slug: str | None) -> int:
    if not slug:
        return 0
    return len(_queue(services, slug).list("pending"))


def review_rows(services: Any, slug: str | None, lang: str = "zh") -> list[list[Any]]:
    if not slug:
        return []
    return [
        [
            i,  # a position, not the proposal's id (issue 26 item 5: no ids for a writer)
            p.chapter,
            label("rkind", p.kind, lang),
            p.summary(),
            p.evidence.quote if p.evidence else "",
        ]
        for i, p in enumerate(_queue(services, slug, lang).list("pending"), 1)
    ]


def proposal_at(services: Any, slug: str, row_value: Any, lang: str = "zh") -> str:
    """The id of the proposal a clicked 待审记忆 row shows (its 序号 and 内容; the queue may have changed
    since the table was drawn, so the content decides when the position no longer matches)."""
    pending = _queue(services, slug, lang).list("pending")
    try:
        position, content = int(row_value[0]), str(row_value[3])
    except (TypeError, ValueError, IndexError):
        raise _err("book_err_no_proposal", lang) from None
    if 1 <= position <= len(pending) and pending[position - 1].summary() == content:
        return pending[position - 1].id
    for p in pending:
        if p.summary() == content:
            return p.id
    raise _err("book_err_no_proposal", lang)


# every field a proposal can have edited, in the order the form shows them (``review.EDITABLE`` per kind)
REVIEW_FIELDS = (
    "name", "aliases", "characters", "text", "traits", "state", "location", "relationships",
    "time_in_story", "thread", "why", "payoff_chapter", "importance", "chapter",
)  # fmt: skip


def proposal_form(services: Any, slug: str, pid: str, lang: str = "zh") -> dict[str, str]:
    """The fields of proposal ``pid`` that can be edited before approving, as the form's texts
    (lists joined with 、, relationships as 人物：关系；…); the other fields of :data:`REVIEW_FIELDS` are
    not in the dict (the form hides them)."""
    from xiaoshuo.writing.review import EDITABLE

    p = _queue(services, slug, lang).get(pid)
    form = {}
    for key in EDITABLE[p.kind]:
        value = p.fields.get(key)
        if isinstance(value, list):
            value = "、".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = "；".join(f"{k}：{v}" for k, v in value.items())
        form[key] = "" if value is None else str(value)
    return form


def form_edits(fields: dict[str, Any]) -> str:
    """The form's texts as the ``field=value`` lines :func:`approve` takes (``review.parse_edits``)."""
    return "\n".join(f"{k}={' '.join(str(v or '').split())}" for k, v in fields.items())


def proposal_detail(services: Any, slug: str, pid: str, lang: str = "zh") -> tuple[str, str]:
    """The proposal's editable fields as ``field=value`` lines, and its chapter with the evidence marked."""
    from xiaoshuo.writing.review import EDITABLE, verify

    novel = open_novel(services, slug, lang)
    p = _queue(services, slug, lang).get(pid)
    lines = []
    for key in EDITABLE[p.kind]:
        value = p.fields.get(key)
        if isinstance(value, list):
            value = ",".join(value)
        elif isinstance(value, dict):
            value = ",".join(f"{k}:{v}" for k, v in value.items())
        lines.append(f"{key}={'' if value is None else value}")
    text = novel.text(p.chapter)
    ev = p.evidence
    if ev is None or not verify(text, ev):
        body = html.escape(text[:600]) + ("…" if len(text) > 600 else "")
        note = f"<p>{html.escape(t('book_evidence_gone', lang))}</p>" if ev else ""
        return "\n".join(lines), f"{note}<div style='white-space: pre-wrap'>{body}</div>"
    lo, hi = max(0, ev.start - 150), min(len(text), ev.end + 150)
    marked = (
        ("…" if lo else "")
        + html.escape(text[lo : ev.start])
        + f'<mark class="xs-evidence">{html.escape(text[ev.start : ev.end])}</mark>'
        + html.escape(text[ev.end : hi])
        + ("…" if hi < len(text) else "")
    )
    title = html.escape(t("book_evidence_title", lang, chapter=p.chapter))
    return "\n".join(lines), f"<p><b>{title}</b></p><div style='white-space: pre-wrap'>{marked}</div>"


def approve(services: Any, slug: str, pid: str, edits_text: str = "", lang: str = "zh") -> list[str]:
    """Approve one proposal (with ``field=value`` lines as edits when they change anything)."""
    from xiaoshuo.writing.review import parse_edits

    queue = _queue(services, slug, lang)
    p = queue.get(pid)
    edits = {}
    if (edits_text or "").strip():
        given = parse_edits(p.kind, [ln for ln in edits_text.splitlines() if ln.strip()])
        original = parse_edits(p.kind, proposal_detail(services, slug, pid)[0].splitlines())
        edits = {k: v for k, v in given.items() if original.get(k) != v}
    written = queue.approve(p.id, services.store(), edits=edits or None)
    return [e.id for e in written]


def proposal_words(services: Any, slug: str, pid: str, lang: str = "zh") -> str:
    """A proposal in a writer's words: its kind and what it names (``新人物 林远``), never its id."""
    p = _queue(services, slug, lang).get(pid)
    f = p.fields
    what = f.get("name") or p.target or "、".join(f.get("characters", []) or []) or p.summary()
    what = what if len(what) <= 40 else what[:39] + "…"
    return f"{label('rkind', p.kind, lang)} {what}".strip()


def reject(services: Any, slug: str, pid: str, lang: str = "zh") -> None:
    _queue(services, slug, lang).reject(pid)


def approve_all(services: Any, slug: str, lang: str = "zh") -> int:
    return len(_queue(services, slug, lang).approve_all(services.store()))


def reject_all(services: Any, slug: str, lang: str = "zh") -> int:
    queue = _queue(services, slug, lang)
    pending = queue.list("pending")
    for p in pending:
        queue.reject(p.id)
    return len(pending)


async def extract(services: Any, slug: str, number: int, lang: str = "zh") -> dict[str, Any]:
    """提取记忆 from one chapter into the review queue (the model fills a form; evidence is verified)."""
    from xiaoshuo.writing.extraction import Extractor

    novel = open_novel(services, slug, lang)
    engine = await ready_engine(services, lang=lang)
    ex = Extractor(services.settings, engine, novel, services.store())
    results = await asyncio.to_thread(_run_async, ex.extract([int(number)]))
    r = results[0]
    return {"proposals": len(r.proposals), "dropped": len(r.dropped), "error": r.error}


# ----------------------------------------------------------------------------- consistency, threads
def check_rows(services: Any, slug: str, number: int, lang: str = "zh") -> list[list[Any]]:
    """Rule-based consistency findings of the chapter (warnings with the quote, its span and the entry)."""
    from xiaoshuo.writing.consistency import run_check

    novel = open_novel(services, slug, lang)
    report = run_check(services.settings, novel, int(number), services.store())
    rows = []
    for f in report["findings"]:
        e = f.get("entry") or {}
        where = f"{f['start']}–{f['end']}"
        entry = (
            t("book_entry_chapter", lang, name=e.get("name", ""), chapter=e.get("chapter"))
            if e.get("chapter") is not None
            else e.get("name", "")
        )
        rows.append(
            ["⚠" if f["severity"] == "warning" else "ℹ", f["rule"], f["message"], f["quote"], where, entry]
        )
    return rows


def thread_rows(services: Any, slug: str | None, lang: str = "zh") -> list[list[Any]]:
    from xiaoshuo.writing.threads import thread_report

    if not slug:
        return []
    novel = open_novel(services, slug, lang)
    written = [n for n in novel.written_chapters() if novel.read(n, version=False).text.strip()]
    rows = thread_report(
        services.store().list(slug), last_written=max(written, default=0), include_closed=True
    )
    return [
        [
            r["name"],
            r["text"],
            r["chapter"],
            r["payoff_chapter"] if r["payoff_chapter"] is not None else "",
            label("thread", r["status"], lang),
            r["open_for"],
        ]
        for r in rows
    ]


# ------------------------------------------------------------------------ books in/out (importing, exporting)
def import_file(services: Any, path: str, slug: str, mode: str = "new") -> tuple[dict[str, Any], str]:
    """导入小说: any file ``novel import`` accepts; returns the import report and the novel's slug."""
    from pathlib import Path

    from xiaoshuo.writing.importing import import_book

    original = Path(getattr(path, "orig_name", None) or str(path))
    slug = (slug or "").strip() or original.stem.strip() or "imported"
    report = import_book(library(services), str(path), slug, mode=mode or "new", settings=services.settings)
    return report, slug


def import_summary(report: dict[str, Any], lang: str = "zh") -> str:
    """The import report's summary line (and the re-based numbering, the dropped lines) for the page."""
    line = t(
        "book_import_summary",
        lang,
        title=report.get("title", ""),
        chapters=len(report.get("chapters", [])),
        volumes=len(report.get("volumes", [])),
        chars=report.get("total_chars", 0),
        target=report.get("chapter_chars", ""),
        encoding=report.get("encoding") or report.get("format") or "",
    )
    if report.get("author"):
        line += t("book_import_author", lang, author=report["author"])
    renumbered = report.get("renumbered")
    if renumbered:
        line += f"\n\nℹ {renumbered['note']}"
    dropped = report.get("dropped") or []
    if dropped:
        line += t("book_import_dropped", lang, count=len(dropped))
    return line


def import_rows(report: dict[str, Any]) -> list[list[Any]]:
    """The import report's chapters as table rows: number, volume, title (the author's heading), 字."""
    return [[c["number"], c.get("volume", ""), c["title"], c["chars"]] for c in report.get("chapters", [])]


def export_file(services: Any, slug: str, fmt: str, convert: str | None = None, lang: str = "zh") -> str:
    """导出: the whole book as TXT / Markdown / EPUB / DOCX (简繁 converted when asked); returns the file.

    The file is named after the title (shortened to a safe length) in a fresh download folder
    (``webui.files``: old ones are removed, Gradio serves its own copy)."""
    from xiaoshuo.webui.files import download_path
    from xiaoshuo.writing.exporting import export_book

    novel = open_novel(services, slug, lang)
    target = download_path(novel.card().title, fmt, kind="book", fallback=slug)
    try:
        export_book(novel, fmt, target, convert=convert or None)
    except ValueError as exc:  # e.g. a character the format cannot hold
        raise WritingError(
            t("book_err_export", lang, fmt=fmt), received=str(exc), fix=t("book_fix_export", lang)
        ) from None
    return str(target)


# ----------------------------------------------------------------------------- planning (writing.planning)
def _plan_options(services: Any, total_from: int, seed: int | None, progress: Any) -> dict[str, Any]:
    """The options every outline run of the page passes to ``writing.planning`` (limits, the seeded
    planning sampling, memory, the batch, progress counted from chapter ``total_from``)."""
    import dataclasses

    from xiaoshuo.writing.planning import PlanLimits
    from xiaoshuo.writing.prompts import Prompts
    from xiaoshuo.writing.structured import DEFAULT_SAMPLING

    seeded = seed is not None and int(seed) >= 0
    store, _ = _store_or_warning(services, True)

    def on_batch(event: dict[str, Any]) -> None:
        if progress is not None:
            total = max(1, event.get("target", event["next"]) - total_from + 1)
            progress(min(total, event["next"] - total_from), total)

    return {
        "batch": services.settings.writing.outline_batch,
        "limits": PlanLimits.from_settings(services.settings),
        "sampling": dataclasses.replace(DEFAULT_SAMPLING, seed=int(seed)) if seeded else None,
        "store": store,
        "on_batch": on_batch,
        "prompts": Prompts.from_settings(services.settings),
    }


async def generate_outline(
    services: Any,
    slug: str,
    chapters: int,
    start: int | None = None,
    *,
    seed: int | None = None,
    progress: Any = None,
    lang: str = "zh",
) -> dict[str, Any]:
    """生成大纲 up to chapter ``chapters`` (from ``start`` when given), batch by batch with progress.

    ``seed``: the planning sampling (``structured.DEFAULT_SAMPLING``) with this seed, so the same seed
    gives the same outline (as ``outline generate --seed``); None or < 0: a random one."""
    from xiaoshuo.writing.planning import generate_outline as plan

    novel = open_novel(services, slug, lang)
    if chapters < 1:
        raise _err("book_err_chapter_count", lang, expected="≥ 1", received=chapters)
    engine = await ready_engine(services, lang=lang)
    begin = start or len(novel.outline().chapters()) + 1
    options = _plan_options(services, begin, seed, progress)
    result = await asyncio.to_thread(
        _run_async, plan(engine, novel, chapters=chapters, start=start, **options)
    )
    return result.as_dict()


def outline_interruption(services: Any, slug: str | None, lang: str = "zh") -> Any:
    """The novel's interrupted outline run (``planning.interruption``), or None."""
    from xiaoshuo.writing.planning import interruption

    return interruption(open_novel(services, slug, lang)) if slug else None


async def resume_outline(
    services: Any, slug: str, *, seed: int | None = None, progress: Any = None, lang: str = "zh"
) -> dict[str, Any]:
    """继续: the interrupted outline run from where it stopped (its target and batch)."""
    from xiaoshuo.writing.planning import resume_outline as resume

    novel = open_novel(services, slug, lang)
    stopped = outline_interruption(services, slug, lang)
    if stopped is None:
        raise _err("book_err_nothing_to_resume", lang, fix="book_fix_nothing_to_resume")
    engine = await ready_engine(services, lang=lang)
    options = _plan_options(services, stopped.next, seed, progress)
    options.pop("batch")  # the interrupted run's
    result = await asyncio.to_thread(_run_async, resume(engine, novel, **options))
    return result.as_dict()


async def restart_outline(
    services: Any,
    slug: str,
    start: int | None,
    chapters: int | None = None,
    *,
    seed: int | None = None,
    progress: Any = None,
    lang: str = "zh",
) -> dict[str, Any]:
    """重新开始: plan again from chapter ``start`` (the interrupted run's start when empty) up to
    ``chapters`` (the interrupted run's target when empty); drafted and final chapters are kept."""
    from xiaoshuo.writing.planning import restart_outline as restart

    novel = open_novel(services, slug, lang)
    stopped = outline_interruption(services, slug, lang)
    first = optional_int(start, lang) or (stopped.start if stopped else 1)
    if first < 1:
        raise _err("book_err_chapter_count", lang, expected="≥ 1", received=first)
    engine = await ready_engine(services, lang=lang)
    options = _plan_options(services, first, seed, progress)
    result = await asyncio.to_thread(
        _run_async, restart(engine, novel, first, chapters=int(chapters) if chapters else None, **options)
    )
    return result.as_dict()


async def summarize(services: Any, slug: str, number: int, lang: str = "zh") -> str:
    """本章摘要 by the model (前情提要), stored on the chapter's plan; returns it."""
    from xiaoshuo.writing.planning import PlanLimits, summarize_chapter
    from xiaoshuo.writing.prompts import Prompts

    novel = open_novel(services, slug, lang)
    engine = await ready_engine(services, lang=lang)
    answer = await asyncio.to_thread(
        _run_async,
        summarize_chapter(
            engine,
            novel,
            int(number),
            limits=PlanLimits.from_settings(services.settings),
            prompts=Prompts.from_settings(services.settings),
        ),
    )
    return answer.summary.strip()


def _run_async(coro: Any) -> Any:
    """Run a writing-core coroutine on this (worker) thread's own loop: its file I/O stays off the page's."""
    return asyncio.run(coro)


# ----------------------------------------------------------------------------- page events
# What ``layout.py`` wires, bound there with ``functools.partial(fn, services, lang, …)``: the components'
# values come next, in the order of the event's inputs, and the outputs' values go back in the order of
# its outputs (``gr.skip()`` for one left as it is, ``gr.update`` for a picker's choices).  Typed and OS
# errors of the synchronous ones become ``gr.Error`` in ``webui.errors.guard`` (wrapped in the layout);
# the async ones turn them into ``gr.Error`` themselves.

CHAPTER_FIELDS = (
    9  # chapter_outputs: header, text, chars, summary, versions, plan title, synopsis, target, 定稿
)


def optional_int(value: Any, lang: str = "zh") -> int | None:
    """A field that means "empty = the default" (a Textbox, so empty stays empty: a gr.Number shows and
    sends 0): None when blank, else its whole number."""
    if value is None or not str(value).strip():
        return None
    try:
        return int(float(str(value).strip()))
    except ValueError:
        raise _err("book_err_number", lang, received=str(value)) from None


def _seed(value: Any, lang: str = "zh") -> int | None:
    """The page's seed field: a negative or empty one is a random seed (``None``)."""
    seed = optional_int(value, lang)
    return None if seed is None or seed < 0 else seed


def review_label(services: Any, lang: str, slug: str | None) -> gr.Accordion:
    """待审记忆 (N): the review panel's title with the count of proposals waiting."""
    count = pending_count(services, slug) if slug else 0
    return gr.Accordion(label=t("book_review_count", lang, count=count) if count else t("book_review", lang))


def chapter_outputs(services: Any, lang: str, slug: str | None, number: int | None) -> list[Any]:
    """A chapter on the page (``CHAPTER_FIELDS`` values); its target box holds the plan's own target, and
    is empty (the novel's 每章目标 as its placeholder) when the chapter has none."""
    view = chapter_view(services, slug, number, lang=lang)
    title, synopsis, plan_target = plan_fields(services, slug, number)
    default = open_novel(services, slug, lang=lang).card().chapter_chars if slug else None
    tgt = gr.update(
        value="" if plan_target is None else str(plan_target),
        placeholder=t("book_target_ph", lang, chars=default) if default else None,
    )
    final = _is_final(services, slug, number)
    return [view.header, view.text, view.chars, view.summary, view.versions, title, synopsis, tgt, final]


def _is_final(services: Any, slug: str | None, number: int | None) -> bool:
    if not slug or not number:
        return False
    plan = open_novel(services, slug).outline().chapter(int(number))
    return bool(plan and plan.status == "final")


def opened_chapter(slug: str, numbers: list[int], saved: dict[str, Any] | None) -> int | None:
    """The chapter a novel opens at: the one this browser had open in it when the outline still has it,
    else the first chapter (``None`` for an empty outline)."""
    saved = saved or {}
    wanted = saved.get("chapter") if saved.get("novel") == slug else None
    return wanted if wanted in numbers else (numbers[0] if numbers else None)


def _store_ok(services: Any) -> bool:
    try:
        services.store()
        return True
    except XiaoshuoError:
        return False


def on_show_novel(services: Any, lang: str, slug: str | None, saved: dict[str, Any] | None) -> list[Any]:
    """A novel picked: card, outline, its chapter (the one last open), review, threads, its adapter and
    the browser's saved place."""
    if not slug:
        blank = [gr.skip()] * CHAPTER_FIELDS
        return [
            "",
            [],
            None,
            *blank,
            [],
            review_label(services, lang, None),
            [],
            gr.skip(),
            saved,
            *card_values(services, None, lang),
            *outline_state(services, lang, None),
        ]
    novel_obj = open_novel(services, slug, lang=lang)
    rows = outline_rows(services, slug, lang=lang)
    number = opened_chapter(slug, [r[0] for r in rows], saved)
    view = chapter_outputs(services, lang, slug, number)
    default = novel_obj.card().adapter or t("none", lang)
    return [
        card_markdown(services, slug, lang=lang),
        rows,
        number,
        *view,
        review_rows(services, slug, lang=lang),
        review_label(services, lang, slug),
        thread_rows(services, slug, lang=lang) if _store_ok(services) else [],
        gr.update(value=default),
        {"novel": slug, "chapter": number},
        *card_values(services, slug, lang),
        *outline_state(services, lang, slug),
    ]


def on_load(services: Any, lang: str, saved: dict[str, Any] | None) -> tuple[Any, Any, Any, Any]:
    """Every page load: the novels on disk (the one this browser had open, else the first) and the
    adapters for the three adapter pickers (the page's, 新建小说's, the card form's)."""
    choices = novel_choices(services, lang)
    slugs = [c[1] for c in choices]
    slug = (saved or {}).get("novel")
    slug = slug if slug in slugs else (slugs[0] if slugs else None)
    adapters = [t("none", lang), *services.adapters()]
    return (
        gr.update(choices=choices, value=slug),
        gr.update(choices=adapters),
        gr.update(choices=adapters),
        gr.update(choices=adapters),  # the card form's 默认适配器
    )


def on_pick_chapter(services: Any, lang: str, slug: str | None, number: Any, saved: Any) -> list[Any]:
    """Another chapter: its view, and the browser remembers it."""
    if not slug or not number:
        return [*chapter_outputs(services, lang, None, None), saved]
    return [*chapter_outputs(services, lang, slug, int(number)), {"novel": slug, "chapter": int(number)}]


def row_number(row_value: Any) -> Any:
    """The number in a clicked table row's first cell (chapter, version); ``gr.skip()`` for anything else."""
    try:
        return int(row_value[0])
    except (TypeError, ValueError, IndexError):
        return gr.skip()


def on_create(
    services: Any,
    lang: str,
    title,
    slug,
    genre,
    style,
    premise,
    chapter_chars,
    default_adapter,
    saved,
    author=None,
    pov=None,
) -> tuple[Any, Any]:
    """新建小说: the picker shows (and opens) the new novel; the form folds."""
    made = create_novel(
        services,
        slug,
        title,
        genre=genre,
        premise=premise,
        style=style,
        chapter_chars=chapter_chars,
        adapter=default_adapter,
        author=author or "",
        pov=pov or "",
        lang=lang,
    )
    return gr.update(choices=novel_choices(services, lang), value=made), gr.Accordion(open=False)


def on_save_card(services: Any, lang: str, slug, *values) -> list[Any]:
    """保存小说信息: [card line, message, *the form as saved, the picker's label]."""
    card = save_card(services, slug, dict(zip(CARD_FIELDS, values, strict=True)), lang=lang)
    return [
        card_markdown(services, slug, lang=lang),
        f"✓ {t('book_card_saved', lang)}",
        *card_values(services, slug, lang),
        gr.update(choices=novel_choices(services, lang), value=card.slug),
    ]


def on_mark_final(services: Any, lang: str, slug, number, final) -> list[Any]:
    """定稿 toggled: [the toggle, the chapter's header, outline rows, message]."""
    plan = mark_final(services, slug, number, bool(final), lang=lang)
    done = plan.status == "final"
    return [
        done,
        chapter_view(services, slug, int(number), lang=lang).header,
        outline_rows(services, slug, lang=lang),
        f"✓ {t('book_final_on' if done else 'book_final_off', lang, number=int(number))}",
    ]


def on_final_state(services: Any, lang: str, slug, number) -> bool:
    """The 定稿 toggle as the outline says (after a refused toggle, too)."""
    return _is_final(services, slug, number)


# ---- outline edits: [outline rows, chapter to show, message]
def on_add_chapter(services: Any, lang: str, slug, title, synopsis) -> list[Any]:
    num = add_chapter(services, slug, title, synopsis, lang=lang)
    return [outline_rows(services, slug, lang=lang), num, t("book_ok_chapter", lang, number=num)]


def on_rename(services: Any, lang: str, slug, number, title, synopsis) -> list[Any]:
    """改标题/要点: [outline rows, message, *chapter view]."""
    edit_chapter(services, slug, number, title, synopsis, lang=lang)
    return [
        outline_rows(services, slug, lang=lang),
        t("book_ok_chapter", lang, number=int(number)),
        *chapter_outputs(services, lang, slug, int(number)),
    ]


def on_move(services: Any, lang: str, delta: int, slug, number) -> list[Any]:
    new = move_chapter(services, slug, number, delta, lang=lang)
    return [outline_rows(services, slug, lang=lang), new, t("book_ok_chapter", lang, number=new)]


def on_delete(services: Any, lang: str, slug, number) -> list[Any]:
    """删除: the outline then shows its first chapter."""
    delete_chapter(services, slug, number, lang=lang)
    rows = outline_rows(services, slug, lang=lang)
    return [rows, rows[0][0] if rows else None, t("book_ok_deleted", lang, number=int(number))]


# ---- the editor
def on_save(services: Any, lang: str, slug, number, value) -> tuple[Any, Any, Any, Any]:
    """保存 (and leaving the editor): [message, versions, outline, card line]; nothing changes for an
    unchanged text."""
    vid = save_text(services, slug, number, value, lang=lang)
    if vid is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    return (
        f"✓ {t('book_saved_version', lang)} {vid}",
        version_rows(services, slug, number, lang=lang),
        outline_rows(services, slug, lang=lang),
        card_markdown(services, slug, lang=lang),
    )


def on_select_text(lang: str, value: str | None, index: Any) -> tuple[dict[str, int], str]:
    """A selection in the editor: the selection state and the line that describes it."""
    sel = selection(value or "", index)
    if not sel:
        return {}, t("book_no_selection", lang)
    picked = (value or "")[sel["start"] : sel["end"]]
    shown = picked if len(picked) <= 30 else picked[:14] + "…" + picked[-14:]
    return sel, t(
        "book_selection_info", lang, start=sel["start"], end=sel["end"], count=len(picked), shown=shown
    )


# ---- generation
async def on_generate(
    services: Any,
    lang: str,
    action: str,
    slug,
    number,
    value,
    n_cands,
    tgt,
    cont,
    seed_v,
    instr,
    sel,
    mem,
    adapter_v,
):
    """生成/续写/改写…: streams ``[*candidate texts, progress, run state]``; warnings once, as toasts."""
    if action != "chapter" and value is not None:
        # what the writer sees is what the page shows
        save_text(services, slug, number, value, lang=lang)
    warned = False
    async for u in write_stream(
        services,
        slug,
        number,
        action,
        candidates=int(n_cands or 1),
        target_chars=optional_int(tgt, lang) or None,
        chars=(optional_int(cont, lang) or None) if action == "continue" else None,
        seed=_seed(seed_v, lang),
        sel=sel,
        instruction=instr or "",
        memory_on=bool(mem),
        adapter=adapter_v,
        lang=lang,
    ):
        if u.warnings and not warned:
            warned = True
            for w in u.warnings:
                gr.Warning(w)
        yield [*u.texts, u.progress, u.session or gr.skip()]


def on_refresh(services: Any, lang: str, slug, number) -> list[Any]:
    """After a generation (or 停止): the chapter view, the outline and the card line (its 字 count) as
    they are on disk."""
    if not slug or not number:
        return [gr.skip()] * (CHAPTER_FIELDS + 2)
    return [
        *chapter_outputs(services, lang, slug, int(number)),
        outline_rows(services, slug, lang=lang),
        card_markdown(services, slug, lang=lang),
    ]


def on_accept(services: Any, lang: str, index: int, slug, session, shown) -> list[Any]:
    """采用 candidate ``index``: [*chapter view, outline, message, the card line with the new 字 count]."""
    vid = accept_candidate(services, slug, session, index, shown, lang=lang)
    number = int(session["chapter"])
    return [
        *chapter_outputs(services, lang, slug, number),
        outline_rows(services, slug, lang=lang),
        f"✓ {t('book_accepted', lang)} {vid}",
        card_markdown(services, slug, lang=lang),
    ]


# ---- versions, summary, inspector
def on_diff(services: Any, lang: str, slug, number, a, b) -> str:
    return diff_html(services, slug, number, a, b, lang=lang)


def on_revert(services: Any, lang: str, slug, number, a) -> list[Any]:
    """恢复 version ``a``: [*chapter view, message]."""
    a = optional_int(a, lang)
    if not a:
        raise gr.Error(t("book_pick_version", lang))
    vid = revert(services, slug, number, a, lang=lang)
    return [
        *chapter_outputs(services, lang, slug, int(number)),
        f"✓ {t('book_reverted', lang)} {int(a)} → {vid}",
    ]


def on_save_summary(services: Any, lang: str, slug, number, value) -> str:
    save_summary(services, slug, number, value, lang=lang)
    return f"✓ {t('book_summary_saved', lang)}"


def on_inspect(services: Any, lang: str, slug, number, mem, tgt, cont) -> tuple[str, list[list[Any]], str]:
    """上下文检查: [summary with warnings, rows, the prompt] of the request the next click sends."""
    if not slug or not number:
        raise gr.Error(t("book_pick_chapter", lang))
    # the page's own 目标字数 / 续写字数: the preview is the request the next click sends
    sizes = {"target_chars": optional_int(tgt, lang) or None, "chars": optional_int(cont, lang) or None}
    report = inspect(services, slug, number, memory_on=bool(mem), lang=lang, **sizes)
    head = report["summary"] + "".join(f"\n\n⚠ {w}" for w in report["warnings"])
    return head, report["rows"], report["prompt"]


# ---- review queue: [review rows, review panel title, message, threads] (+ the cleared detail fields)
def _review_after(services: Any, lang: str, slug, message: str) -> list[Any]:
    return [
        review_rows(services, slug, lang=lang),
        review_label(services, lang, slug),
        message,
        thread_rows(services, slug, lang=lang),
    ]


def _form_cleared() -> list[Any]:
    return [gr.update(value="", visible=False) for _ in REVIEW_FIELDS]


def on_pick_proposal(services: Any, lang: str, slug, row_value) -> list[Any]:
    """A clicked proposal: [its id (a hidden box), one form field per :data:`REVIEW_FIELDS` (shown when
    the proposal's kind has it, prefilled), the evidence marked]."""
    if not slug:
        raise _err("book_err_no_novel", lang)
    pid = proposal_at(services, slug, row_value, lang)
    form = proposal_form(services, slug, pid, lang)
    marked = proposal_detail(services, slug, pid, lang=lang)[1]
    fields = [gr.update(value=form.get(k, ""), visible=k in form) for k in REVIEW_FIELDS]
    return [pid, *fields, marked]


def on_approve(services: Any, lang: str, slug, pid, *values) -> list[Any]:
    """通过 with the form's fields as edits: the message says what was approved (已批准：新人物 林远)."""
    if not pid:
        raise _err("book_err_no_proposal", lang)
    form = proposal_form(services, slug, pid, lang)
    given = {k: v for k, v in zip(REVIEW_FIELDS, values, strict=False) if k in form}
    approve(services, slug, pid, form_edits(given) if given else "", lang=lang)
    what = proposal_words(services, slug, pid, lang=lang)
    return [
        *_review_after(services, lang, slug, t("book_approved_what", lang, what=what)),
        "",
        *_form_cleared(),
        "",
    ]


def on_reject(services: Any, lang: str, slug, pid) -> list[Any]:
    if not pid:
        raise _err("book_err_no_proposal", lang)
    what = proposal_words(services, slug, pid, lang=lang)
    reject(services, slug, pid, lang=lang)
    return [
        *_review_after(services, lang, slug, t("book_rejected_what", lang, what=what)),
        "",
        *_form_cleared(),
        "",
    ]


def on_review_all(services: Any, lang: str, approve_them: bool, slug) -> list[Any]:
    """全部通过 / 全部拒绝."""
    count = approve_all(services, slug, lang=lang) if approve_them else reject_all(services, slug, lang=lang)
    return _review_after(services, lang, slug, f"✓ {count}")


async def on_extract(services: Any, lang: str, slug, number) -> list[Any]:
    """提取记忆 from the chapter into the review queue."""
    if not slug or not number:
        raise WritingError(t("book_pick_chapter", lang))
    r = await extract(services, slug, int(number), lang=lang)
    msg = f"✓ {r['proposals']} {t('book_proposals', lang)}" + (f" ✗ {r['error']}" if r["error"] else "")
    return _review_after(services, lang, slug, msg)


def on_check(services: Any, lang: str, slug, number) -> list[list[Any]]:
    """一致性检查: the findings (a toast when there are none)."""
    if not slug or not number:
        raise gr.Error(t("book_pick_chapter", lang))
    rows = check_rows(services, slug, number, lang=lang)
    if not rows:
        gr.Info(t("book_check_clean", lang))
    return rows


def on_threads(services: Any, lang: str, slug) -> list[list[Any]]:
    return thread_rows(services, slug, lang=lang)


# ---- books in/out, outline generation, summaries
def on_import(services: Any, lang: str, file, slug, mode) -> tuple[str, list[list[Any]], Any]:
    """导入: [the report's summary line, its per-chapter table, the picker showing the novel made or
    filled]."""
    if not file:
        raise gr.Error(t("book_import_nofile", lang))
    report, made = import_file(services, file, slug, mode)
    return (
        import_summary(report, lang),
        import_rows(report),
        gr.update(choices=novel_choices(services, lang), value=made),
    )


def on_export(services: Any, lang: str, slug, fmt, conv) -> str:
    return export_file(services, slug, fmt, conv or None, lang=lang)


async def on_generate_outline(
    services: Any,
    lang: str,
    slug,
    count,
    start,
    seed_v,
    progress=gr.Progress(),  # noqa: B008
) -> tuple[list[list[Any]], str, int | None]:
    """生成大纲: [outline rows, message, the first chapter planned]."""
    result = await generate_outline(
        services,
        slug,
        int(count or 0),
        optional_int(start, lang),
        seed=_seed(seed_v, lang),
        progress=_bar(progress),
        lang=lang,
    )
    return _planned(services, lang, slug, result)


def outline_state(services: Any, lang: str, slug) -> list[Any]:
    """The 继续 / 重新开始 panel: [panel shown?, the reason, 从第几章, 章数] — shown while the novel has
    an interrupted outline run (on opening it and after every outline run, failed ones included)."""
    stopped = outline_interruption(services, slug, lang) if slug else None
    if stopped is None:
        return [gr.update(visible=False), "", gr.skip(), gr.skip()]
    reason = t("book_outline_stopped", lang, reason=stopped.reason, next=stopped.next, target=stopped.target)
    return [gr.update(visible=True), reason, stopped.next, stopped.target]


def on_outline_after(services: Any, lang: str, slug) -> list[Any]:
    """After any outline run (it may have failed): [outline rows, message, chapter, *outline_state].

    Re-sets the outputs of the run, so no error badge of a failed run stays on them; the message and
    chapter are left as the run set them."""
    rows = outline_rows(services, slug, lang=lang) if slug else gr.skip()
    return [rows, gr.skip(), gr.skip(), *outline_state(services, lang, slug)]


async def on_resume_outline(
    services: Any,
    lang: str,
    slug,
    seed_v,
    progress=gr.Progress(),  # noqa: B008
) -> tuple[list[list[Any]], str, int | None]:
    """继续 the interrupted outline run: [outline rows, message, the first chapter planned]."""
    result = await resume_outline(
        services,
        slug,
        seed=_seed(seed_v, lang),
        progress=_bar(progress),
        lang=lang,
    )
    return _planned(services, lang, slug, result)


async def on_restart_outline(
    services: Any,
    lang: str,
    slug,
    count,
    start,
    seed_v,
    progress=gr.Progress(),  # noqa: B008
) -> tuple[list[list[Any]], str, int | None]:
    """重新开始 from 从第几章 (up to 章数): [outline rows, message, the first chapter planned]."""
    result = await restart_outline(
        services,
        slug,
        optional_int(start, lang),
        int(count) if count else None,
        seed=_seed(seed_v, lang),
        progress=_bar(progress),
        lang=lang,
    )
    return _planned(services, lang, slug, result)


def _bar(progress: Any) -> Any:
    """Gradio's progress bar as ``(done, total)`` callback (None without one)."""
    if progress is None:
        return None
    return lambda done, total: progress(done / max(total, 1), desc=f"{done}/{total}")


def _planned(services: Any, lang: str, slug, result: dict[str, Any]) -> tuple[list[list[Any]], str, Any]:
    rows = outline_rows(services, slug, lang=lang)
    generated = result.get("generated") or []
    first = generated[0] if generated else (rows[0][0] if rows else None)
    return rows, f"✓ {len(generated)} {t('book_chapters_planned', lang)}", first


async def on_summarize(services: Any, lang: str, slug, number) -> tuple[str, str]:
    """写摘要 by the model: [the summary, message]."""
    value = await summarize(services, slug, int(number), lang=lang)
    return value, f"✓ {t('book_summary_saved', lang)}"
