"""``train``: LoRA / QLoRA fine-tuning on prepared data, with resume, events and a final adapter.

Trainer choice: the plain Hugging Face ``Trainer`` with peft, not TRL's
``SFTTrainer``.  We tokenize and mask ourselves (``training/data.py``: loss only on
the assistant turn for any chat template, no ``{% generation %}`` markers), so
SFTTrainer's dataset handling would be a second, implicit tokenizer path; what we
need from a trainer — checkpoints, exact resume, eval, length-grouped sampling,
gradient accumulation, ``accelerate launch`` for several GPUs — ``Trainer`` has.

Batching is chosen by hardware and reported: on CPU length-grouped padded
batches (packing/padding-free is ~1.5x slower there, no varlen kernel); on a GPU
with flash-attn installed, padding-free batches (``DataCollatorWithFlattening``)
with FlashAttention-2; otherwise length-grouped padding.

A run lives in ``checkpoints/<run>/``: ``run.json`` (what fixes the run: base
model, data hash, shape hyperparameters), ``checkpoint-N/`` and, at the end,
``final_model/`` (adapter + tokenizer + ``xiaoshuo_manifest.json``);
``checkpoints/final_model`` points at the latest one (the seed's path).  Events
go to ``logs/train-<run>.jsonl``.  This module does not serve or merge adapters.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xiaoshuo.adapters import FINAL, MANIFEST  # the registry owns the adapter layout
from xiaoshuo.config import Settings
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.files import atomic_write_json
from xiaoshuo.training.data import (
    DataFiles,
    TrainDataError,
    check_tokenizer_matches,
    find_data,
    read_samples,
    tokenize,
)

log = logging.getLogger(__name__)

# Changing these mid-run would make the resumed run a different run: refused.
FIXED_KEYS = (
    "base_model",
    "data_manifest_sha256",
    "training.per_device_train_batch_size",
    "training.gradient_accumulation_steps",
    "training.max_seq_length",
    "training.seed",
    "model.lora_r",
    "model.lora_alpha",
    "model.lora_dropout",
    "model.lora_target_modules",
    "model.load_in_4bit",
)
# These take effect when changed on resume (training length and bookkeeping).
EFFECTIVE_KEYS = (
    "training.num_train_epochs",
    "max_steps",
    "training.eval_steps",
    "training.save_steps",
    "training.logging_steps",
)
# The optimizer and scheduler state are restored from the checkpoint: these do not.
RESTORED_KEYS = ("training.learning_rate", "training.warmup_ratio")


class TrainError(XiaoshuoError):
    """Training cannot start or resume as asked."""


@dataclass
class TrainPlan:
    settings: Settings
    run: str
    run_dir: Path
    data: DataFiles
    resume_from: Path | None
    max_steps: int | None
    record: dict[str, Any]


def plan(
    settings: Settings,
    *,
    data: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    run: str | None = None,
    resume: str | bool | None = None,
    max_steps: int | None = None,
) -> TrainPlan:
    """Everything checkable before a model is loaded: data, base model, run folder, resume."""
    files = find_data(Path(data) if data is not None else settings.paths.data_dir)
    base = settings.model.base_model
    _check_base_model(base)
    check_tokenizer_matches(files, base)
    out = Path(output) if output is not None else settings.paths.checkpoints_dir
    resume_from: Path | None = None
    if resume:
        run_dir, resume_from = _find_resume(out, run, None if resume is True else Path(str(resume)))
        run = run_dir.name
    else:
        run = run or time.strftime("%Y%m%d-%H%M%S")
        run_dir = out / run
        if run_dir.exists() and any(run_dir.glob("checkpoint-*")):
            raise TrainError(
                f"训练 {run} 已存在 (run already exists)",
                expected="a new run name, or --resume to continue it",
                received=str(run_dir),
                fix="加 --resume 继续，或换一个 --run 名称",
            )
    record = _run_record(settings, files, max_steps)
    if resume_from is not None:
        _check_resume(run_dir, record)
    return TrainPlan(settings, run, run_dir, files, resume_from, max_steps, record)


def _check_base_model(base: str) -> None:
    looks_local = base.startswith(("/", ".", "~")) or base.count("/") != 1
    if looks_local and not Path(base).expanduser().is_dir():
        raise TrainError(
            "基础模型目录不存在 (base model folder not found)",
            expected="a local model folder with config.json, or a hub id like Qwen/Qwen2.5-7B-Instruct",
            received=base,
            fix="检查 --base-model / model.base_model",
        )


def _run_record(settings: Settings, files: DataFiles, max_steps: int | None) -> dict[str, Any]:
    flat = {key: value for key, value, _, _ in settings.items()}
    keys = {
        "base_model": settings.model.base_model,
        "data_manifest_sha256": files.manifest_sha256,
        "max_steps": max_steps,
    }
    for key in FIXED_KEYS + EFFECTIVE_KEYS + RESTORED_KEYS:
        if key in flat:
            keys[key] = flat[key] if not isinstance(flat[key], Path) else str(flat[key])
    return keys


def _find_resume(out: Path, run: str | None, path: Path | None) -> tuple[Path, Path]:
    if path is not None:
        if path.name.startswith("checkpoint-") and path.is_dir():
            return path.parent, path
        if path.is_dir():
            return path, _latest_checkpoint(path)
        raise TrainError(
            "找不到要继续的检查点 (checkpoint not found)",
            received=str(path),
            expected="a run folder or a checkpoint-N folder",
        )
    if run is not None:
        return out / run, _latest_checkpoint(out / run)
    runs = sorted((p for p in out.glob("*/run.json")), key=lambda p: p.stat().st_mtime)
    runs = [p.parent for p in runs if any(p.parent.glob("checkpoint-*"))]
    if not runs:
        raise TrainError(
            "没有可以继续的训练 (no run to resume)",
            expected=f"a run with checkpoints under {out}",
            received="none",
            fix="去掉 --resume 开始新训练",
        )
    return runs[-1], _latest_checkpoint(runs[-1])


def _latest_checkpoint(run_dir: Path) -> Path:
    ckpts = [p for p in run_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    if not ckpts:
        raise TrainError(
            "该训练没有检查点 (no checkpoint in this run)",
            received=str(run_dir),
            fix="去掉 --resume 重新开始",
        )
    return max(ckpts, key=lambda p: int(p.name.split("-")[-1]))


def _check_resume(run_dir: Path, record: dict[str, Any]) -> list[str]:
    try:
        previous = json.loads((run_dir / "run.json").read_text("utf-8"))
    except (OSError, ValueError):
        raise TrainError("训练目录缺少 run.json (run.json missing)", received=str(run_dir)) from None
    changed = [k for k in FIXED_KEYS if previous.get(k) != record.get(k)]
    if changed:
        raise TrainError(
            "不能用不同的数据或模型继续训练 (cannot resume with changed data or model)",
            expected="the same " + ", ".join(changed) + " as the run being resumed",
            received="; ".join(f"{k}: {previous.get(k)!r} → {record.get(k)!r}" for k in changed),
            fix="恢复原来的设置，或开始一个新训练（去掉 --resume）",
        )
    return [k for k in EFFECTIVE_KEYS + RESTORED_KEYS if previous.get(k) != record.get(k)]


def resume_changes(plan_: TrainPlan) -> dict[str, list[str]]:
    """Which changed hyperparameters take effect on this resume, and which do not."""
    if plan_.resume_from is None:
        return {"take_effect": [], "ignored": []}
    changed = _check_resume(plan_.run_dir, plan_.record)
    return {
        "take_effect": [k for k in changed if k in EFFECTIVE_KEYS],
        "ignored": [k for k in changed if k in RESTORED_KEYS],
    }


def train(plan_: TrainPlan, *, progress: bool = True) -> dict[str, Any]:
    """Run the plan; return the final manifest (``status`` ``done`` or ``stopped``)."""
    from xiaoshuo.training.events import EventLog, ProgressCallback, StopOnSignal
    from xiaoshuo.training.model import build_trainer

    settings = plan_.settings
    plan_.run_dir.mkdir(parents=True, exist_ok=True)
    events = EventLog(settings.paths.logs_dir / f"train-{plan_.run}.jsonl")
    changes = resume_changes(plan_)
    started = time.perf_counter()
    try:
        tokenizer = _load_tokenizer(settings.model.base_model)
        samples = read_samples(plan_.data.train)
        if any("messages" in s for s in samples) and not getattr(tokenizer, "chat_template", None):
            raise TrainDataError(
                "数据是对话格式，但基础模型的分词器没有对话模板 (messages data needs a chat template)",
                expected="an instruct/chat base model (e.g. Qwen2.5-*-Instruct)",
                received=settings.model.base_model,
                fix="换用带对话模板的模型，或 prepare --format continuation",
            )
        max_len = settings.training.max_seq_length
        train_rows, dropped = tokenize(samples, tokenizer, max_len)
        val_rows, _ = (
            tokenize(read_samples(plan_.data.val), tokenizer, max_len) if plan_.data.val else ([], 0)
        )
        if not train_rows:
            raise TrainDataError(
                "分词后没有可训练的样本 (no trainable samples after tokenization)",
                received=f"{len(samples)} samples, {dropped} dropped",
            )
        atomic_write_json(plan_.run_dir / "run.json", {**plan_.record, "run": plan_.run, "created": _now()})
        stopper = StopOnSignal()
        callbacks = [events.callback(), stopper]
        if progress:
            callbacks.append(ProgressCallback())
        trainer, strategy = build_trainer(plan_, tokenizer, train_rows, val_rows, callbacks)
        events.write(
            "start",
            run=plan_.run,
            config=settings.to_plain(),
            data=str(plan_.data.root),
            data_manifest_sha256=plan_.data.manifest_sha256,
            train_samples=len(train_rows),
            val_samples=len(val_rows),
            dropped_samples=dropped,
            strategy=strategy,
            resume_from=str(plan_.resume_from) if plan_.resume_from else None,
            resume_changes=changes,
        )
        with stopper.installed():
            result = trainer.train(
                resume_from_checkpoint=str(plan_.resume_from) if plan_.resume_from else None
            )
        state = trainer.state
        if stopper.stopped:
            ckpt = plan_.run_dir / f"checkpoint-{state.global_step}"
            events.write("stopped", step=state.global_step, checkpoint=str(ckpt))
            return {
                "status": "stopped",
                "run": plan_.run,
                "global_step": state.global_step,
                "checkpoint": str(ckpt),
            }
        metrics = trainer.evaluate() if val_rows else {}
        eval_loss = metrics.get("eval_loss")  # the callback logged it as an "eval" event
        manifest = {
            "run": plan_.run,
            "base_model": settings.model.base_model,
            "data": str(plan_.data.root),
            "data_manifest_sha256": plan_.data.manifest_sha256,
            "config": settings.to_plain(),
            "strategy": strategy,
            "global_step": state.global_step,
            "train_loss": result.training_loss,
            "eval_loss": eval_loss,
            "eval_perplexity": _ppl(eval_loss) if eval_loss is not None else None,
            "seconds": round(time.perf_counter() - started, 2),
            "created": _now(),
            "status": "done",
        }
        final = _save_final(trainer, tokenizer, plan_, manifest)
        manifest["final_model"] = str(final)
        events.write(
            "end",
            **{k: manifest[k] for k in ("global_step", "train_loss", "eval_loss", "seconds")},
            final_model=str(final),
        )
        return manifest
    except BaseException as exc:
        events.write("error", message=str(exc), type=type(exc).__name__)
        raise
    finally:
        events.close()


def _load_tokenizer(base: str):
    from xiaoshuo.hf import load_tokenizer

    tok = load_tokenizer(base, setting="--base-model / model.base_model")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _save_final(trainer: Any, tokenizer: Any, plan_: TrainPlan, manifest: dict[str, Any]) -> Path:
    final = plan_.run_dir / FINAL
    tmp = plan_.run_dir / f".{FINAL}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    atomic_write_json(tmp / MANIFEST, {**manifest, "final_model": str(final)})
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    alias = plan_.run_dir.parent / FINAL  # checkpoints/final_model → the newest run's
    if alias.is_symlink() or not alias.exists():
        link_tmp = plan_.run_dir.parent / f".{FINAL}.link-{os.getpid()}"
        link_tmp.unlink(missing_ok=True)
        link_tmp.symlink_to(Path(plan_.run) / FINAL)
        os.replace(link_tmp, alias)
    return final


def _ppl(loss: float) -> float:
    return math.exp(min(loss, 50.0))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
