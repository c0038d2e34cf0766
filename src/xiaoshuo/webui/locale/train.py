"""Strings of the 训练 page (``train_*``) and of ``webui/services.py`` (``svc_*``): key → {"zh": …, "en": …}.

Field labels: Chinese first, the config key as a hint (what ``config.toml`` / ``--set`` calls it).
The page also uses common keys: ``upload``, ``prepare``, ``train_start``, ``train_stop``,
``train_resume``, ``preview_cmd``, ``loss``, ``none``.
"""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    # ---- the form
    "train_data_title": {"zh": "### 1. 训练数据", "en": "### 1. Training data"},
    "train_form_title": {"zh": "### 2. 训练参数", "en": "### 2. Training settings"},
    "train_run_title": {"zh": "### 3. 训练", "en": "### 3. Train"},
    "train_base_model": {"zh": "基础模型 (model.base_model)", "en": "Base model (model.base_model)"},
    "train_base_model_info": {
        "zh": "默认是当前已加载的模型；适配器只能用在同一个基础模型上",
        "en": "The loaded model by default; an adapter only works on the base model it was trained on",
    },
    "train_tokenizer": {"zh": "分词器 (data.tokenizer)", "en": "Tokenizer (data.tokenizer)"},
    "train_tokenizer_info": {
        "zh": "准备数据时用它切分文本；默认用当前已加载模型的分词器",
        "en": "Cuts the text into chunks when preparing data; the loaded model's tokenizer by default",
    },
    "train_run": {"zh": "训练名称 (run)", "en": "Run name (run)"},
    "train_run_info": {
        "zh": "也是训练出的适配器的名字",
        "en": "Also the name of the trained adapter",
    },
    "train_epochs": {
        "zh": "训练轮数 (training.num_train_epochs)",
        "en": "Epochs (training.num_train_epochs)",
    },
    "train_batch": {
        "zh": "每批样本数 (training.per_device_train_batch_size)",
        "en": "Batch size (training.per_device_train_batch_size)",
    },
    "train_accum": {
        "zh": "梯度累积步数 (training.gradient_accumulation_steps)",
        "en": "Gradient accumulation (training.gradient_accumulation_steps)",
    },
    "train_lr": {"zh": "学习率 (training.learning_rate)", "en": "Learning rate (training.learning_rate)"},
    "train_lora_r": {"zh": "LoRA 秩 (model.lora_r)", "en": "LoRA rank (model.lora_r)"},
    "train_seq": {
        "zh": "最大长度（token） (training.max_seq_length)",
        "en": "Max length (training.max_seq_length)",
    },
    "train_max_steps": {
        "zh": "最多训练步数（0 = 按轮数） (max_steps)",
        "en": "Max steps (0 = by epochs) (max_steps)",
    },
    "train_qlora": {"zh": "QLoRA 4 位量化 (model.load_in_4bit)", "en": "QLoRA 4-bit (model.load_in_4bit)"},
    "train_qlora_info_gpu": {
        "zh": "省显存：基础模型以 4 位加载，适合显存小的 GPU",
        "en": "Saves GPU memory: the base model is loaded in 4 bits",
    },
    "train_qlora_info_cpu": {
        "zh": "默认关闭：没有检测到 CUDA GPU。QLoRA 只在 GPU 上省显存，在 CPU 上反而更慢",
        "en": "Off by default: no CUDA GPU found. QLoRA saves GPU memory; on the CPU it is only slower",
    },
    "train_resume_choice": {"zh": "从检查点继续 (resume)", "en": "Resume from a checkpoint (resume)"},
    "train_resume_label": {
        "zh": "{run} · 第 {step} 步 · {date}",
        "en": "{run} · step {step} · {date}",
    },
    "train_resume_pick": {"zh": "请先选择要继续的训练。", "en": "Choose a run to resume first."},
    "train_bad_form": {
        "zh": "训练参数不完整或无效 (incomplete or invalid training settings)",
        "en": "Incomplete or invalid training settings",
    },
    "train_bad_form_fix": {
        "zh": "每一项都要填写；学习率、轮数、每批样本数、梯度累积、LoRA 秩和最大长度都要大于 0",
        "en": "Fill in every field; learning rate, epochs, batch size, accumulation, rank, length: > 0",
    },
    "train_preview_invalid": {"zh": "（参数不完整：{message}）", "en": "(incomplete settings: {message})"},
    # ---- prepare
    "train_prepare_table": {"zh": "每个文件", "en": "Per file"},
    "train_col_file": {"zh": "文件", "en": "File"},
    "train_col_status": {"zh": "状态", "en": "Status"},
    "train_col_encoding": {"zh": "编码", "en": "Encoding"},
    "train_col_chapters": {"zh": "章节", "en": "Chapters"},
    "train_col_samples": {"zh": "样本", "en": "Samples"},
    "train_col_error": {"zh": "错误", "en": "Error"},
    "train_status_ok": {"zh": "✓ 可用", "en": "✓ ok"},
    "train_status_error": {"zh": "✗ 失败", "en": "✗ failed"},
    "train_prepare_done": {
        "zh": "**数据已准备好**：{files_ok}/{files} 个文件可用 · {chapters} 章 · {samples} 个样本 · "
        "{tokens} 个 token · 用时 {seconds} 秒 · 分词器 `{tokenizer}`",
        "en": "**Data ready**: {files_ok}/{files} files usable · {chapters} chapters · {samples} samples · "
        "{tokens} tokens · {seconds} s · tokenizer `{tokenizer}`",
    },
    "train_prepare_failed_files": {
        "zh": "{n} 个文件没有用上，原因见下表。",
        "en": "{n} files were not used; see the table for why.",
    },
    "train_prepare_failed": {
        "zh": "**没有准备出数据**：{message}\n\n怎么办：{fix}",
        "en": "**No data prepared**: {message}\n\nWhat to do: {fix}",
    },
    "train_prepare_example": {"zh": "第一个训练样本（预览）", "en": "First training sample (preview)"},
    "train_prepare_progress_done": {"zh": "完成", "en": "done"},
    # ---- progress
    "train_progress_log": {
        "zh": "训练中：第 {step}/{max_steps} 步 · 损失 {loss} · 每秒 {rate} token · 剩余时间 {eta}",
        "en": "Training: step {step}/{max_steps} · loss {loss} · {rate} tokens/s · ETA {eta}",
    },
    "train_progress_start": {
        "zh": "训练开始：{run} · 训练样本 {train} 个 · 验证样本 {val} 个",
        "en": "Training started: {run} · {train} training samples · {val} validation samples",
    },
    "train_progress_eval": {
        "zh": "验证：第 {step} 步 · 验证损失 {loss}",
        "en": "Validation: step {step} · validation loss {loss}",
    },
    "train_progress_checkpoint": {
        "zh": "已保存检查点：第 {step} 步",
        "en": "Checkpoint saved: step {step}",
    },
    "train_progress_end": {
        "zh": "训练完成：共 {step} 步 · 训练损失 {loss} · 验证损失 {eval_loss} · 用时 {seconds} · "
        "适配器「{run}」已可在创作页选用",
        "en": "Training done: {step} steps · training loss {loss} · validation loss {eval_loss} · "
        "took {seconds} · adapter “{run}” is ready to use",
    },
    "train_progress_stopped": {
        "zh": "训练已停止：第 {step} 步，已保存检查点，可以从「继续训练」接着训练",
        "en": "Training stopped at step {step}; a checkpoint was saved, resume it any time",
    },
    "train_progress_error": {"zh": "训练出错：{message}", "en": "Training failed: {message}"},
    "train_progress_waiting": {
        "zh": "训练进程已启动，正在加载模型和数据 …",
        "en": "The training process started; loading the model and data …",
    },
    "train_eta_unknown": {"zh": "估算中", "en": "estimating"},
    "train_seconds": {"zh": "{s} 秒", "en": "{s} s"},
    "train_minutes": {"zh": "{m} 分 {s} 秒", "en": "{m} min {s} s"},
    "train_hours": {"zh": "{h} 小时 {m} 分", "en": "{h} h {m} min"},
    "train_na": {"zh": "—", "en": "—"},
    # ---- adapters
    "train_adapters": {"zh": "已训练的适配器", "en": "Trained adapters"},
    "train_col_name": {"zh": "名称", "en": "Name"},
    "train_col_base": {"zh": "基础模型", "en": "Base model"},
    "train_col_created": {"zh": "训练时间", "en": "Trained"},
    "train_col_steps": {"zh": "步数", "en": "Steps"},
    "train_col_eval_loss": {"zh": "验证损失", "en": "Validation loss"},
    # ---- webui/services.py (svc_*): engine holder, stories, uploads, training jobs
    "svc_loading": {"zh": "正在加载 loading {model} …", "en": "Loading {model} …"},
    "svc_ready": {"zh": "就绪 ready: {backend} · {model}", "en": "Ready: {backend} · {model}"},
    "svc_not_downloaded": {
        "zh": "模型还没有下载 (the model is not on disk): {model}",
        "en": "The model is not on disk: {model}",
    },
    "svc_not_downloaded_fix": {
        "zh": "在「设置」页「下载模型」一键下载，或运行 `{command}`",
        "en": "Download it on 设置 → 下载模型, or run `{command}`",
    },
    "svc_download_hint": {
        "zh": " → 在「设置」页「下载模型」一键下载，或运行 `{command}`",
        "en": " → download it on 设置 → 下载模型, or run `{command}`",
    },
    "svc_load_failed": {
        "zh": "模型加载失败 (the model failed to load)",
        "en": "The model failed to load",
    },
    "svc_not_ready": {"zh": "模型还不能用 (the model is not ready)", "en": "The model is not ready yet"},
    "svc_reload_fix": {
        "zh": "在「设置」页检查模型路径后重新加载",
        "en": "Check the model path on 设置 and reload",
    },
    "svc_wait_fix": {
        "zh": "稍等片刻；或在「设置」页检查模型路径后重新加载",
        "en": "Wait a moment; or check the model path on 设置 and reload",
    },
    "svc_upload_bad_ext": {
        "zh": "✗ {name}: 不支持的格式 {ext}（支持 .txt .json .jsonl .epub）",
        "en": "✗ {name}: unsupported format {ext} (use .txt .json .jsonl .epub)",
    },
    "svc_upload_no_ext": {"zh": "(无扩展名)", "en": "(no extension)"},
    "svc_upload_too_big": {
        "zh": "✗ {name}: 文件太大 ({size} MB > {limit} MB)",
        "en": "✗ {name}: file too large ({size} MB > {limit} MB)",
    },
    "svc_upload_bad_name": {"zh": "✗ {name}: 非法文件名", "en": "✗ {name}: invalid file name"},
    "svc_upload_ok": {"zh": "✓ {name} → {target} ({size} kB)", "en": "✓ {name} → {target} ({size} kB)"},
    "svc_train_running": {
        "zh": "已有训练在进行 (a training run is already running)",
        "en": "A training run is already running",
    },
    "svc_train_running_fix": {"zh": "先停止当前训练", "en": "Stop the current run first"},
}
