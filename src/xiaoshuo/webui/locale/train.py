"""Strings of the 训练 page (``train_*``) and of ``webui/services.py`` (``svc_*``): key → {"zh": …, "en": …}.

Field labels: Chinese first, the config key as a hint (what ``config.toml`` / ``--set`` calls it).
The page also uses common keys: ``upload``, ``prepare``, ``train_start``, ``train_stop``,
``train_resume``, ``preview_cmd``, ``loss``, ``none``.
"""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    # ---- what the page is for (the top), what to do after (the bottom)
    "train_intro": {
        "zh": "### 用你的小说训练文风\n"
        "训练会得到一个**文风适配器**（LoRA，几十 MB）：它挂在基础模型上，让写出来的文字更像你的书——"
        "用词、句子长短、对话和标点的习惯。基础模型本身不变，不用它时随时可以关掉。\n\n"
        "三步：① 上传你自己写的小说（TXT、EPUB）→ ② 准备数据 → ③ 开始训练。训练在后台进行，"
        "关掉页面也不会停；随时可以停止，之后从检查点继续。",
        "en": "### Train on your novels\n"
        "Training makes a **style adapter** (LoRA, a few dozen MB): it sits on top of the base model and "
        "makes what it writes read more like your books — word choice, sentence length, dialogue and "
        "punctuation habits. The base model itself stays as it is; switch the adapter off any time.\n\n"
        "Three steps: ① upload novels you wrote (TXT, EPUB) → ② prepare data → ③ start training. Training "
        "runs in the background and goes on when the page is closed; stop it any time and resume later.",
    },
    "train_after": {
        "zh": "### 训练之后\n"
        "- **用它写作**：在「创作」或「随手写」页的「适配器」里选中它（名字就是训练名称），再生成或续写。\n"
        "- **看它是否更像你**：评估文风会把同一段开头分别交给基础模型和适配器续写，"
        "再和你书里真正的下文比较用词、句长、对话和标点；命令在下面的「评估文风（命令行）」里。\n"
        "- 验证损失越低，适配器越能预测你书里没参加训练的章节。",
        "en": "### After training\n"
        "- **Write with it**: pick it under “Adapter” on the 创作 or 随手写 page "
        "(its name is the run name).\n"
        "- **Check it writes more like you**: the style eval gives the same openings to the base model and "
        "to the adapter and compares both continuations with your book's real text (words, sentence length, "
        "dialogue, punctuation); the command is under “Style eval (command line)” below.\n"
        "- The lower the validation loss, the better the adapter predicts chapters it was not trained on.",
    },
    "train_style_title": {"zh": "### 评估文风", "en": "### Style eval"},
    "train_style_help": {
        "zh": "选一个训练好的适配器，点「评估文风」：从留作验证的文字里取 {samples} 段开头，"
        "让基础模型和适配器各续写一遍，和你的原文比较。用当前已加载的模型，要几分钟。",
        "en": "Pick a trained adapter and click “Evaluate style”: {samples} openings from the held-out text "
        "are continued by the base model and by the adapter and compared with your own text. Uses the "
        "loaded model; takes a few minutes.",
    },
    "train_style_adapter": {"zh": "适配器", "en": "Adapter"},
    "train_style_start": {"zh": "评估文风", "en": "Evaluate style"},
    "train_style_pick": {"zh": "请先选择要评估的适配器。", "en": "Choose an adapter to evaluate first."},
    "train_style_closer": {
        "zh": "**适配器更像你的书**：文风距离 {base} → {adapter}（近了 {percent}%，0 表示和原文一样）",
        "en": "**The adapter writes more like your books**: style distance {base} → {adapter} "
        "({percent}% closer; 0 = written alike)",
    },
    "train_style_not_closer": {
        "zh": "**适配器没有更像你的书**：文风距离 {base} → {adapter}（0 表示和原文一样）。"
        "可以多给些文字、多训练几轮再试。",
        "en": "**The adapter does not write more like your books**: style distance {base} → {adapter} "
        "(0 = written alike). More text or more epochs may help.",
    },
    "train_style_perplexity": {
        "zh": "你原文的每字困惑度 {base} → {adapter}（越低说明越能预料你会怎么写）",
        "en": "Perplexity per character of your text {base} → {adapter} "
        "(lower: it predicts your writing better)",
    },
    "train_style_samples": {
        "zh": "{samples} 段 × 约 {chars} 字，已记入适配器的说明",
        "en": "{samples} passages × about {chars} characters; saved with the adapter",
    },
    "train_style_col_feature": {"zh": "指标", "en": "Feature"},
    "train_style_col_base": {"zh": "基础模型", "en": "Base model"},
    "train_style_col_adapter": {"zh": "适配器", "en": "Adapter"},
    "train_style_col_gain": {"zh": "提升", "en": "Gain"},
    "train_style_axis": {"zh": "与原文的距离（越小越像）", "en": "Distance from your text (lower is closer)"},
    "train_style_total": {"zh": "文风距离（总）", "en": "Style distance (all)"},
    "train_style_ppl": {"zh": "每字困惑度", "en": "Perplexity per character"},
    "train_style_char_jsd": {"zh": "用字", "en": "Characters"},
    "train_style_bigram_jsd": {"zh": "词组", "en": "Character pairs"},
    "train_style_sentence_ks": {"zh": "句子长短", "en": "Sentence length"},
    "train_style_dialogue": {"zh": "对话比例", "en": "Dialogue share"},
    "train_style_punctuation": {"zh": "标点习惯", "en": "Punctuation"},
    "train_style_function_delta": {"zh": "虚词用法", "en": "Function words"},
    "train_style_mattr": {"zh": "用词丰富度", "en": "Lexical richness"},
    "train_style_paragraph": {"zh": "段落长短", "en": "Paragraph length"},
    "train_eval_title": {"zh": "评估文风（命令行）", "en": "Style eval (command line)"},
    "train_eval_command": {"zh": "评估最新适配器的命令", "en": "Command for the newest adapter"},
    "train_eval_none": {
        "zh": "（还没有训练好的适配器）",
        "en": "(no trained adapter yet)",
    },
    # ---- the form
    "train_data_title": {"zh": "### 1. 训练数据", "en": "### 1. Training data"},
    "train_form_title": {"zh": "### 2. 训练参数", "en": "### 2. Training settings"},
    "train_run_title": {"zh": "### 3. 训练", "en": "### 3. Train"},
    "train_advanced": {"zh": "高级设置", "en": "Advanced settings"},
    "train_base_model": {"zh": "基础模型", "en": "Base model (model.base_model)"},
    "train_base_model_info": {
        "zh": "默认是当前已加载的模型；适配器只能用在同一个基础模型上",
        "en": "The loaded model by default; an adapter only works on the base model it was trained on",
    },
    "train_tokenizer": {"zh": "分词器", "en": "Tokenizer (data.tokenizer)"},
    "train_tokenizer_info": {
        "zh": "把文字切成模型认识的词元；准备数据时用它，必须和基础模型的一致（默认就是）",
        "en": "Cuts the text into the model's tokens when preparing data; "
        "must be the base model's (the default)",
    },
    "train_run": {"zh": "训练名称", "en": "Run name (run)"},
    "train_run_info": {
        "zh": "也是训练出的适配器的名字",
        "en": "Also the name of the trained adapter",
    },
    "train_epochs": {"zh": "训练轮数", "en": "Epochs (training.num_train_epochs)"},
    "train_epochs_info": {
        "zh": "全部文字学几遍；2–3 遍通常就够，太多会照抄原文",
        "en": "How many times the whole text is read; 2–3 is usually enough, more starts copying",
    },
    "train_batch": {"zh": "每批样本数", "en": "Batch size (training.per_device_train_batch_size)"},
    "train_batch_info": {
        "zh": "一次同时算几段文字；越大越占内存",
        "en": "Passages computed at once; larger needs more memory",
    },
    "train_accum": {
        "zh": "梯度累积步数",
        "en": "Gradient accumulation (training.gradient_accumulation_steps)",
    },
    "train_accum_info": {
        "zh": "攒够几批再更新一次模型：内存不够时代替更大的批次（每步的样本数 = 每批样本数 × 梯度累积）",
        "en": "Batches summed before each update: a larger batch without more memory "
        "(samples per step = batch size × accumulation)",
    },
    "train_lr": {"zh": "学习率", "en": "Learning rate (training.learning_rate)"},
    "train_lr_info": {
        "zh": "每一步改动多大；太大会学坏，太小学不会。不确定就用默认值",
        "en": "How big each update is; too large breaks the model, too small learns nothing",
    },
    "train_lora_r": {"zh": "LoRA 秩", "en": "LoRA rank (model.lora_r)"},
    "train_lora_r_info": {
        "zh": "适配器的容量：越大能记住的细节越多，文件也越大；文风 8–16 就够",
        "en": "The adapter's capacity: larger keeps more detail and a larger file; 8–16 suits a style",
    },
    "train_seq": {"zh": "最大长度（词元）", "en": "Max length in tokens (training.max_seq_length)"},
    "train_seq_info": {
        "zh": "一个训练样本最多多少词元；更长的会被截断",
        "en": "The longest training sample; longer ones are cut",
    },
    "train_max_steps": {"zh": "最多训练步数（0 = 按轮数）", "en": "Max steps (0 = by epochs) (max_steps)"},
    "train_max_steps_info": {
        "zh": "想先试一下时填一个小数字，例如 20",
        "en": "A small number such as 20 for a quick try",
    },
    "train_qlora": {"zh": "4 位量化训练（QLoRA）", "en": "QLoRA 4-bit (model.load_in_4bit)"},
    "train_qlora_info_gpu": {
        "zh": "省显存：基础模型以 4 位加载，适合显存小的显卡",
        "en": "Saves GPU memory: the base model is loaded in 4 bits",
    },
    "train_qlora_info_cpu": {
        "zh": "默认关闭：没有检测到显卡。4 位量化只在显卡上省显存，在处理器上反而更慢",
        "en": "Off by default: no CUDA GPU found. QLoRA saves GPU memory; on the CPU it is only slower",
    },
    # ---- how much text, how long (training/estimate.py in words)
    "train_est_none": {
        "zh": "**还没有训练数据**：先上传你的小说。",
        "en": "**No training text yet**: upload your novels first.",
    },
    "train_est_amount": {
        "zh": "**现有文字**：约 {chars}（{files} 个文件，{how}）",
        "en": "**Text**: about {chars} (files: {files}; {how})",
    },
    "train_est_exact": {
        "zh": "准备数据时统计，不含留作验证的部分",
        "en": "counted when preparing, without the validation part",
    },
    "train_est_guess": {
        "zh": "按文件大小粗算，准备数据后精确统计",
        "en": "guessed from the file sizes; exact after preparing",
    },
    "train_est_needs": {
        "zh": "**需要多少文字**：至少约 {min}，推荐 {good}以上"
        "（每个样本约 {chunk} 个词元 ≈ {sample}，每步 {per_step} 个样本，{epochs} 轮："
        "至少 {min_steps} 步才学得到文风，{good_steps} 步以上效果稳定）",
        "en": "**How much text**: at least about {min}, {good} or more recommended "
        "(a sample is about {chunk} tokens ≈ {sample}, {per_step} samples a step, {epochs} epochs: "
        "{min_steps} steps to pick up a style at all, {good_steps} or more for a stable one)",
    },
    "train_est_little": {
        "zh": "⚠ 文字偏少：适配器学到的文风会很有限。可以多上传几本，或增加训练轮数。",
        "en": "⚠ Little text: the adapter will learn little of the style. Upload more, or train more epochs.",
    },
    "train_est_ok": {"zh": "✓ 够用；再多一些效果更稳。", "en": "✓ Enough; more makes it steadier."},
    "train_est_good": {"zh": "✓ 文字充足。", "en": "✓ Plenty of text."},
    "train_est_time": {
        "zh": "**本机预计用时：{duration}**（{steps} 步，共学习约 {tokens}个词元；{why}）",
        "en": "**Time on this machine: {duration}** ({steps} steps, about {tokens} tokens; {why})",
    },
    "train_est_measured": {
        "zh": "按本机上次训练「{run}」的实测速度：每秒 {rate} 个词元",
        "en": "at the speed measured in the earlier run “{run}” here: {rate} tokens/s",
    },
    "train_est_hardware": {
        "zh": "按本机{device}和模型大小（约 {params}参数）粗略估算，含加载模型约 1 分钟；"
        "开始训练后进度里会显示实测的剩余时间",
        "en": "a rough figure from this machine's {device} and the model size (about {params} parameters); "
        "loading the model included; the progress line shows the measured time left once training runs",
    },
    "train_est_unknown": {
        "zh": "**本机预计用时**：无法估算——不知道基础模型有多大。开始训练后进度里会显示剩余时间。",
        "en": "**Time on this machine**: unknown — the base model's size is not known. "
        "The progress line shows the time left once training runs.",
    },
    "train_est_gpu": {"zh": "的显卡（{gib} GB 显存）", "en": "GPU ({gib} GB)"},
    "train_est_cpu": {"zh": "的 {cores} 核处理器（没有显卡）", "en": "{cores}-core CPU (no GPU)"},
    "train_wan_chars": {"zh": "{wan} 万字", "en": "{full} characters"},
    "train_chars": {"zh": "{n} 字", "en": "{n} characters"},
    "train_wan": {"zh": "{wan} 万", "en": "{full}"},
    "train_yi": {"zh": "{yi} 亿", "en": "{billions} billion"},
    "train_about_minutes": {"zh": "约 {n} 分钟", "en": "about {n} min"},
    "train_about_hours": {"zh": "约 {n} 小时", "en": "about {n} h"},
    "train_about_days": {"zh": "约 {n} 天", "en": "about {n} days"},
    "train_under_minute": {"zh": "不到 1 分钟", "en": "under a minute"},
    "train_resume_choice": {"zh": "从检查点继续", "en": "Resume from a checkpoint (resume)"},
    "train_resume_label": {
        "zh": "{run} · 第 {step} 步 · {date}",
        "en": "{run} · step {step} · {date}",
    },
    "train_resume_pick": {"zh": "请先选择要继续的训练。", "en": "Choose a run to resume first."},
    "train_bad_form": {
        "zh": "训练参数不完整或无效",
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
    "train_col_characters": {"zh": "字数", "en": "Characters"},
    "train_axis_step": {"zh": "步", "en": "step"},
    "train_axis_loss": {"zh": "损失", "en": "loss"},
    "train_col_error": {"zh": "错误", "en": "Error"},
    "train_error_fix": {"zh": "解决：{fix}", "en": "Fix: {fix}"},
    "train_status_ok": {"zh": "✓ 可用", "en": "✓ ok"},
    "train_status_error": {"zh": "✗ 失败", "en": "✗ failed"},
    "train_prepare_done": {
        "zh": "**数据已准备好**：{files_ok}/{files} 个文件可用 · {chapters} 章 · {samples} 个样本 · "
        "{tokens} 个词元 · 用时 {seconds} 秒 · 分词器「{tokenizer}」",
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
        "zh": "训练中：第 {step}/{max_steps} 步 · 损失 {loss} · 每秒 {rate} 个词元 · 剩余时间 {eta}",
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
    "svc_loading": {"zh": "正在加载 {model} …", "en": "Loading {model} …"},
    "svc_ready": {"zh": "就绪：{backend} · {model}", "en": "Ready: {backend} · {model}"},
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
