"""记忆 (memory)'s handlers: plain functions over ``Services`` calling :mod:`xiaoshuo.memory`.

The page shows the story memory of the current novel — which novel it is, the entries of one kind as a
table (click a row to edit or delete it), add, search, import/export, statistics and reindex.  The
reading and writing functions (``heading``, ``rows``, ``select_entry``, ``add_entry``, ``edit_entry``,
``delete_entry``, ``search_rows``, ``import_file``, ``export_file``, ``stats_markdown``,
``reindex_markdown``) raise ``XiaoshuoError`` and return plain values; the page's events (``refresh``,
``unselect``, ``on_kind``, ``on_select``, ``on_add`` …) return the values of the components they update,
in the order ``layout.py`` wires them.  Everything runs without a browser.  Not responsible for the
layout (``layout.py``) or for proposals from extraction (the book page's review queue).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import gradio as gr

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.services import Services

# how a writer may type a chapter number: 第3章 (novel text, not page text)
CONTENT_CHAPTER_PREFIX = "第"
CONTENT_CHAPTER_SUFFIX = "章"

#: the form's fields, in the order the page's inputs are wired
FORM_FIELDS = (
    "name",
    "aliases",
    "characters",
    "text",
    "chapter",
    "importance",
    "pinned",
    "traits",
    "relations",
    "state",
    "when",
    "why",
)
#: which form fields each kind uses (the others are hidden)
_EVERY_KIND = {"name", "text", "chapter", "importance", "pinned"}
KIND_FIELDS = {
    "character": _EVERY_KIND | {"aliases", "traits", "relations", "state"},
    "setting": _EVERY_KIND | {"aliases"},
    "plot": _EVERY_KIND | {"characters", "when"},
    "dialogue": _EVERY_KIND | {"characters", "why"},
}
EXCERPT = 60  # characters of 内容 shown in search results


def _novel(novel: str | None) -> str:
    return (novel or "").strip() or "default"


def _join(items: list[str]) -> str:
    return "、".join(items)


def _chapter(e: Any) -> str:
    """章节 as shown: blank when none, ``3`` or ``3–5`` (never 0/None/NaN for a missing chapter)."""
    if e.chapter is None:
        return ""
    return f"{e.chapter}–{e.chapter_end}" if e.chapter_end not in (None, e.chapter) else str(e.chapter)


def _thread(e: Any, lang: str) -> str:
    return t(f"mem_thread_{e.thread}", lang) if e.thread else ""


# (header key, cell of an entry) per kind; 序号 comes first, added by rows()
_COLUMNS: dict[str, list[tuple[str, Any]]] = {
    "character": [
        ("mem_col_name", lambda e, lang: e.name),
        ("mem_col_aliases", lambda e, lang: _join(e.aliases)),
        ("mem_col_text", lambda e, lang: e.text),
        ("mem_col_traits", lambda e, lang: _join(e.traits)),
        ("mem_col_relations", lambda e, lang: "；".join(f"{k}：{v}" for k, v in e.relationships.items())),
        ("mem_col_state", lambda e, lang: e.state),
    ],
    "setting": [
        ("mem_col_name", lambda e, lang: e.name),
        ("mem_col_aliases", lambda e, lang: _join(e.aliases)),
        ("mem_col_text", lambda e, lang: e.text),
    ],
    "plot": [
        ("mem_col_title", lambda e, lang: e.name),
        ("mem_col_text", lambda e, lang: e.text),
        ("mem_col_characters", lambda e, lang: _join(e.characters)),
        ("mem_col_time", lambda e, lang: e.time_in_story),
        ("mem_col_thread", _thread),
    ],
    "dialogue": [
        ("mem_col_speakers", lambda e, lang: _join(e.characters)),
        ("mem_col_text", lambda e, lang: e.text),
        ("mem_col_why", lambda e, lang: e.why),
    ],
}
_COMMON_COLUMNS: list[tuple[str, Any]] = [
    ("mem_col_chapter", lambda e, lang: _chapter(e)),
    ("mem_col_importance", lambda e, lang: e.importance),
    ("mem_col_pinned", lambda e, lang: t("mem_yes", lang) if e.pinned else ""),
    ("mem_col_source", lambda e, lang: t(f"mem_source_{e.source}", lang)),
]


def headers(kind: str, lang: str = "zh") -> list[str]:
    return [t("mem_col_no", lang)] + [t(key, lang) for key, _ in _COLUMNS[kind] + _COMMON_COLUMNS]


# ----------------------------------------------------------------------------- reading
def heading(services: Services, novel: str | None, lang: str = "zh") -> str:
    """Which novel the page is about: 《书名》 and slug (the slug alone for a memory-only novel)."""
    from xiaoshuo.writing import Novels

    slug = _novel(novel)
    title = None
    # memory without a book (e.g. "default"): the slug alone
    with contextlib.suppress(XiaoshuoError):
        title = Novels(services.settings.paths.data_dir / "novels").get(slug).card().title
    try:
        count = services.store().count(slug)
    except XiaoshuoError:
        count = "?"
    if title:
        return t("mem_novel_heading", lang, title=title, slug=slug, count=count)
    return t("mem_novel_heading_plain", lang, slug=slug, count=count)


def rows(services: Services, novel: str | None, kind: str, lang: str = "zh") -> tuple[dict, list[str]]:
    """The table of ``kind``'s entries (Chinese headers, no ids) and the entries' ids in row order.

    The first column, 序号, is the row's 1-based position in the ids list (the page's ``gr.State``)."""
    entries = services.store().list(_novel(novel), kind=kind)
    cols = _COLUMNS[kind] + _COMMON_COLUMNS
    data = [[i, *(cell(e, lang) for _, cell in cols)] for i, e in enumerate(entries, 1)]
    return {"headers": headers(kind, lang), "data": data}, [e.id for e in entries]


def entry_form(entry: Any) -> dict[str, Any]:
    """The form's values for ``entry`` (lists joined by 、, relationships as 人物=关系；…)."""
    return {
        "name": entry.name,
        "aliases": _join(entry.aliases),
        "characters": _join(entry.characters),
        "text": entry.text,
        "chapter": "" if entry.chapter is None else str(entry.chapter),
        "importance": entry.importance,
        "pinned": entry.pinned,
        "traits": _join(entry.traits),
        "relations": "；".join(f"{k}={v}" for k, v in entry.relationships.items()),
        "state": entry.state,
        "when": entry.time_in_story,
        "why": entry.why,
    }


def empty_form() -> dict[str, Any]:
    form = dict.fromkeys(FORM_FIELDS, "")
    form.update(importance=3, pinned=False)
    return form


def select_entry(
    services: Services, novel: str | None, ids: list[str] | None, row_value: list | None, lang: str = "zh"
) -> tuple[str, dict[str, Any]]:
    """The entry of a clicked row (its 序号 cell indexes ``ids``): its id and its form values."""
    try:
        position = int(row_value[0]) - 1
        entry_id = (ids or [])[position]
        if position < 0:
            raise IndexError
    except (TypeError, ValueError, IndexError):
        raise _not_selected(lang) from None
    entry = services.store().get(entry_id, _novel(novel))
    return entry_id, entry_form(entry)


# ----------------------------------------------------------------------------- writing
def _split(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").replace("，", ",").replace("、", ",").split(",") if x.strip()]


def _relations(text: str | None, lang: str) -> dict[str, str]:
    from xiaoshuo.memory import StoryMemoryError

    pairs = {}
    for item in (text or "").replace("；", ";").split(";"):
        who, sep, what = item.partition("=")
        if item.strip() and not sep:
            raise StoryMemoryError(
                t("mem_err_relations", lang), expected=t("mem_relations_format", lang), received=item.strip()
            )
        if who.strip():
            pairs[who.strip()] = what.strip()
    return pairs


def _chapter_number(value: Any, lang: str) -> int | None:
    """章节 typed by the writer: empty → none; a whole number ≥ 0 (第 and 章 are allowed around it)."""
    from xiaoshuo.memory import StoryMemoryError

    text = str(value if value is not None else "").strip()
    text = text.removeprefix(CONTENT_CHAPTER_PREFIX).removesuffix(CONTENT_CHAPTER_SUFFIX).strip()
    if not text:
        return None
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 0:
        raise StoryMemoryError(
            t("mem_err_chapter", lang), expected=t("mem_chapter", lang), received=str(value).strip()
        )
    return number


def _fields(form: dict[str, Any], lang: str) -> dict[str, Any]:
    """The form's raw values (missing keys: empty) → ``MemoryEntry`` fields."""
    f = {**empty_form(), **form}
    return {
        "name": f["name"] or "",
        "aliases": _split(f["aliases"]),
        "characters": _split(f["characters"]),
        "text": f["text"] or "",
        "chapter": _chapter_number(f["chapter"], lang),
        "importance": int(f["importance"] or 3),
        "pinned": bool(f["pinned"]),
        "traits": _split(f["traits"]),
        "relationships": _relations(f["relations"], lang),
        "state": f["state"] or "",
        "time_in_story": f["when"] or "",
        "why": f["why"] or "",
    }


def _not_selected(lang: str) -> XiaoshuoError:
    from xiaoshuo.memory import StoryMemoryError

    return StoryMemoryError(t("mem_pick_first", lang), fix=t("mem_pick_fix", lang))


def add_entry(
    services: Services, novel: str | None, kind: str, form: dict[str, Any], lang: str = "zh"
) -> tuple[str, str]:
    """添加: a new entry of ``kind`` from the form; returns its id and 「已添加：名称」."""
    from xiaoshuo.memory import make_entry

    entry = make_entry(novel=_novel(novel), kind=kind, **_fields(form, lang))
    services.store().add(entry)
    return entry.id, t("mem_added", lang, label=entry.label)


def edit_entry(
    services: Services, novel: str | None, entry_id: str | None, form: dict[str, Any], lang: str = "zh"
) -> str:
    """保存修改: the selected entry becomes what the form says (a field emptied is cleared)."""
    if not entry_id:
        raise _not_selected(lang)
    fields = _fields(form, lang)
    clear = [k for k, v in fields.items() if v is None]
    if fields.get("chapter") is None:
        clear.append("chapter_end")
    entry = services.store().update(entry_id, _novel(novel), clear=clear, **fields)
    return t("mem_edited", lang, label=entry.label)


def delete_entry(services: Services, novel: str | None, entry_id: str | None, lang: str = "zh") -> str:
    """删除所选: removes the selected entry; 「已删除：名称」."""
    if not entry_id:
        raise _not_selected(lang)
    store = services.store()
    entry = store.get(entry_id, _novel(novel))
    store.delete(entry_id, _novel(novel))
    return t("mem_deleted", lang, label=entry.label)


# ----------------------------------------------------------------------------- search, files, maintenance
def search_rows(services: Services, novel: str | None, query: str | None, lang: str = "zh") -> dict:
    """搜索: hits as 名称 / 类型 / 章节 / 得分 / 命中方式 / 内容 (an excerpt)."""
    from xiaoshuo.memory import search

    hits = search(services.store(), _novel(novel), query or "")
    data = []
    for h in hits:
        e = h.entry
        text = e.text if len(e.text) <= EXCERPT else e.text[: EXCERPT - 1] + "…"
        found = "、".join(dict.fromkeys(t(f"mem_found_{f}", lang) for f in h.found_by))
        data.append([e.label, t(f"mem_kind_{e.kind}", lang), _chapter(e), round(h.score, 3), found, text])
    return {"headers": search_headers(lang), "data": data}


def search_headers(lang: str = "zh") -> list[str]:
    keys = ("name", "kind", "chapter", "score", "found_by", "text")
    return [t(f"mem_col_{k}", lang) for k in keys]


def import_file(services: Services, novel: str | None, path: str | None, lang: str = "zh") -> str:
    """导入: a JSON file from 导出 / ``memory export``; a bad file changes nothing."""
    from xiaoshuo.files import MB, parse_user_json, read_user_file
    from xiaoshuo.memory import StoryMemoryError

    if path is None:
        return ""
    what, limit = t("mem_import_what", lang), services.settings.limits.max_file_mb * MB
    raw = read_user_file(path, limit=limit, key="limits.max_file_mb", what=what, error=StoryMemoryError)
    try:
        data = parse_user_json(raw, what=what, error=StoryMemoryError)
    except StoryMemoryError as exc:
        raise StoryMemoryError(
            t("mem_err_json", lang), received=exc.received, fix=t("mem_err_json_fix", lang)
        ) from None
    ids = services.store().import_novel(data, novel=_novel(novel))
    return t("mem_imported", lang, count=len(ids))


def export_file(services: Services, novel: str | None) -> str:
    """导出: the novel's memory as a JSON file in a fresh download folder (``webui.files``); returns it."""
    from xiaoshuo.webui.files import download_path

    data = services.store().export_novel(_novel(novel))
    path = download_path(f"memory-{_novel(novel)}", "json", kind="export")
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), "utf-8")
    return str(path)


def stats_markdown(services: Services, novel: str | None, lang: str = "zh") -> str:
    """记忆统计 in words: entries per kind, the embedding model, where the store is, novels with memory."""
    s = services.memory_stats(_novel(novel))
    if "error" in s:
        counts = t("mem_stats_error", lang, error=s["error"])
        total = "?"
    else:
        counts = " · ".join(f"{t(f'mem_kind_{k}', lang)} {n}" for k, n in s["by_kind"].items())
        total = s["entries"]
    lines = [
        t("mem_stats_line", lang, novel=s["novel"], count=total, by_kind=counts),
        t("mem_stats_model", lang, model=s["embedding_model"]),
        t("mem_stats_store", lang, store=s["store"]),
        t("mem_stats_novels", lang, novels="、".join(s["novels"]) or t("none", lang)),
    ]
    return "\n\n".join(lines)


def reindex_markdown(services: Services, novel: str | None, everything: bool, lang: str = "zh") -> str:
    """重建索引 (``memory reindex``) for this novel or all; says how many entries each novel had."""
    done = services.store().reindex(None if everything else _novel(novel))
    items = "、".join(t("mem_reindexed_item", lang, novel=n, count=c) for n, c in done.items())
    model = services.settings.memory.embedding_model
    return t("mem_reindexed", lang, model=model, done=items or t("mem_reindexed_none", lang))


# ----------------------------------------------------------------------------- the page's events
def form_values(values: dict[str, Any]) -> list[Any]:
    """A form dict as the page's form components, in ``FORM_FIELDS`` order."""
    return [values[f] for f in FORM_FIELDS]


def refresh(services: Services, lang: str, novel: str | None, kind: str) -> tuple:
    """The heading, the table and its ids (the selection stays)."""
    table, ids = rows(services, novel, kind, lang)
    return heading(services, novel, lang), table, ids


def unselect(services: Services, lang: str, novel: str | None, kind: str) -> tuple:
    """:func:`refresh`, and nothing selected (another novel or kind, an entry added or deleted)."""
    return *refresh(services, lang, novel, kind), None, t("mem_none_selected", lang)


def on_kind(services: Services, lang: str, novel: str | None, kind: str) -> tuple:
    """Another kind: :func:`unselect`, and only the form fields this kind uses are shown."""
    shown = KIND_FIELDS[kind]
    return *unselect(services, lang, novel, kind), *(gr.update(visible=f in shown) for f in FORM_FIELDS)


def on_select(services: Services, lang: str, novel: str | None, ids: list[str] | None, row: list | None):
    """A table row clicked: its id, 「已选：名称」 and the form filled with it."""
    entry_id, values = select_entry(services, novel, ids, row, lang)
    label = values["name"] or values["text"][:20]
    return entry_id, t("mem_selected", lang, label=label), *form_values(values)


def on_add(services: Services, lang: str, novel: str | None, kind: str, *values: Any) -> tuple:
    _, msg = add_entry(services, novel, kind, dict(zip(FORM_FIELDS, values, strict=True)), lang)
    return *unselect(services, lang, novel, kind), msg


def on_edit(services: Services, lang: str, novel: str | None, kind: str, entry_id, *values: Any) -> tuple:
    msg = edit_entry(services, novel, entry_id, dict(zip(FORM_FIELDS, values, strict=True)), lang)
    return *refresh(services, lang, novel, kind), msg


def on_delete(services: Services, lang: str, novel: str | None, kind: str, entry_id) -> tuple:
    msg = delete_entry(services, novel, entry_id, lang)
    return *unselect(services, lang, novel, kind), msg, *form_values(empty_form())


def on_clear(lang: str) -> tuple:
    """清空: nothing selected, an empty form."""
    return None, t("mem_none_selected", lang), *form_values(empty_form())


def on_import(services: Services, lang: str, novel: str | None, kind: str, path: str | None) -> tuple:
    return *refresh(services, lang, novel, kind), import_file(services, novel, path, lang)


def on_reindex(services: Services, lang: str, novel: str | None, everything: bool, kind: str) -> tuple:
    return reindex_markdown(services, novel, everything, lang), *refresh(services, lang, novel, kind)
