"""记忆 (memory)'s layout: the entries table, the entry form, search, import/export and maintenance —
components and wiring only; every event calls a function of ``handlers.py`` (through
``webui.errors.guard``).  The selected entry's id lives in a per-session ``gr.State``, never on screen.
"""

from __future__ import annotations

from functools import partial

import gradio as gr

from xiaoshuo.webui.errors import guard
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.pages.memory import handlers as h
from xiaoshuo.webui.services import Services


def _entry_form(lang: str) -> list[gr.components.Component]:
    """The entry's fields, in ``handlers.FORM_FIELDS`` order (the kind decides which are visible)."""

    def L(key: str) -> str:
        return t(key, lang)

    with gr.Row():
        name = gr.Textbox(label=L("mem_name"), elem_id="memory-name")
        aliases = gr.Textbox(label=L("mem_aliases"), elem_id="memory-aliases")
        characters = gr.Textbox(label=L("mem_characters"), elem_id="memory-characters", visible=False)
    text = gr.Textbox(label=L("mem_text"), lines=3, elem_id="memory-text")
    with gr.Row():
        traits = gr.Textbox(label=L("mem_traits"), elem_id="memory-traits")
        relations = gr.Textbox(label=L("mem_relations"), elem_id="memory-relations")
        state = gr.Textbox(label=L("mem_state"), elem_id="memory-state")
        when = gr.Textbox(label=L("mem_time"), elem_id="memory-time", visible=False)
        why = gr.Textbox(label=L("mem_why"), elem_id="memory-why", visible=False)
    with gr.Row():
        # a textbox, not gr.Number: an empty 章节 must stay empty (a Number sends 0)
        chapter = gr.Textbox(label=L("mem_chapter"), elem_id="memory-chapter")
        importance = gr.Slider(1, 5, value=3, step=1, label=L("mem_importance"), elem_id="memory-importance")
        pinned = gr.Checkbox(False, label=L("mem_pinned"), elem_id="memory-pinned")
    return [name, aliases, characters, text, chapter, importance, pinned, traits, relations, state, when, why]


def build_memory_tab(services: Services, lang: str, novel: gr.Dropdown, tab: gr.Tab | None = None) -> None:
    """Lay out 记忆 under ``novel`` (the 随手写 page's novel: a novel's slug is its memory key) and wire it;
    ``tab``: the tab, re-read when opened (entries approved on the 创作 page show then)."""
    from xiaoshuo.memory import KINDS

    def L(key: str) -> str:
        return t(key, lang)

    selected = gr.State(None)  # the id of the entry the form edits (per browser session)
    ids = gr.State([])  # the ids of the table's rows, in order (序号 - 1)
    title = gr.Markdown(elem_id="memory-novel")
    kinds = [(L(f"mem_kind_{k}"), k) for k in KINDS]
    kind = gr.Radio(kinds, value="character", label=L("mem_kind"), elem_id="memory-kind")
    table = gr.Dataframe(
        headers=h.headers("character", lang),
        interactive=False,
        elem_id="memory-table",
        wrap=True,
        label=L("mem_table"),
    )
    chosen = gr.Markdown(L("mem_none_selected"), elem_id="memory-selected")
    form = _entry_form(lang)
    with gr.Row():
        add = gr.Button(L("mem_add"), variant="primary", elem_id="memory-add")
        edit = gr.Button(L("mem_edit"), elem_id="memory-edit")
        delete = gr.Button(L("mem_delete"), variant="stop", elem_id="memory-delete")
        clear = gr.Button(L("mem_clear"), elem_id="memory-clear")
    message = gr.Markdown(elem_id="memory-message")
    with gr.Row():
        query = gr.Textbox(label=L("mem_search"), elem_id="memory-query", scale=3)
        search_btn = gr.Button(L("mem_search_go"), elem_id="memory-search", scale=1)
    results = gr.Dataframe(
        headers=h.search_headers(lang),
        interactive=False,
        wrap=True,
        elem_id="memory-results",
        label=L("mem_search_results"),
    )
    with gr.Row():
        upload = gr.File(label=L("mem_import"), file_types=[".json"], elem_id="memory-import")
        export_btn = gr.Button(L("mem_export"), elem_id="memory-export")
        exported = gr.File(label=L("mem_export_file"), interactive=False, elem_id="memory-export-file")
    with gr.Row():  # the CLI's maintenance (memory reindex, counts): usable while the page holds the store
        stats_btn = gr.Button(L("mem_stats_go"), elem_id="memory-stats")
        reindex_all = gr.Checkbox(False, label=L("mem_reindex_all_novels"), elem_id="memory-reindex-all")
        reindex_btn = gr.Button(L("mem_reindex_go"), elem_id="memory-reindex")
    maintenance = gr.Markdown(elem_id="memory-maintenance")

    def on(handler):  # a handler of the page, bound to this app's services and language
        return guard(partial(handler, services, lang))

    @guard
    def on_select(nv, row_ids, evt: gr.SelectData):  # (a partial would hide gr.SelectData from Gradio)
        return h.on_select(services, lang, nv, row_ids, evt.row_value)

    shown = [title, table, ids]
    cleared = [*shown, selected, chosen]
    private = {"api_visibility": "private"}
    table.select(on_select, [novel, ids], [selected, chosen, *form], **private)
    add.click(on(h.on_add), [novel, kind, *form], [*cleared, message], **private)
    edit.click(on(h.on_edit), [novel, kind, selected, *form], [*shown, message], **private)
    delete.click(on(h.on_delete), [novel, kind, selected], [*cleared, message, *form], **private)
    clear.click(partial(h.on_clear, lang), None, [selected, chosen, *form], **private)
    search_btn.click(guard(partial(h.search_rows, services, lang=lang)), [novel, query], results, **private)
    upload.upload(on(h.on_import), [novel, kind, upload], [*shown, message], **private)
    export_btn.click(guard(partial(h.export_file, services)), novel, exported, **private)
    stats_btn.click(guard(partial(h.stats_markdown, services, lang=lang)), novel, maintenance, **private)
    reindex_btn.click(on(h.on_reindex), [novel, reindex_all, kind], [maintenance, *shown], **private)
    kind.change(on(h.on_kind), [novel, kind], [*cleared, *form], **private)
    if tab is not None:  # entries approved on the 创作 page show when the tab opens
        tab.select(on(h.refresh), [novel, kind], shown, **private)
    novel.change(on(h.unselect), [novel, kind], cleared, **private)
