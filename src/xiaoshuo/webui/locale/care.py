"""Strings of the 创作 page's care panel (``pages/book/care_*``): 修订, 锁定, 同步, 体检, and the stale
badge of the outline table.  key → {"zh": …, "en": …}."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    # ---- 锁定 and 待同步 (the selected chapter)
    "care_lock": {"zh": "锁定本章", "en": "Lock this chapter"},
    "care_locked_msg": {
        "zh": "✓ 第{n}章已锁定：修订、同步和任何批量操作都不会改动正文",
        "en": "✓ Chapter {n} locked: revise, resync and batch jobs leave its text alone",
    },
    "care_unlocked_msg": {"zh": "✓ 第{n}章已解锁", "en": "✓ Chapter {n} unlocked"},
    # the outline's 状态 column is narrow: a mark, explained beside the editor when the chapter is open
    "care_stale_mark": {"zh": "⚠", "en": " ⚠"},
    "care_locked_mark": {"zh": "🔒", "en": " 🔒"},
    "care_stale_head": {
        "zh": "⚠ 第{n}章待同步：它用到的前文已改动（可重新生成，或在「同步」里刷新摘要和记忆）",
        "en": "⚠ Chapter {n} is stale: what it used has changed (regenerate it, or refresh under Resync)",
    },
    # ---- 修订
    "care_revise": {"zh": "修订（按检查结果改写）", "en": "Revise (rewrite what the review flags)"},
    "care_revise_plan": {"zh": "查看计划修改", "en": "Show planned edits"},
    "care_revise_go": {"zh": "修订本章", "en": "Revise this chapter"},
    "care_passes": {"zh": "修订轮数", "en": "Passes"},
    "care_plan_summary": {
        "zh": "第{n}章：{count} 个问题（加权 {weighted}），计划修改 {edits} 处（{modes}）",
        "en": "Chapter {n}: {count} findings (weighted {weighted}); {edits} passages to edit ({modes})",
    },
    "care_plan_clean": {
        "zh": "第{n}章没有发现问题，不需要修订",
        "en": "Chapter {n}: no findings, nothing to revise",
    },
    "care_mode_rewrite": {"zh": "改写", "en": "rewrite"},
    "care_mode_expand": {"zh": "扩写", "en": "expand"},
    "care_mode_shorten": {"zh": "缩写", "en": "shorten"},
    "care_cols_findings": {
        "zh": "类型|程度|原文|问题|修改要求",
        "en": "Kind|Severity|Quote|Finding|Instruction",
    },
    "care_before": {"zh": "修订前的问题", "en": "Findings before"},
    "care_after": {"zh": "修订后的问题", "en": "Findings after"},
    "care_revising": {
        "zh": "修订中…（改写标出的段落，再检查一遍；只有问题更少才保留）",
        "en": "Revising… (rewriting the flagged passages, then reviewing again; kept only if better)",
    },
    "care_kept": {
        "zh": "✓ 已保留为新版本 {versions}：问题（加权）{before} → {after}",
        "en": "✓ Kept as version {versions}: weighted findings {before} → {after}",
    },
    "care_not_kept": {
        "zh": "没有保留修改：改后的问题没有更少，正文未改动（{reason}）",
        "en": "Nothing kept: no revision had fewer findings; the text is unchanged ({reason})",
    },
    "care_diff": {"zh": "修订前后对比", "en": "Before → after"},
    "care_kind_consistency": {"zh": "一致性", "en": "consistency"},
    "care_kind_length": {"zh": "长度", "en": "length"},
    "care_kind_repetition": {"zh": "重复", "en": "repetition"},
    "care_kind_flavour": {"zh": "AI味", "en": "AI flavour"},
    "care_kind_outline": {"zh": "大纲", "en": "outline"},
    "care_sev_warning": {"zh": "⚠ 警告", "en": "⚠ warning"},
    "care_sev_info": {"zh": "ℹ 提示", "en": "ℹ info"},
    # ---- 同步
    "care_resync": {"zh": "同步（刷新摘要和记忆）", "en": "Resync (refresh summaries and memory)"},
    "care_resync_go": {"zh": "同步", "en": "Resync"},
    "care_pending": {
        "zh": "待同步：{summaries} 章摘要、{extracts} 章记忆提取；{stale} 章待同步",
        "en": "Pending: {summaries} summaries, {extracts} extractions; {stale} stale chapters",
    },
    "care_nothing_pending": {"zh": "没有待同步的工作", "en": "Nothing pending"},
    "care_resync_progress": {"zh": "同步中（章）", "en": "Resyncing (chapters)"},
    "care_resync_done": {
        "zh": "✓ 同步完成：摘要 {summarized} 章 · 提取记忆 {extracted} 章 · {batches} 批",
        "en": "✓ Resynced: {summarized} summaries · {extracted} extractions · {batches} batches",
    },
    "care_resync_cleared": {"zh": "不再待同步：第{chapters}章", "en": "No longer stale: {chapters}"},
    "care_resync_locked": {"zh": "跳过锁定：第{chapters}章", "en": "Locked, skipped: {chapters}"},
    "care_resync_failed": {
        "zh": "失败（仍待同步）：第{chapter}章 {task}：{error}",
        "en": "Failed (still pending): chapter {chapter} {task}: {error}",
    },
    "care_no_store": {
        "zh": "记忆库不可用，只刷新摘要（{message}）",
        "en": "Story memory unavailable, summaries only ({message})",
    },
    # ---- 体检
    "care_health": {"zh": "体检（全书）", "en": "Book health"},
    "care_health_go": {"zh": "体检全书", "en": "Check the book"},
    "care_health_summary": {
        "zh": "全书 {chapters} 章 · {chars} 字 · 平均长度分 {length} · 重复率 {rep} · AI味 {ai}/千字 · "
        "一致性问题 {findings} 处 · 逾期伏笔 {threads} 条",
        "en": "{chapters} chapters · {chars} chars · mean length score {length} · repetition {rep} · "
        "AI flavour {ai}/1,000 · {findings} consistency findings · {threads} overdue threads",
    },
    "care_chart_lines": {"zh": "每章指标", "en": "Per chapter"},
    "care_chart_chars": {"zh": "字数与目标", "en": "Chars vs target"},
    "care_axis_chapter": {"zh": "章", "en": "Chapter"},
    "care_series_length_score": {"zh": "长度分", "en": "Length score"},
    "care_series_repetition_rate": {"zh": "重复率", "en": "Repetition"},
    "care_series_ai_flavour": {"zh": "AI味（每千字）", "en": "AI flavour per 1,000"},
    "care_series_findings_per_10k": {"zh": "一致性问题（每万字）", "en": "Findings per 10,000"},
    "care_series_chars": {"zh": "字数", "en": "Chars"},
    "care_series_target": {"zh": "目标", "en": "Target"},
}
