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
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.services import Services, save_uploads

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
    """Everything the page shows on open: the form, QLoRA's explanation, the command, the choices."""
    values = form_defaults(services, lang, cuda=cuda)
    return {
        "values": values,
        "qlora_info": qlora_default(services, lang, cuda=cuda)[1],
        "command": command_preview(services, lang, *(values[k] for k in FIELDS)),
        "resume": resume_choices(services, lang),
        "adapters": adapter_table(services, lang),
    }


# ----------------------------------------------------------------------------- data
def upload(services: Services, lang: str, paths: list[Any] | None) -> str:
    return "\n\n".join(save_uploads(paths or [], services.settings.paths.raw_dir, lang=lang))


def source_table(manifest: dict[str, Any], lang: str):
    """The manifest's sources as a table: 文件 / 状态 / 编码 / 章节 / 样本 / 错误."""
    import pandas as pd

    keys = ("file", "status", "encoding", "chapters", "samples", "error")
    rows = [
        [
            src.get("path", ""),
            t("train_status_ok" if src.get("status") == "ok" else "train_status_error", lang),
            src.get("encoding", ""),
            src.get("chapters", 0),
            src.get("samples", 0),
            src.get("error", ""),
        ]
        for src in manifest.get("sources", [])
    ]
    return pd.DataFrame(rows, columns=[t(f"train_col_{k}", lang) for k in keys])


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

    try:
        manifest = prepare(settings, progress=report)
    except PrepareError as exc:
        if not exc.manifest:
            raise
        text = t("train_prepare_failed", lang, message=exc.message, fix=exc.fix or "")
        return text, source_table(exc.manifest, lang)
    totals = manifest["totals"]
    summary = t(
        "train_prepare_done",
        lang,
        **{k: totals[k] for k in ("files", "files_ok", "chapters", "samples", "tokens")},
        seconds=manifest.get("seconds", ""),
        tokenizer=_short_model(manifest.get("tokenizer", tok)),
    )
    if totals["files_failed"]:
        summary += "\n\n" + t("train_prepare_failed_files", lang, n=totals["files_failed"])
    example = _first_sample(services, manifest)
    if example:
        summary += f"\n\n{t('train_prepare_example', lang)}：\n> {example} …"
    return summary, source_table(manifest, lang)


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


def loss_frame(events: list[dict[str, Any]]):
    import pandas as pd

    logs = [e for e in events if e.get("event") == "log"]
    return pd.DataFrame({"step": [e["step"] for e in logs], "loss": [e["loss"] for e in logs]})


def start_training(services: Services, lang: str, *args: Any, resume: str | None = None) -> str:
    """Start ``xiaoshuo train`` for the form (or resume a run folder); returns the command line."""
    if resume is not None and not resume:
        raise XiaoshuoError(t("train_resume_pick", lang))
    return services.jobs.start(form_values(lang, *args), resume=resume or None)


# ----------------------------------------------------------------------------- the page's events
def page_load(services: Services, lang: str) -> tuple:
    """What a page visit shows: the form (QLoRA with its explanation), the command, resume choices, adapters
    — in the order of ``layout``'s ``load_outputs``."""
    data = on_load(services, lang)
    values = data["values"]
    updates = [values[k] for k in FIELDS[:-1]]  # qlora is last: its explanation changes with it
    updates.append(gr.update(value=values["qlora"], info=data["qlora_info"]))
    return *updates, data["command"], gr.update(choices=data["resume"], value=None), data["adapters"]


def prepare_clicked(services: Services, lang: str, tokenizer: str | None, progress=gr.Progress()):  # noqa: B008
    """准备数据 with Gradio's progress bar (``progress`` is injected by Gradio)."""
    return prepare_data(services, lang, tokenizer, progress=lambda f, desc: progress(f, desc=desc))


def start_clicked(services: Services, lang: str, *args: Any) -> tuple:
    """开始训练: the command line, the poll timer on, nothing drawn yet."""
    return start_training(services, lang, *args), gr.Timer(active=True), {"events": -1}


def resume_clicked(services: Services, lang: str, path: str | None, *args: Any) -> tuple:
    """继续训练 from the chosen run folder."""
    return start_training(services, lang, *args, resume=path or ""), gr.Timer(active=True), {"events": -1}


def poll(services: Services, lang: str, seen: dict | None) -> tuple:
    """The timer's tick: loss curve, progress line, adapter choices, resume choices, adapters table,
    the timer (on only while a job runs) and what this page has drawn — all skipped when nothing is new."""
    seen = dict(seen or {"events": -1})
    events = services.jobs.events()
    running = services.jobs.running()
    if len(events) == seen["events"]:  # nothing new: leave the page alone
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=running), seen
    seen["events"] = len(events)
    text = progress_text(events, lang, running=running, run=services.jobs.run or "")
    choices = gr.update(choices=[t("none", lang), *services.adapters()])
    resumable = gr.update(choices=resume_choices(services, lang))
    # The timer runs only while a job does (a ticking timer stalls streaming on the 创作 tab).
    table = adapter_table(services, lang)
    return loss_frame(events), text, choices, resumable, table, gr.Timer(active=running), seen
