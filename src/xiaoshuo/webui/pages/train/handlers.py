"""训练 (train)'s handlers: plain functions over ``Services`` — upload novels, prepare data, start/stop/
resume a LoRA training run, read its progress.

On page load the form is filled from the model the engine actually loaded (not the config's default),
the tokenizer field with that model's tokenizer, and the equivalent command at once.  Training runs in a
subprocess (``Services.jobs``, a :class:`xiaoshuo.webui.runtime.SubprocessJob`), never inside a UI
callback.  Errors are raised as ``XiaoshuoError`` (``layout.py`` wires every handler through
``webui.errors.guard``); everything runs without a browser.  Not responsible for the layout
(``layout.py``), serving adapters (the engine) or managing them (设置).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.services import Services, save_uploads

#: A Chinese character (a message that has Chinese besides its English gloss).
CJK = re.compile(r"[\u3400-\u9fff]")

#: The form, in the order of the page's inputs (``form_values`` takes them positionally).
FIELDS = (
    "base_model",
    "tokenizer",
    "run",
    "epochs",
    "batch_size",
    "grad_accum",
    "lr",
    "lora_r",
    "max_seq_length",
    "max_steps",
    "qlora",
)


# ----------------------------------------------------------------------------- the form
def cuda_visible() -> bool:
    """Whether a CUDA GPU is visible to a training process (``nvidia-smi``; no torch import)."""
    from xiaoshuo.hardware import gpu_memory

    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return False
    return bool(gpu_memory())


def loaded_model(services: Services) -> str:
    """The model the engine loaded (or is loading); the config's base model for a remote (openai)
    engine, whose served name is not a model training can load."""
    holder = services.engine
    backend = getattr(holder, "backend", None)
    engine = services._ready_engine()
    if backend == "openai" or (engine is not None and engine.backend == "openai"):
        return services.settings.model.base_model
    return getattr(holder, "model", None) or services.settings.model.base_model


def tokenizer_for(services: Services, model: str) -> str:
    """The tokenizer to prepare data with for ``model``: its local folder when it is on disk (no
    network at all), else the hub id (the Hugging Face cache, or the hub when online)."""
    from xiaoshuo.models import find_local

    found = find_local(model, services.settings.paths.models_dir)
    return str(found) if found is not None else model


def qlora_default(services: Services, lang: str, *, cuda: bool | None = None) -> tuple[bool, str]:
    """``(checked, explanation)``: QLoRA only when a CUDA GPU is visible and the config asks for it."""
    cuda = cuda_visible() if cuda is None else cuda
    if not cuda:
        return False, t("train_qlora_info_cpu", lang)
    return bool(services.settings.model.load_in_4bit), t("train_qlora_info_gpu", lang)


def form_defaults(services: Services, lang: str = "zh", *, cuda: bool | None = None) -> dict[str, Any]:
    """The form's values on page load: the loaded model, its tokenizer, the training settings."""
    s = services.settings
    tr = s.training
    model = loaded_model(services)
    return {
        "base_model": model,
        "tokenizer": tokenizer_for(services, model),
        "run": "lora-" + time.strftime("%m%d-%H%M"),
        "epochs": tr.num_train_epochs,
        "batch_size": tr.per_device_train_batch_size,
        "grad_accum": tr.gradient_accumulation_steps,
        "lr": tr.learning_rate,
        "lora_r": s.model.lora_r,
        "max_seq_length": tr.max_seq_length,
        "max_steps": 0,
        "qlora": qlora_default(services, lang, cuda=cuda)[0],
    }


def form_values(lang: str, *args: Any) -> dict[str, Any]:
    """The page's inputs (in ``FIELDS`` order) → the dict ``TrainingJobs`` takes; raises
    ``XiaoshuoError`` when a field is empty or not positive."""
    values = dict(zip(FIELDS, args, strict=True))
    values["run"] = str(values["run"] or "").strip()
    values["base_model"] = str(values["base_model"] or "").strip()
    values["tokenizer"] = str(values["tokenizer"] or "").strip()
    values["max_steps"] = int(values["max_steps"]) if values["max_steps"] else None
    values["qlora"] = bool(values["qlora"])
    required = ("base_model", "run", "epochs", "batch_size", "grad_accum", "lr", "lora_r", "max_seq_length")
    missing = [k for k in required if values[k] in (None, "")]
    bad = [k for k in required[2:] if k not in missing and float(values[k]) <= 0]
    if missing or bad:
        raise XiaoshuoError(
            t("train_bad_form", lang),
            expected="every field filled in; numbers > 0",
            received=", ".join(f"{k}={values[k]!r}" for k in missing + bad),
            fix=t("train_bad_form_fix", lang),
        )
    return values


def command_preview(services: Services, lang: str, *args: Any) -> str:
    """The equivalent ``xiaoshuo train`` command for the form (a note instead while it is incomplete)."""
    try:
        return shlex.join(services.jobs.command(form_values(lang, *args)))
    except XiaoshuoError as exc:
        return t("train_preview_invalid", lang, message=exc.received or exc.message)


def _short_model(name: Any) -> str:
    from xiaoshuo.models import is_hub_id

    text = str(name or "")
    return text if not text or is_hub_id(text) else Path(text).name


def _date(stamp: Any) -> str:
    text = str(stamp or "")
    return text[:16].replace("T", " ") if text else ""


def resume_choices(services: Services, lang: str) -> list[tuple[str, str]]:
    """``(label, run folder)`` per run with a checkpoint: "name · 第 N 步 · date"."""
    out = []
    for path in services.jobs.resumable():
        folder = Path(path)
        steps = [int(p.name.split("-")[-1]) for p in folder.glob("checkpoint-*") if p.name[11:].isdigit()]
        try:
            created = json.loads((folder / "run.json").read_text("utf-8")).get("created")
        except (OSError, ValueError):
            created = None
        label = t(
            "train_resume_label", lang, run=folder.name, step=max(steps, default=0), date=_date(created)
        )
        out.append((label, str(folder)))
    return out


def adapter_table(services: Services, lang: str):
    """The trained adapters as a table: name, base model, date, steps, validation loss."""
    import pandas as pd

    from xiaoshuo.adapters import list_adapters

    cols = [t(k, lang) for k in ("train_col_name", "train_col_base", "train_col_created")]
    cols += [t("train_col_steps", lang), t("train_col_eval_loss", lang)]
    rows = []
    for a in reversed(list_adapters(services.settings.paths.checkpoints_dir)):  # newest first
        r = a.row()
        loss = r.get("eval_loss")
        rows.append(
            [
                r["name"],
                _short_model(r.get("base_model")),
                _date(r.get("created")),
                r.get("global_step") if r.get("global_step") is not None else "",
                f"{loss:.4f}" if isinstance(loss, int | float) else t("train_na", lang),
            ]
        )
    return pd.DataFrame(rows, columns=cols)


def on_load(services: Services, lang: str, *, cuda: bool | None = None) -> dict[str, Any]:
    """Everything the page shows on open: the form, QLoRA's explanation, the command, the choices, the
    data prepared earlier, how much text there is and how long training would take, the eval command."""
    values = form_defaults(services, lang, cuda=cuda)
    summary, table = prepared_summary(services, lang)
    return {
        "values": values,
        "qlora_info": qlora_default(services, lang, cuda=cuda)[1],
        "command": command_preview(services, lang, *(values[k] for k in FIELDS)),
        "resume": resume_choices(services, lang),
        "adapters": adapter_table(services, lang),
        "summary": summary,
        "table": table,
        "estimate": estimate_text(services, lang, *(values[k] for k in FIELDS)),
        "eval_command": eval_command(services, lang),
        "style_choices": style_choices(services),
    }


def style_choices(services: Services) -> list[str]:
    """The trained adapters 评估文风 can measure, oldest first (the newest is preselected)."""
    from xiaoshuo.adapters import list_adapters

    return [a.name for a in list_adapters(services.settings.paths.checkpoints_dir)]


def eval_command(services: Services, lang: str) -> str:
    """``xiaoshuo eval style`` for the newest adapter on the prepared data's held-out part (a note
    without an adapter)."""
    from xiaoshuo.adapters import list_adapters

    adapters = list_adapters(services.settings.paths.checkpoints_dir)
    if not adapters:
        return t("train_eval_none", lang)
    newest = adapters[-1]
    cmd = ["xiaoshuo"]
    base = newest.manifest.get("base_model")
    if base:
        cmd += ["--set", f"model.base_model={base}"]
    cmd += ["eval", "style", "--data", str(services.settings.paths.data_dir), "--adapter", str(newest.path)]
    return shlex.join(cmd)


# ----------------------------------------------------------------------------- how much, how long
def _wan(n: float) -> str:
    """A count in 万 (ten thousands): 3 significant figures at most, no trailing zeros."""
    wan = n / 1e4
    return _short(wan) if wan < 10 else f"{round(wan):,}"


def chars_text(chars: int, lang: str) -> str:
    """``340878`` → "34 万字" (under 1 万: "8,000 字")."""
    if chars < 10_000:
        return t("train_chars", lang, n=f"{chars:,}")
    return t("train_wan_chars", lang, wan=_wan(chars), full=f"{chars:,}")


def count_text(n: float, lang: str) -> str:
    """A large count: "1,500 万", "76 亿" (English: digits)."""
    if n >= 1e8:
        yi = n / 1e8
        return t("train_yi", lang, yi=_short(yi), billions=f"{n / 1e9:.1f}")
    if n >= 1e4:
        return t("train_wan", lang, wan=_wan(n), full=f"{round(n):,}")
    return f"{round(n):,}"


def about(seconds: float, lang: str) -> str:
    """A duration as a writer plans with it: "不到 1 分钟", "约 25 分钟", "约 3.5 小时", "约 2 天"."""
    if seconds < 60:
        return t("train_under_minute", lang)
    if seconds < 90 * 60:
        return t("train_about_minutes", lang, n=round(seconds / 60))
    hours = seconds / 3600
    if hours < 48:
        return t("train_about_hours", lang, n=_short(hours) if hours < 10 else round(hours))
    return t("train_about_days", lang, n=_short(hours / 24))


def _short(x: float) -> str:
    """One decimal without a trailing zero: ``3.5``, ``2``."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def estimate_text(services: Services, lang: str, *args: Any, gpus: tuple | None = None) -> str:
    """How much text there is and is needed, and about how long training the form takes on this machine
    (:func:`xiaoshuo.training.estimate.estimate` in words); a note while the form is incomplete."""
    from xiaoshuo.training.estimate import GOOD_STEPS, MIN_STEPS, estimate

    try:
        form = form_values(lang, *args)
    except XiaoshuoError as exc:
        return t("train_preview_invalid", lang, message=exc.received or exc.message)
    est = estimate(
        services.settings,
        base_model=form["base_model"],
        epochs=float(form["epochs"]),
        batch_size=int(form["batch_size"]),
        grad_accum=int(form["grad_accum"]),
        max_seq_length=int(form["max_seq_length"]),
        max_steps=form["max_steps"],
        gpus=gpus,
    )
    needs = est.needs
    lines = [
        t(
            "train_est_needs",
            lang,
            min=chars_text(needs.min_chars, lang),
            good=chars_text(needs.good_chars, lang),
            chunk=f"{needs.tokens_per_sample:,}",
            sample=chars_text(int(round(needs.tokens_per_sample * needs.chars_per_token, -2)), lang),
            per_step=int(form["batch_size"]) * int(form["grad_accum"]),
            epochs=f"{float(form['epochs']):g}",
            min_steps=MIN_STEPS,
            good_steps=GOOD_STEPS,
        )
    ]
    if est.enough == "none" and not form["max_steps"]:
        lines.append(t("train_est_none", lang))
        return "\n\n".join(lines)
    amount = est.amount
    how = t("train_est_exact" if amount.exact else "train_est_guess", lang)
    chars = chars_text(amount.chars, lang)
    lines.append(t("train_est_amount", lang, chars=chars, files=amount.files, how=how))
    lines.append(t(f"train_est_{'little' if est.enough in ('none', 'little') else est.enough}", lang))
    if est.seconds is None:
        lines.append(t("train_est_unknown", lang))
        return "\n\n".join(lines)
    if est.source == "measured":
        why = t("train_est_measured", lang, run=est.measured_run, rate=f"{est.rate:,.0f}")
    else:
        device = (
            t("train_est_gpu", lang, gib=f"{est.device.gib:g}")
            if est.device.kind == "gpu"
            else t("train_est_cpu", lang, cores=est.device.cores)
        )
        why = t("train_est_hardware", lang, device=device, params=count_text(est.params or 0, lang))
    lines.append(
        t(
            "train_est_time",
            lang,
            duration=about(est.seconds, lang),
            steps=f"{est.steps:,}",
            tokens=count_text(est.tokens_trained, lang),
            why=why,
        )
    )
    return "\n\n".join(lines)


# ----------------------------------------------------------------------------- data
def upload(services: Services, lang: str, paths: list[Any] | None) -> str:
    return "\n\n".join(save_uploads(paths or [], services.settings.paths.raw_dir, lang=lang))


def upload_clicked(services: Services, lang: str, paths: list[Any] | None, *args: Any) -> tuple[str, str]:
    """上传: the files' messages and the estimate for the text there is now (form in ``FIELDS`` order)."""
    return upload(services, lang, paths), estimate_text(services, lang, *args)


def source_table(manifest: dict[str, Any], lang: str):
    """The manifest's sources as a table: 文件 / 状态 / 字数 / 编码 / 章节 / 样本 / 错误 (the headers even
    when there is no manifest yet: an empty table would show Gradio's ``1 2 3``)."""
    import pandas as pd

    keys = ("file", "status", "characters", "encoding", "chapters", "samples", "error")
    rows = [
        [
            src.get("path", ""),
            t("train_status_ok" if src.get("status") == "ok" else "train_status_error", lang),
            src.get("characters", 0),
            str(src.get("encoding", "")).upper().replace("_", "-"),
            src.get("chapters", 0),
            src.get("samples", 0),
            _in_language(str(src.get("error", "")), lang),
        ]
        for src in manifest.get("sources", [])
    ]
    return pd.DataFrame(rows, columns=[t(f"train_col_{k}", lang) for k in keys])


_ENGLISH_TAIL = re.compile(r"\s*[(（][\x00-\x7f]*[)）]\s*")
#: Where ``XiaoshuoError.format`` joins the message and its 期望 / 收到 / 解决 parts.
_SEGMENT = re.compile(r"\uff1b(?=\S{2} (?:expected|received|fix):)")
_PART = re.compile(r"\S{2} (expected|received|fix):\s*(.*)", re.S)


def _in_language(text: str, lang: str) -> str:
    """A file's error as the page's language shows it.  In ``zh``: ``XiaoshuoError``'s one line
    ("path: 消息 (English)；期望 expected: …；收到 received: …；解决 fix: …") becomes "消息。解决：…" — the
    file is the table's first column, what was expected and received is for the log (and English)."""
    if lang != "zh" or not CJK.search(text):
        return text
    message, *rest = _SEGMENT.split(text)
    head, sep, tail = message.partition(": ")
    if sep and not CJK.search(head):  # "novel.txt: …"
        message = tail
    parts = [_ENGLISH_TAIL.sub(" ", message).strip().rstrip("。")]
    for part in rest:
        match = _PART.match(part)
        if match and match.group(1) == "fix":
            parts.append(t("train_error_fix", lang, fix=match.group(2).strip()))
    return "。".join(parts)


def prepared_summary(services: Services, lang: str) -> tuple[str, Any]:
    """What an earlier 准备数据 left (its summary and table), shown when the page opens; empty without."""
    path = services.settings.paths.data_dir / "prepared" / "manifest.json"
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return "", source_table({}, lang)
    summary = _summary(services, lang, manifest, str(manifest.get("tokenizer", "")))
    return summary, source_table(manifest, lang)


def _first_sample(services: Services, manifest: dict[str, Any]) -> str:
    for entry in manifest.get("outputs", {}).get("train", {}).values():
        with (services.settings.paths.data_dir / entry["path"]).open(encoding="utf-8") as fh:
            first = fh.readline()
        if first:
            sample = json.loads(first)
            text = sample.get("text") or (sample.get("messages") or [{}])[-1].get("content", "")
            return str(text)[:160]
    return ""


def prepare_data(
    services: Services,
    lang: str,
    tokenizer: str | None,
    *,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[str, Any]:
    """Run ``xiaoshuo.data.prepare`` over ``data/raw`` with ``tokenizer`` as ``data.tokenizer``;
    returns ``(summary markdown, per-file table)``.  When no file was usable the summary says why and
    the table shows each file's error; other failures (no folder, no tokenizer) raise."""
    from xiaoshuo.data import PrepareError, prepare

    s = services.settings
    tok = (tokenizer or "").strip() or tokenizer_for(services, loaded_model(services))
    settings = s.model_copy(update={"data": s.data.model_copy(update={"tokenizer": tok})})

    def report(name: str, done: int, total: int) -> None:
        if progress is not None:
            progress(done / total if total else 1.0, name or t("train_prepare_progress_done", lang))

    compose = None
    if settings.data.sample_format in ("compose", "both"):  # the writer's own prompts, extractive 前情提要
        from xiaoshuo.writing.compose_samples import ComposeSamples

        compose = ComposeSamples(settings)
    try:
        manifest = prepare(settings, progress=report, compose=compose)
    except PrepareError as exc:
        if not exc.manifest:
            raise
        text = t("train_prepare_failed", lang, message=exc.message, fix=exc.fix or "")
        return text, source_table(exc.manifest, lang)
    return _summary(services, lang, manifest, tok), source_table(manifest, lang)


def _summary(services: Services, lang: str, manifest: dict[str, Any], tok: str) -> str:
    totals = manifest.get("totals", {})
    summary = t(
        "train_prepare_done",
        lang,
        **{k: totals.get(k, 0) for k in ("files", "files_ok", "chapters", "samples", "tokens")},
        seconds=manifest.get("seconds", ""),
        tokenizer=_short_model(manifest.get("tokenizer", tok)),
    )
    if totals.get("files_failed"):
        summary += "\n\n" + t("train_prepare_failed_files", lang, n=totals["files_failed"])
    try:
        example = _first_sample(services, manifest)
    except (OSError, ValueError, KeyError):  # an earlier run's files, since removed or damaged
        example = ""
    if example:
        summary += f"\n\n{t('train_prepare_example', lang)}：\n> {example} …"
    return summary


# ----------------------------------------------------------------------------- progress
def duration(seconds: float | None, lang: str) -> str:
    """``95`` → "1 分 35 秒"; ``None`` → "估算中"."""
    if seconds is None or not math.isfinite(seconds):
        return t("train_eta_unknown", lang)
    total = max(0, round(seconds))
    h, rest = divmod(total, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return t("train_hours", lang, h=h, m=m)
    if m:
        return t("train_minutes", lang, m=m, s=f"{sec:02d}")
    return t("train_seconds", lang, s=sec)


def _num(value: Any, lang: str, fmt: str = ".4f") -> str:
    return format(value, fmt) if isinstance(value, int | float) else t("train_na", lang)


def progress_text(events: list[dict[str, Any]], lang: str, *, running: bool = False, run: str = "") -> str:
    """One line in words for the last event of a run's log (步, 损失, 剩余时间 …)."""
    if not events:
        return t("train_progress_waiting", lang) if running else ""
    last = events[-1]
    kind = last.get("event")
    if kind == "log":
        return t(
            "train_progress_log",
            lang,
            step=last.get("step"),
            max_steps=last.get("max_steps"),
            loss=_num(last.get("loss"), lang),
            rate=_num(last.get("tokens_per_s"), lang, ".0f"),
            eta=duration(last.get("eta_s"), lang),
        )
    if kind == "start":
        return t(
            "train_progress_start",
            lang,
            run=last.get("run", run),
            train=last.get("train_samples"),
            val=last.get("val_samples"),
        )
    if kind == "eval":
        return t("train_progress_eval", lang, step=last.get("step"), loss=_num(last.get("eval_loss"), lang))
    if kind == "checkpoint":
        return t("train_progress_checkpoint", lang, step=last.get("step"))
    if kind == "end":
        return t(
            "train_progress_end",
            lang,
            step=last.get("global_step"),
            loss=_num(last.get("train_loss"), lang),
            eval_loss=_num(last.get("eval_loss"), lang),
            seconds=duration(last.get("seconds"), lang),
            run=run or Path(str(last.get("final_model", ""))).parent.name,
        )
    if kind == "stopped":
        return t("train_progress_stopped", lang, step=last.get("step"))
    if kind == "error":
        return t("train_progress_error", lang, message=last.get("message", ""))
    return str(kind)


def loss_axes(lang: str) -> tuple[str, str]:
    """The loss curve's column names, which its axes show: 步 / 损失."""
    return t("train_axis_step", lang), t("train_axis_loss", lang)


def loss_frame(events: list[dict[str, Any]], lang: str = "zh"):
    import pandas as pd

    logs = [e for e in events if e.get("event") == "log"]
    step, loss = loss_axes(lang)
    return pd.DataFrame({step: [e["step"] for e in logs], loss: [e["loss"] for e in logs]})


def start_training(services: Services, lang: str, *args: Any, resume: str | None = None) -> str:
    """Start ``xiaoshuo train`` for the form (or resume a run folder); returns the command line."""
    if resume is not None and not resume:
        raise XiaoshuoError(t("train_resume_pick", lang))
    return services.jobs.start(form_values(lang, *args), resume=resume or None)


# ----------------------------------------------------------------------------- the page's events
def page_load(services: Services, lang: str) -> tuple:
    """What a page visit shows: the form (QLoRA with its explanation), the command, resume choices, adapters,
    the data prepared earlier, the estimate and the eval command — in the order of ``layout``'s
    ``load_outputs``."""
    data = on_load(services, lang)
    values = data["values"]
    updates = [values[k] for k in FIELDS[:-1]]  # qlora is last: its explanation changes with it
    updates.append(gr.update(value=values["qlora"], info=data["qlora_info"]))
    return (
        *updates,
        data["command"],
        gr.update(choices=data["resume"], value=None),
        data["adapters"],
        data["summary"],
        data["table"],
        data["estimate"],
        data["eval_command"],
        gr.update(
            choices=data["style_choices"], value=data["style_choices"][-1] if data["style_choices"] else None
        ),
    )


def prepare_clicked(services: Services, lang: str, tokenizer: str | None, *args: Any, progress=gr.Progress()):  # noqa: B008
    """准备数据 with Gradio's progress bar (``progress`` is injected by Gradio); then the estimate for the
    prepared text (``args``: the form in ``FIELDS`` order)."""
    summary, table = prepare_data(services, lang, tokenizer, progress=lambda f, desc: progress(f, desc=desc))
    return summary, table, estimate_text(services, lang, *args)


def start_clicked(services: Services, lang: str, *args: Any) -> tuple:
    """开始训练: the command line, the poll timer on, nothing drawn yet."""
    return start_training(services, lang, *args), gr.Timer(active=True), {"events": -1}


def resume_clicked(services: Services, lang: str, path: str | None, *args: Any) -> tuple:
    """继续训练 from the chosen run folder."""
    return start_training(services, lang, *args, resume=path or ""), gr.Timer(active=True), {"events": -1}


def poll(services: Services, lang: str, seen: dict | None) -> tuple:
    """The timer's tick: loss curve, progress line, adapter choices, resume choices, adapters table, the
    eval command, the timer (on only while a job runs) and what this page has drawn — all skipped when
    nothing is new."""
    seen = dict(seen or {"events": -1})
    events = services.jobs.events()
    running = services.jobs.running()
    if len(events) == seen["events"]:  # nothing new: leave the page alone
        return (*(gr.skip(),) * 7, gr.Timer(active=running), seen)
    seen["events"] = len(events)
    text = progress_text(events, lang, running=running, run=services.jobs.run or "")
    choices = gr.update(choices=[t("none", lang), *services.adapters()])
    resumable = gr.update(choices=resume_choices(services, lang))
    # The timer runs only while a job does (a ticking timer stalls streaming on the 创作 tab).
    table = adapter_table(services, lang)
    command = eval_command(services, lang)
    style = gr.update(choices=style_choices(services))  # the writer's choice stays
    return (
        loss_frame(events, lang),
        text,
        choices,
        resumable,
        table,
        command,
        style,
        gr.Timer(active=running),
        seen,
    )


# ----------------------------------------------------------------------------- 评估文风
#: Passages the page's 评估文风 measures (the CLI's default is 20: the page keeps a click to minutes).
STYLE_SAMPLES = 8


def style_eval_clicked(services: Services, lang: str, adapter: str | None, progress=gr.Progress()):  # noqa: B008
    """评估文风 with Gradio's progress line (``progress`` is injected by Gradio)."""
    return evaluate_style(services, lang, adapter, progress=lambda message: progress(None, desc=message))


def evaluate_style(
    services: Services, lang: str, adapter: str | None, *, progress: Callable[[str], None] | None = None
) -> tuple[str, Any, Any]:
    """Run :func:`xiaoshuo.eval.style.run_style_eval` for a trained adapter on the loaded engine (the base
    model and the adapter on one engine) over the prepared data's held-out part, store its summary in the
    adapter's manifest, and return ``(summary markdown, table, chart)``."""
    from xiaoshuo.adapters import get_adapter, is_none
    from xiaoshuo.eval.style import record_in_manifest, run_style_eval
    from xiaoshuo.webui.runtime import engine_when_ready

    if not adapter or is_none(adapter):
        raise XiaoshuoError(t("train_style_pick", lang))
    found = get_adapter(services.settings.paths.checkpoints_dir, adapter)
    engine = engine_when_ready(services, lang=lang)
    report = run_style_eval(
        engine,
        data=services.settings.paths.data_dir,
        adapter=services.lora_for(engine, adapter),
        samples=STYLE_SAMPLES,
        model=str(services.engine.model or ""),
        progress=progress,
    )
    record_in_manifest(found.path, report)
    return style_text(report, lang), style_table(report, lang), style_chart(report, lang)


def _style_label(key: str, lang: str) -> str:
    name = f"train_style_{key}"
    from xiaoshuo.webui.locale import STRINGS

    return t(name, lang) if name in STRINGS else key


def style_text(report: dict[str, Any], lang: str) -> str:
    """The verdict in words: closer or not, by how much, the perplexity, what was measured."""
    base, adapter = report["base"], report.get("adapter") or {}
    b, a = base["style_distance"], adapter.get("style_distance")
    if a is None:
        return ""
    percent = round(100 * (b - a) / b) if b else 0
    key = "train_style_closer" if a < b else "train_style_not_closer"
    lines = [t(key, lang, base=f"{b:.3f}", adapter=f"{a:.3f}", percent=percent)]
    if base.get("perplexity") is not None and adapter.get("perplexity") is not None:
        lines.append(
            t(
                "train_style_perplexity",
                lang,
                base=f"{base['perplexity']:.2f}",
                adapter=f"{adapter['perplexity']:.2f}",
            )
        )
    lines.append(t("train_style_samples", lang, samples=report.get("samples"), chars=report.get("chars")))
    return "\n\n".join(lines)


def style_table(report: dict[str, Any], lang: str):
    """Per feature: the distance from the author's text of the base model and of the adapter, the gain."""
    import pandas as pd

    base, adapter = report["base"], report.get("adapter") or {}
    rows = []
    for key, value in base["components"].items():
        a = (adapter.get("components") or {}).get(key)
        rows.append(
            [_style_label(key, lang), round(value, 4), _round(a), _round(None if a is None else value - a)]
        )
    for key, label in (("style_distance", "train_style_total"), ("perplexity", "train_style_ppl")):
        b, a = base.get(key), adapter.get(key)
        gain = None if b is None or a is None else b - a
        rows.append([t(label, lang), _round(b), _round(a), _round(gain)])
    return pd.DataFrame(rows, columns=style_columns(lang))


def style_columns(lang: str) -> list[str]:
    """The style table's headers (shown before any result too: Gradio's default is ``1 2 3``)."""
    return [t(f"train_style_col_{k}", lang) for k in ("feature", "base", "adapter", "gain")]


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, int | float) else t("train_na")


def style_chart(report: dict[str, Any], lang: str):
    """Grouped bars (plotly): each feature's distance from the author for the base model and the adapter."""
    import plotly.graph_objects as go

    base, adapter = report["base"], report.get("adapter") or {}
    keys = list(base["components"])
    labels = [_style_label(k, lang) for k in keys]
    fig = go.Figure()
    fig.add_bar(name=t("train_style_col_base", lang), x=labels, y=[base["components"][k] for k in keys])
    if adapter.get("components"):
        fig.add_bar(
            name=t("train_style_col_adapter", lang), x=labels, y=[adapter["components"][k] for k in keys]
        )
    fig.update_layout(
        barmode="group", yaxis_title=t("train_style_axis", lang), height=360, template="plotly_white"
    )
    return fig
