"""Strings of the 记忆 page: key → {"zh": …, "en": …}."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    # ---- which novel
    "mem_novel_heading": {
        "zh": "当前小说：**《{title}》** `{slug}` · 共 {count} 条记忆",
        "en": "Novel: **{title}** `{slug}` · {count} memory entries",
    },
    "mem_novel_heading_plain": {
        "zh": "当前小说：`{slug}`（没有书稿，只有记忆）· 共 {count} 条记忆",
        "en": "Novel: `{slug}` (memory only, no book) · {count} memory entries",
    },
    "mem_no_novel": {"zh": "（尚未选择小说）", "en": "(no novel chosen)"},
    # ---- kinds
    "mem_kind": {"zh": "类型 (kind)", "en": "Kind"},
    "mem_kind_character": {"zh": "人物", "en": "Character"},
    "mem_kind_plot": {"zh": "情节", "en": "Plot"},
    "mem_kind_setting": {"zh": "环境设定", "en": "Setting"},
    "mem_kind_dialogue": {"zh": "重要对话", "en": "Dialogue"},
    # ---- table headers
    "mem_col_no": {"zh": "序号", "en": "No."},
    "mem_col_name": {"zh": "名称", "en": "Name"},
    "mem_col_title": {"zh": "标题", "en": "Title"},
    "mem_col_aliases": {"zh": "别名", "en": "Aliases"},
    "mem_col_text": {"zh": "内容", "en": "Text"},
    "mem_col_traits": {"zh": "性格", "en": "Traits"},
    "mem_col_relations": {"zh": "关系", "en": "Relationships"},
    "mem_col_state": {"zh": "现状", "en": "State"},
    "mem_col_characters": {"zh": "人物", "en": "Characters"},
    "mem_col_speakers": {"zh": "说话人", "en": "Speakers"},
    "mem_col_time": {"zh": "故事时间", "en": "Time in story"},
    "mem_col_thread": {"zh": "伏笔", "en": "Thread"},
    "mem_col_why": {"zh": "为何重要", "en": "Why it matters"},
    "mem_col_chapter": {"zh": "章节", "en": "Chapter"},
    "mem_col_importance": {"zh": "重要度", "en": "Importance"},
    "mem_col_pinned": {"zh": "置顶", "en": "Pinned"},
    "mem_col_source": {"zh": "来源", "en": "Source"},
    "mem_col_kind": {"zh": "类型", "en": "Kind"},
    "mem_col_score": {"zh": "得分", "en": "Score"},
    "mem_col_found_by": {"zh": "命中方式", "en": "Found by"},
    "mem_yes": {"zh": "是", "en": "yes"},
    "mem_thread_open": {"zh": "未回收", "en": "open"},
    "mem_thread_closed": {"zh": "已回收", "en": "closed"},
    "mem_source_manual": {"zh": "手动", "en": "manual"},
    "mem_source_imported": {"zh": "导入", "en": "imported"},
    "mem_source_extracted": {"zh": "提取", "en": "extracted"},
    "mem_table": {
        "zh": "记忆条目（点一行即可修改或删除）",
        "en": "Entries (click a row to edit or delete it)",
    },
    # ---- the form
    "mem_name": {"zh": "名称 (name)", "en": "Name"},
    "mem_aliases": {"zh": "别名 (aliases)，逗号分隔", "en": "Aliases (comma separated)"},
    "mem_characters": {
        "zh": "相关人物 / 说话人 (characters)，逗号分隔",
        "en": "Characters / speakers (comma separated)",
    },
    "mem_text": {"zh": "内容 (text)：描述 / 梗概 / 对话", "en": "Text: description / summary / dialogue"},
    "mem_traits": {"zh": "性格 (traits)，逗号分隔", "en": "Traits (comma separated)"},
    "mem_relations": {
        "zh": "关系 (relationships)：人物=关系，分号分隔",
        "en": "Relationships: name=relation; …",
    },
    "mem_state": {"zh": "现状 (state)", "en": "Current state"},
    "mem_time": {"zh": "故事时间 (time_in_story)", "en": "Time in the story"},
    "mem_why": {"zh": "为何重要 (why)", "en": "Why it matters"},
    "mem_chapter": {"zh": "章节 (chapter)，空 = 不限", "en": "Chapter (empty: none)"},
    "mem_importance": {"zh": "重要度 (importance)", "en": "Importance"},
    "mem_pinned": {"zh": "置顶 (pinned)：总是放入提示", "en": "Pinned (always in prompts)"},
    "mem_add": {"zh": "添加", "en": "Add"},
    "mem_edit": {"zh": "保存修改（所选条目）", "en": "Save changes (selected entry)"},
    "mem_delete": {"zh": "删除所选", "en": "Delete selected"},
    "mem_clear": {"zh": "清空表单", "en": "Clear the form"},
    # ---- messages
    "mem_selected": {"zh": "正在修改：{label}", "en": "Editing: {label}"},
    "mem_none_selected": {
        "zh": "（未选中条目：填写后点「添加」；点表格一行可修改或删除）",
        "en": "(nothing selected: fill in and Add; click a row to edit or delete it)",
    },
    "mem_added": {"zh": "已添加：{label}", "en": "Added: {label}"},
    "mem_edited": {"zh": "已修改：{label}", "en": "Saved: {label}"},
    "mem_deleted": {"zh": "已删除：{label}", "en": "Deleted: {label}"},
    "mem_imported": {"zh": "已导入 {count} 条记忆", "en": "Imported {count} entries"},
    "mem_pick_first": {
        "zh": "请先在表格里点选一条记忆 (no entry selected)",
        "en": "Click an entry in the table first (no entry selected)",
    },
    "mem_pick_fix": {"zh": "点表格中的一行，表单会填上它的内容", "en": "click a row; the form fills in"},
    "mem_gone": {
        "zh": "所选条目已不存在 (the selected entry is gone)",
        "en": "The selected entry no longer exists",
    },
    "mem_err_relations": {
        "zh": "关系要写成 人物=关系，多个用分号分开 (relationships: name=relation; …)",
        "en": "Write relationships as name=relation; … (relationships)",
    },
    "mem_err_chapter": {
        "zh": "章节要填一个整数，例如 3 或 第3章；不限章节就留空 (chapter)",
        "en": "Chapter must be a whole number such as 3, or empty (chapter)",
    },
    "mem_err_json": {
        "zh": "导入文件不是合法的 JSON (not valid JSON)",
        "en": "The import file is not valid JSON",
    },
    "mem_err_json_fix": {
        "zh": "用「导出 JSON」或 xiaoshuo memory export 得到的文件",
        "en": "use a file from Export JSON or `xiaoshuo memory export`",
    },
    # ---- search
    "mem_search": {"zh": "搜索记忆 (search)", "en": "Search memory"},
    "mem_search_go": {"zh": "搜索", "en": "Search"},
    "mem_search_results": {"zh": "搜索结果", "en": "Results"},
    "mem_found_pinned": {"zh": "置顶", "en": "pinned"},
    "mem_found_trigger": {"zh": "名字出现", "en": "name appears"},
    "mem_found_bm25": {"zh": "关键词", "en": "keywords"},
    "mem_found_dense": {"zh": "语义", "en": "meaning"},
    # ---- import / export / maintenance
    "mem_import": {"zh": "导入 JSON (import)", "en": "Import JSON"},
    "mem_export": {"zh": "导出 JSON (export)", "en": "Export JSON"},
    "mem_export_file": {"zh": "导出的文件", "en": "Exported file"},
    "mem_stats_go": {"zh": "记忆统计", "en": "Memory stats"},
    "mem_reindex_go": {
        "zh": "重建索引（换向量模型后）",
        "en": "Reindex (after changing the embedding model)",
    },
    "mem_reindex_all_novels": {"zh": "所有小说", "en": "All novels"},
    "mem_stats_line": {
        "zh": "**《{novel}》共 {count} 条记忆**：{by_kind}",
        "en": "**{novel}: {count} memory entries**: {by_kind}",
    },
    "mem_stats_model": {"zh": "向量模型 (embedding_model)：`{model}`", "en": "Embedding model: `{model}`"},
    "mem_stats_store": {"zh": "存储位置：`{store}`", "en": "Store: `{store}`"},
    "mem_stats_novels": {"zh": "有记忆的小说：{novels}", "en": "Novels with memory: {novels}"},
    "mem_stats_error": {"zh": "无法统计：{error}", "en": "Cannot count: {error}"},
    "mem_reindexed": {
        "zh": "已用向量模型 `{model}` 重建索引：{done}",
        "en": "Reindexed with embedding model `{model}`: {done}",
    },
    "mem_reindexed_item": {"zh": "《{novel}》{count} 条", "en": "{novel}: {count}"},
    "mem_reindexed_none": {"zh": "（没有需要重建的小说）", "en": "(nothing to reindex)"},
    "mem_relations_format": {"zh": "人物=关系；人物=关系", "en": "name=relation; name=relation"},
}
