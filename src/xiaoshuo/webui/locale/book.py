"""Strings of the 创作 book page (novel, outline, chapter, review, export): key → {"zh": …, "en": …}.

Used by ``webui/pages/book/layout.py`` and ``handlers.py``.  (The page's first keys — its labels — are still
in ``common.py``.)  Keys ``book_cols_*`` are table headers joined by ``|``; ``book_status_*``,
``book_kind_*``, ``book_rkind_*`` and ``book_thread_*`` name a stored value (``h.label(prefix, value)``).
The Chinese texts of errors keep their English gist in brackets (as the library's errors do).
"""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    # ---- table headers
    "book_cols_outline": {"zh": "章|卷|标题|状态|字数|目标", "en": "Ch.|Volume|Title|Status|Chars|Target"},
    "book_cols_versions": {
        "zh": "版本|当前|来源|方式|字数|时间|开头",
        "en": "Version|Current|Source|How|Chars|Time|Beginning",
    },
    "book_cols_inspector": {
        "zh": "部分 section|条目 item|章 chapter|tokens|放入|原因 why",
        "en": "Section|Item|Chapter|Tokens|In|Why",
    },
    "book_cols_review": {"zh": "编号 id|章|类型|内容|证据", "en": "Id|Chapter|Kind|Content|Evidence"},
    "book_cols_findings": {
        "zh": "级别|规则|说明|原文|位置|记忆条目",
        "en": "Level|Rule|Message|Quote|Where|Memory entry",
    },
    "book_cols_threads": {
        "zh": "伏笔|内容|埋下于|计划回收|状态|已开章数",
        "en": "Thread|Content|Planted in|Payoff planned|Status|Open for (chapters)",
    },
    # ---- stored values shown in words
    "book_status_planned": {"zh": "未写", "en": "Planned"},  # as actions.STATUS_LABELS
    "book_status_drafted": {"zh": "草稿", "en": "Draft"},
    "book_status_final": {"zh": "定稿", "en": "Final"},
    "book_kind_chapter": {"zh": "生成", "en": "Generated"},
    "book_kind_continue": {"zh": "续写", "en": "Continued"},
    "book_kind_rewrite": {"zh": "改写", "en": "Rewritten"},
    "book_kind_expand": {"zh": "扩写", "en": "Expanded"},
    "book_kind_shorten": {"zh": "缩写", "en": "Shortened"},
    "book_kind_set": {"zh": "手改", "en": "Hand edit"},
    "book_kind_outside-edit": {"zh": "外部修改", "en": "Edited outside"},
    "book_kind_revert": {"zh": "恢复", "en": "Reverted"},
    "book_kind_revise": {"zh": "修订", "en": "Revised"},
    "book_kind_migrated": {"zh": "迁移", "en": "Migrated"},
    "book_kind_imported": {"zh": "导入", "en": "Imported"},
    "book_rkind_character": {"zh": "新人物", "en": "New character"},
    "book_rkind_character_update": {"zh": "人物变化", "en": "Character change"},
    "book_rkind_plot": {"zh": "情节", "en": "Plot"},
    "book_rkind_thread_close": {"zh": "伏笔回收", "en": "Thread paid off"},
    "book_rkind_setting": {"zh": "设定", "en": "Setting"},
    "book_rkind_dialogue": {"zh": "对话", "en": "Dialogue"},
    "book_thread_open": {"zh": "未回收", "en": "Open"},
    "book_thread_due": {"zh": "将到期", "en": "Due soon"},
    "book_thread_overdue": {"zh": "已逾期", "en": "Overdue"},
    "book_thread_closed": {"zh": "已回收", "en": "Paid off"},
    # ---- views
    "book_card_counts": {
        "zh": "{chapters} 章 · {chars} 字 · 每章目标 {target} 字",
        "en": "{chapters} chapters · {chars} chars · {target} chars per chapter",
    },
    "book_chars_label": {"zh": "字数 {n}", "en": "Chars {n}"},
    "book_chars_target": {"zh": " / 目标 {target}", "en": " / target {target}"},
    "book_header_new": {"zh": "### 第{number}章（新章）", "en": "### Chapter {number} (new)"},
    "book_header_chapter": {"zh": "第{number}章 {title}", "en": "Chapter {number} {title}"},
    "book_header": {
        "zh": "### {heading} · {status}",
        "en": "### {heading} · {status}",
    },
    "book_header_synopsis": {"zh": "\n\n要点：{synopsis}", "en": "\n\nSynopsis: {synopsis}"},
    "book_header_outside_edit": {
        "zh": "\n\n（本章文件在别处改过，下次保存或生成时记为一个版本）",
        "en": "\n\n(The chapter file was edited elsewhere; the next save or generation keeps it "
        "as a version)",
    },
    "book_header_damaged": {
        "zh": "\n\n⚠ 本章文件无法解码（{problem}），下面是尽力解码的文本；"
        "改好后保存即可替换（原文件保留为版本）",
        "en": "\n\n⚠ The chapter file cannot be decoded ({problem}); below is a best-effort text. "
        "Fix it and save to replace the file (the file is kept as a version)",
    },
    "book_novel_damaged": {"zh": "⚠ {name}（已损坏 damaged）", "en": "⚠ {name} (damaged)"},
    "book_no_versions": {"zh": "（还没有版本 no versions yet）", "en": "(no versions yet)"},
    "book_diff_title": {"zh": "版本 {a} → {b}", "en": "Version {a} → {b}"},
    "book_evidence_gone": {
        "zh": "（证据已不在本章正文中 the evidence is no longer in the chapter）",
        "en": "(the evidence is no longer in the chapter)",
    },
    "book_evidence_title": {"zh": "第{chapter}章 证据", "en": "Chapter {chapter}: evidence"},
    "book_entry_chapter": {"zh": "{name}（第{chapter}章）", "en": "{name} (chapter {chapter})"},
    "book_review_count": {"zh": "待审记忆（{count}）", "en": "Memory to review ({count})"},
    "book_ok_chapter": {"zh": "✓ 第{number}章", "en": "✓ Chapter {number}"},
    "book_ok_deleted": {"zh": "✓ 已删除第{number}章", "en": "✓ Deleted chapter {number}"},
    "book_selection_info": {
        "zh": "已选中 {start}–{end}（{count} 字）：{shown}",
        "en": "Selected {start}–{end} ({count} chars): {shown}",
    },
    "book_conv_s2t": {"zh": "简→繁 s2t", "en": "Simplified → Traditional (s2t)"},
    "book_conv_t2s": {"zh": "繁→简 t2s", "en": "Traditional → Simplified (t2s)"},
    # ---- generation progress
    "book_prog_wait": {"zh": "候选{i}：第1段…", "en": "Candidate {i}: segment 1…"},
    "book_prog_segment": {
        "zh": "候选{i}：第{segment}段 · {chars}/{target} 字",
        "en": "Candidate {i}: segment {segment} · {chars}/{target} chars",
    },
    "book_prog_saved": {"zh": " ✓ 版本 {version}", "en": " ✓ version {version}"},
    "book_prog_done": {"zh": "完成 done · ", "en": "Done · "},
    "book_prog_running": {"zh": "生成中 writing · ", "en": "Writing · "},
    # ---- inspector
    "book_insp_tokens": {
        "zh": "提示词 {tokens} / 预算 {budget} tokens",
        "en": "Prompt {tokens} / budget {budget} tokens",
    },
    "book_insp_estimate": {"zh": "（估算 estimate）", "en": " (estimate)"},
    "book_insp_counts": {
        "zh": " · 放入 {kept} 项，截断或丢弃 {cut} 项",
        "en": " · {kept} included, {cut} cut or dropped",
    },
    # ---- warnings and errors (raised by the page's handlers; the library's errors pass through as they are)
    "book_warn_no_store": {
        "zh": "记忆库打不开，本次不用记忆 (memory store unavailable): {message}",
        "en": "The memory store cannot be opened; writing without memory this time: {message}",
    },
    "book_err_no_novel": {"zh": "请先选择或新建一本小说 (no novel chosen)", "en": "No novel chosen"},
    "book_fix_no_novel": {
        "zh": "在「小说」里选一本，或点「新建小说」",
        "en": "Pick one under Novel, or click New novel",
    },
    "book_err_no_title": {"zh": "请填写书名 (a title is required)", "en": "A title is required"},
    "book_err_empty_text": {
        "zh": "正文是空的，没有保存 (an empty text is not saved)",
        "en": "The text is empty; nothing was saved",
    },
    "book_fix_empty_text": {
        "zh": "本章原文没有改动，重新打开本章即可找回；确实要清空请用 xiaoshuo chapter set --allow-empty",
        "en": "The chapter's text is unchanged: open the chapter again to get it back; to empty it "
        "on purpose use xiaoshuo chapter set --allow-empty",
    },
    "book_fix_no_title": {"zh": "在「书名」里写下这本书的名字", "en": "Write the book's name under Title"},
    "book_err_empty_chapter_title": {
        "zh": "章节标题不能为空 (empty chapter title)",
        "en": "The chapter title is empty",
    },
    "book_fix_empty_chapter_title": {"zh": "写一个标题", "en": "Write a title"},
    "book_err_move_written": {
        "zh": "只能移动还没写的计划章节 (only planned, unwritten chapters can be moved)",
        "en": "Only planned, unwritten chapters can be moved",
    },
    "book_err_delete_written": {
        "zh": "只能删除还没写的计划章节 (only planned, unwritten chapters can be deleted)",
        "en": "Only planned, unwritten chapters can be deleted",
    },
    "book_written_list": {"zh": "已写的章节 written: {chapters}", "en": "written chapters: {chapters}"},
    "book_fix_written": {
        "zh": "章节正文按编号保存；已写的章节不能移动或删除（可以改名）",
        "en": "Chapter texts are stored by number: a written chapter cannot be moved or deleted "
        "(it can be renamed)",
    },
    "book_err_no_candidates": {
        "zh": "没有可采用的候选 (no candidates to accept)",
        "en": "No candidates to accept",
    },
    "book_fix_no_candidates": {
        "zh": "先点「生成本章」或「续写」",
        "en": "Click Write this chapter or Continue first",
    },
    "book_err_candidate_empty": {
        "zh": "候选 {i} 是空的 (candidate {i} is empty)",
        "en": "Candidate {i} is empty",
    },
    "book_err_action": {"zh": "未知操作 (unknown action)", "en": "Unknown action"},
    "book_err_no_chapter": {"zh": "请先在大纲里选一章 (no chapter chosen)", "en": "No chapter chosen"},
    "book_fix_no_chapter": {
        "zh": "点大纲表里的一行，或「添加章节」",
        "en": "Click a row of the outline, or Add chapter",
    },
    "book_err_no_selection": {
        "zh": "请先在正文里选中要改的文字 (select the passage first)",
        "en": "Select the passage first",
    },
    "book_fix_no_selection": {
        "zh": "在正文框里用鼠标选中一段，再点「改写选中」「扩写」或「缩写」",
        "en": "Select a passage in the text box, then click Rewrite selection, Expand or Shorten",
    },
    "book_err_export": {"zh": "导出 {fmt} 失败 (export failed)", "en": "Export to {fmt} failed"},
    "book_fix_export": {
        "zh": "检查正文里的控制字符或特殊符号，或换一种格式导出",
        "en": "Look for control characters or unusual symbols in the text, or export to another format",
    },
    "book_err_chapter_count": {"zh": "章数无效 (invalid chapter count)", "en": "Invalid chapter count"},
    "book_outline_seed": {
        "zh": "种子 (seed，-1 随机；同一种子得同一大纲)",
        "en": "Seed (-1 random; the same seed gives the same outline)",
    },
    # ---- issue 26: outline 继续/重新开始, 定稿, the card form
    "book_outline_stopped": {
        "zh": "⚠ {reason}",
        "en": "⚠ The last outline run stopped before chapter {next} (target: chapter {target}). "
        "Resume from chapter {next}, or restart from a chapter (From chapter).",
    },
    "book_outline_resume": {"zh": "继续", "en": "Resume"},
    "book_outline_restart": {"zh": "重新开始（从第几章）", "en": "Restart (from chapter)"},
    "book_err_nothing_to_resume": {
        "zh": "没有中断的大纲生成可以继续 (nothing to resume)",
        "en": "No interrupted outline run to resume",
    },
    "book_fix_nothing_to_resume": {
        "zh": "用「生成大纲」规划新的章节",
        "en": "Use Generate outline to plan new chapters",
    },
    "book_final": {"zh": "定稿", "en": "Final"},
    "book_final_on": {"zh": "第 {number} 章已定稿", "en": "Chapter {number} is final"},
    "book_final_off": {"zh": "第 {number} 章改回草稿", "en": "Chapter {number} is a draft again"},
    "book_card_edit": {"zh": "小说信息", "en": "Novel details"},
    "book_card_save": {"zh": "保存小说信息", "en": "Save details"},
    "book_card_saved": {"zh": "小说信息已保存", "en": "Details saved"},
    "book_card_field_title": {"zh": "书名", "en": "Title"},
    "book_card_field_author": {"zh": "作者", "en": "Author"},
    "book_card_field_genre": {"zh": "类型", "en": "Genre"},
    "book_card_field_premise": {"zh": "简介", "en": "Premise"},
    "book_card_field_style": {"zh": "文风", "en": "Style"},
    "book_card_field_pov": {"zh": "视角", "en": "Point of view"},
    "book_card_field_chapter_chars": {"zh": "每章目标字数", "en": "Target chars per chapter"},
    "book_card_field_adapter": {"zh": "默认适配器", "en": "Default adapter"},
    "book_card_field_variant": {"zh": "简繁", "en": "Script"},
    "book_pov_ph": {"zh": "如：第三人称有限", "en": "e.g. third person limited"},
    "book_cols_import": {"zh": "章|卷|标题|字数", "en": "Ch.|Volume|Title|Chars"},
    "book_import_summary": {
        "zh": "✓ 《{title}》：导入 {chapters} 章（{volumes} 卷）· 共 {chars} 字 · "
        "每章目标 {target} 字 · 编码 {encoding}",
        "en": "✓ 《{title}》: {chapters} chapters imported ({volumes} volumes) · {chars} chars · "
        "{target} chars per chapter · encoding {encoding}",
    },
    "book_import_author": {"zh": " · 作者 {author}", "en": " · author {author}"},
    "book_import_dropped": {
        "zh": "\n\nℹ 清理时去掉了 {count} 项内容（广告行、空标题等）",
        "en": "\n\nℹ {count} items were dropped while cleaning (ad lines, empty headings …)",
    },
    "book_approved_what": {"zh": "✓ 已批准：{what}", "en": "✓ Approved: {what}"},
    "book_rejected_what": {"zh": "✓ 已拒绝：{what}", "en": "✓ Rejected: {what}"},
}
