"""Every user-visible WebUI string, in one table: Chinese (default) and English (``webui.language``)."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "title": {"zh": "xiaoshuo 中文小说写作", "en": "xiaoshuo Chinese novel writing"},
    "tab_create": {"zh": "创作", "en": "创作"},  # tab labels stay Chinese: tests and docs rely on them
    "tab_memory": {"zh": "记忆", "en": "记忆"},
    "tab_train": {"zh": "训练", "en": "训练"},
    "tab_settings": {"zh": "设置", "en": "设置"},
    "novel": {"zh": "小说", "en": "Novel"},
    "request": {"zh": "写作要求", "en": "Writing request"},
    "request_ph": {
        "zh": "例如：续写林远与苏晚晴在客栈重逢的场景",
        "en": "e.g. continue the inn reunion scene",
    },
    "story": {"zh": "正文（自动保存）", "en": "Story so far (autosaved)"},
    "generate": {"zh": "生成", "en": "Generate"},
    "stop": {"zh": "停止", "en": "Stop"},
    "candidate": {"zh": "候选", "en": "Candidate"},
    "use": {"zh": "采用候选", "en": "Use candidate"},
    "temperature": {"zh": "温度", "en": "Temperature"},
    "top_p": {"zh": "Top-p", "en": "Top-p"},
    "top_k": {"zh": "Top-k", "en": "Top-k"},
    "max_tokens": {"zh": "最大长度（token）", "en": "Max tokens"},
    "rep": {"zh": "重复惩罚", "en": "Repetition penalty"},
    "seed": {"zh": "随机种子（-1 随机）", "en": "Seed (-1 random)"},
    "n": {"zh": "候选数", "en": "Candidates"},
    "memory_on": {"zh": "使用记忆", "en": "Use memory"},
    "adapter": {"zh": "LoRA 适配器", "en": "LoRA adapter"},
    "inspector": {"zh": "上下文检查器", "en": "Context inspector"},
    "engine_status": {"zh": "模型状态", "en": "Model status"},
    "kind": {"zh": "类型", "en": "Kind"},
    "name": {"zh": "名称", "en": "Name"},
    "aliases": {"zh": "别名（逗号分隔）", "en": "Aliases (comma separated)"},
    "text": {"zh": "内容（描述 / 梗概 / 对话）", "en": "Text (description / summary / dialogue)"},
    "chapter": {"zh": "章节", "en": "Chapter"},
    "characters": {"zh": "相关人物 / 说话人（逗号分隔）", "en": "Characters / speakers (comma separated)"},
    "importance": {"zh": "重要度", "en": "Importance"},
    "pinned": {"zh": "置顶（总是放入提示）", "en": "Pinned (always in prompts)"},
    "entry_id": {"zh": "条目 ID（编辑/删除）", "en": "Entry id (edit/delete)"},
    "add": {"zh": "添加", "en": "Add"},
    "edit": {"zh": "修改", "en": "Edit"},
    "delete": {"zh": "删除", "en": "Delete"},
    "search": {"zh": "搜索记忆", "en": "Search memory"},
    "import": {"zh": "导入 JSON", "en": "Import JSON"},
    "export": {"zh": "导出 JSON", "en": "Export JSON"},
    "upload": {"zh": "上传小说（.txt .json .jsonl .epub）", "en": "Upload novels"},
    "prepare": {"zh": "准备数据", "en": "Prepare data"},
    "train_start": {"zh": "开始训练", "en": "Start training"},
    "train_stop": {"zh": "停止训练（保存检查点）", "en": "Stop (checkpoint first)"},
    "train_resume": {"zh": "继续训练", "en": "Resume"},
    "preview_cmd": {"zh": "等价命令", "en": "Equivalent command"},
    "loss": {"zh": "损失曲线", "en": "Loss curve"},
    "doctor": {"zh": "系统状态", "en": "System status"},
    "config": {"zh": "生效配置", "en": "Effective config"},
    "adapters": {"zh": "适配器", "en": "Adapters"},
    "reload": {"zh": "切换模型并重启引擎", "en": "Switch model and restart engine"},
    "err_empty_request": {"zh": "请先填写写作要求。", "en": "Please enter a writing request."},
    "err_engine": {"zh": "模型不可用：", "en": "Model unavailable: "},
    "saved": {"zh": "已保存", "en": "Saved"},
    "none": {"zh": "（无）", "en": "(none)"},
}


def t(key: str, lang: str = "zh") -> str:
    entry = STRINGS[key]
    return entry.get(lang) or entry["zh"]
