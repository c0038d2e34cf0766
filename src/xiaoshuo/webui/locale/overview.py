"""Strings of the 总览 page (the book at a glance): key → {"zh": …, "en": …}."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "tab_overview": {"zh": "总览", "en": "总览"},  # tab labels stay Chinese, as the others
    "ov_intro": {
        "zh": "全书一览：人物关系（只显示到所选章节为止已知的内容）、时间线与写作进度。",
        "en": "The book at a glance: relationships as known at the chosen chapter, the timeline, progress.",
    },
    "ov_refresh": {"zh": "刷新", "en": "Refresh"},
    "ov_chapter": {"zh": "截至第几章", "en": "As of chapter"},
    "ov_character": {"zh": "查看人物", "en": "Character"},
    "ov_graph": {"zh": "人物关系", "en": "Relationships"},
    "ov_timeline": {"zh": "时间线", "en": "Timeline"},
    "ov_dashboard": {"zh": "写作进度", "en": "Dashboard"},
    "ov_no_novel": {
        "zh": "（请先在“创作”页选择或新建一部小说）",
        "en": "(choose or create a novel on the book page)",
    },
    "ov_summary": {
        "zh": "**《{title}》** 共 {chars} 字 / 计划 {target} 字（{progress}）· 连续写作 {streak} 天 · "
        "待审阅 {pending} 条 · 人物 {people} 位，关系 {edges} 条（截至第 {chapter} 章）",
        "en": "**{title}** {chars} / {target} chars planned ({progress}) · {streak}-day streak · "
        "{pending} pending reviews · {people} characters, {edges} relations (as of chapter {chapter})",
    },
    "ov_memory_off": {
        "zh": "⚠ 记忆暂不可用（{error}），人物关系与时间线为空。",
        "en": "⚠ Memory unavailable ({error}): no graph and no timeline.",
    },
    "ov_card_none": {"zh": "选择一位人物，查看其卡片、状态变化与出场章节。", "en": "Pick a character."},
    "ov_card_unknown": {
        "zh": "截至第 {chapter} 章还没有“{name}”的记录。",
        "en": "Nothing is known of {name} as of chapter {chapter}.",
    },
    "ov_card": {
        "zh": "**{name}**{aliases}\n\n{text}\n\n现状：{state}\n\n状态变化：{history}\n\n出场章节：{chapters}",
        "en": "**{name}**{aliases}\n\n{text}\n\nState: {state}\n\nHistory: {history}\n\n"
        "Appears in: {chapters}",
    },
    "ov_none": {"zh": "无", "en": "none"},
    "ov_list_sep": {"zh": "、", "en": ", "},
    "ov_history_sep": {"zh": "；", "en": "; "},
    "ov_history_item": {"zh": "第{chapter}章 {state}", "en": "ch. {chapter}: {state}"},
    "ov_aliases": {"zh": "（又名：{aliases}）", "en": " (also: {aliases})"},
}
