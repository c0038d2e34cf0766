"""记忆: the story memory of the current novel — list, add, edit, delete, search, import/export, reindex.

Handlers call ``xiaoshuo.memory`` through ``Services.store()``.  Not responsible for proposals from
extraction (the book page's review queue).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import gradio as gr

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.errors import as_gradio_error as _error
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.services import Services


def build_memory_tab(services: Services, lang: str, novel: gr.Dropdown, tab: gr.Tab | None = None) -> None:
    from xiaoshuo.memory import KIND_LABELS, KINDS

    kinds = [(f"{KIND_LABELS[k]} {k}", k) for k in KINDS]
    with gr.Row():
        kind = gr.Radio(kinds, value="character", label=t("kind", lang), elem_id="memory-kind")
    table = gr.Dataframe(
        headers=["id", "kind", "name", "aliases", "text", "chapter", "importance", "pinned"],
        interactive=False,
        elem_id="memory-table",
        wrap=True,
    )
    with gr.Row():
        name = gr.Textbox(label=t("name", lang), elem_id="memory-name")
        aliases = gr.Textbox(label=t("aliases", lang), elem_id="memory-aliases")
        characters = gr.Textbox(label=t("characters", lang), elem_id="memory-characters")
    text = gr.Textbox(label=t("text", lang), lines=3, elem_id="memory-text")
    with gr.Row():
        traits = gr.Textbox(label=t("traits", lang), elem_id="memory-traits")
        relations = gr.Textbox(label=t("relations", lang), elem_id="memory-relations")
        state = gr.Textbox(label=t("state", lang), elem_id="memory-state")
        when = gr.Textbox(label=t("time_in_story", lang), elem_id="memory-time")
        why = gr.Textbox(label=t("why", lang), elem_id="memory-why")
    with gr.Row():
        chapter = gr.Number(None, label=t("chapter", lang), precision=0, elem_id="memory-chapter")
        importance = gr.Slider(
            1, 5, value=3, step=1, label=t("importance", lang), elem_id="memory-importance"
        )
        pinned = gr.Checkbox(False, label=t("pinned", lang), elem_id="memory-pinned")
        entry_id = gr.Textbox(label=t("entry_id", lang), elem_id="memory-id")
    with gr.Row():
        add = gr.Button(t("add", lang), variant="primary", elem_id="memory-add")
        edit = gr.Button(t("edit", lang), elem_id="memory-edit")
        delete = gr.Button(t("delete", lang), variant="stop", elem_id="memory-delete")
    message = gr.Markdown(elem_id="memory-message")
    with gr.Row():
        query = gr.Textbox(label=t("search", lang), elem_id="memory-query", scale=3)
        search_btn = gr.Button(t("search", lang), elem_id="memory-search", scale=1)
    results = gr.JSON(elem_id="memory-results")
    with gr.Row():
        upload = gr.File(label=t("import", lang), file_types=[".json"], elem_id="memory-import")
        export_btn = gr.Button(t("export", lang), elem_id="memory-export")
        export_file = gr.File(label=t("export", lang), interactive=False, elem_id="memory-export-file")
    with gr.Row():  # the CLI's maintenance (memory reindex, counts): usable while the page holds the store
        stats_btn = gr.Button(t("mem_stats", lang), elem_id="memory-stats")
        reindex_all = gr.Checkbox(False, label=t("mem_reindex_all", lang), elem_id="memory-reindex-all")
        reindex_btn = gr.Button(t("mem_reindex", lang), elem_id="memory-reindex")
    maintenance = gr.JSON(elem_id="memory-maintenance")

    def rows(novel, kind):
        try:
            entries = services.store().list(novel or "default", kind=kind)
        except XiaoshuoError as exc:
            raise _error(exc) from None
        return [
            [e.id, e.kind, e.name, "、".join(e.aliases), e.text, e.chapter, e.importance, e.pinned]
            for e in entries
        ]

    def split(text):
        return [x.strip() for x in (text or "").replace("，", ",").replace("、", ",").split(",") if x.strip()]

    def relations_of(text):
        pairs = {}
        for item in (text or "").replace("；", ";").split(";"):
            who, sep, what = item.partition("=")
            if item.strip() and not sep:
                raise gr.Error(f"关系要写成 人物=关系，多个用分号分开 (relations: name=relation; …): {item}")
            if who.strip():
                pairs[who.strip()] = what.strip()
        return pairs

    def fields(
        kind,
        name,
        aliases,
        characters,
        text,
        chapter,
        importance,
        pinned,
        traits,
        relations,
        state,
        when,
        why,
    ):
        return {
            "kind": kind,
            "name": name or "",
            "aliases": split(aliases),
            "characters": split(characters),
            "text": text or "",
            "chapter": None if chapter in (None, "") else int(chapter),
            "importance": int(importance),
            "pinned": bool(pinned),
            "traits": split(traits),
            "relationships": relations_of(relations),
            "state": state or "",
            "time_in_story": when or "",
            "why": why or "",
        }

    def do_add(novel, kind, *values):
        from xiaoshuo.memory import make_entry

        try:
            entry = make_entry(novel=novel or "default", **fields(kind, *values))
            services.store().add(entry)
        except XiaoshuoError as exc:
            raise _error(exc) from None
        return rows(novel, kind), f"✓ {entry.id}"

    def do_edit(novel, kind, entry, *values):
        changes = {
            k: v for k, v in fields(kind, *values).items() if v not in ("", [], {}, None) and k != "kind"
        }
        try:
            services.store().update((entry or "").strip(), novel or "default", **changes)
        except XiaoshuoError as exc:
            raise _error(exc) from None
        return rows(novel, kind), f"✓ {entry}"

    def do_delete(novel, kind, entry):
        try:
            store = services.store()
            store.get((entry or "").strip(), novel or "default")
            store.delete(entry.strip(), novel or "default")
        except XiaoshuoError as exc:
            raise _error(exc) from None
        return rows(novel, kind), f"✓ {entry}"

    def do_search(novel, query):
        from xiaoshuo.memory import search

        try:
            return [h.as_dict() for h in search(services.store(), novel or "default", query or "")]
        except XiaoshuoError as exc:
            raise _error(exc) from None

    def do_import(novel, kind, file):
        if file is None:
            return rows(novel, kind), ""
        try:
            data = json.loads(Path(file).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise gr.Error(f"导入文件不是合法的 JSON (not valid JSON): {exc}") from None
        try:
            ids = services.store().import_novel(data, novel=novel or "default")
        except XiaoshuoError as exc:
            raise _error(exc) from None
        return rows(novel, kind), f"✓ {len(ids)}"

    def do_export(novel):
        data = services.store().export_novel(novel or "default")
        path = Path(tempfile.mkdtemp(prefix="xiaoshuo-export-")) / "memory.json"
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2), "utf-8")
        return str(path)

    form = [name, aliases, characters, text, chapter, importance, pinned, traits, relations, state, when, why]
    add.click(do_add, [novel, kind, *form], [table, message], api_visibility="private")
    edit.click(do_edit, [novel, kind, entry_id, *form], [table, message], api_visibility="private")
    delete.click(do_delete, [novel, kind, entry_id], [table, message], api_visibility="private")
    search_btn.click(do_search, [novel, query], results, api_visibility="private")
    upload.upload(do_import, [novel, kind, upload], [table, message], api_visibility="private")
    export_btn.click(do_export, novel, export_file, api_visibility="private")

    def do_stats(novel):
        try:
            return services.memory_stats(novel or "default")
        except XiaoshuoError as exc:
            raise _error(exc) from None

    def do_reindex(novel, everything, kind):
        try:
            done = services.store().reindex(None if everything else (novel or "default"))
        except XiaoshuoError as exc:
            raise _error(exc) from None
        model = services.settings.memory.embedding_model
        return {"reindexed": done, "embedding_model": model}, rows(novel, kind)

    stats_btn.click(do_stats, novel, maintenance, api_visibility="private")
    reindex_btn.click(
        do_reindex, [novel, reindex_all, kind], [maintenance, table], api_visibility="private"
    )
    kind.change(rows, [novel, kind], table, api_visibility="private")
    if tab is not None:  # entries approved on the 创作 page show when the tab opens
        tab.select(rows, [novel, kind], table, api_visibility="private")
    novel.change(rows, [novel, kind], table, api_visibility="private")
