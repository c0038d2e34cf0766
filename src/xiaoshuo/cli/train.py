"""``xiaoshuo train``: LoRA/QLoRA fine-tuning (thin over :mod:`xiaoshuo.training`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from xiaoshuo.cli.state import cli_state

app = typer.Typer()


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    data: Annotated[
        Path | None, typer.Option("--data", help="prepare's output folder (default: data_dir).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="Runs folder (default: checkpoints/).")
    ] = None,
    run: Annotated[str | None, typer.Option("--run", help="Run name (default: a timestamp).")] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Continue: 'latest', a run folder or a checkpoint folder.",
        ),
    ] = None,
    base_model: Annotated[str | None, typer.Option("--base-model", help="Base model path or hub id.")] = None,
    epochs: Annotated[float | None, typer.Option("--epochs", help="Training epochs (3).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Per-device batch size (2).")] = None,
    grad_accum: Annotated[int | None, typer.Option("--grad-accum", help="Gradient accumulation (8).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Learning rate (2e-4).")] = None,
    lora_r: Annotated[int | None, typer.Option("--lora-r", help="LoRA rank (64).")] = None,
    max_seq_length: Annotated[
        int | None, typer.Option("--max-seq-length", help="Max tokens per sample.")
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", help="Stop after N optimizer steps.")
    ] = None,
    eval_steps: Annotated[int | None, typer.Option("--eval-steps")] = None,
    save_steps: Annotated[int | None, typer.Option("--save-steps")] = None,
    logging_steps: Annotated[int | None, typer.Option("--logging-steps")] = None,
    qlora: Annotated[
        bool | None, typer.Option("--qlora/--no-qlora", help="4-bit QLoRA (model.load_in_4bit).")
    ] = None,
    gradient_checkpointing: Annotated[
        bool | None, typer.Option("--gradient-checkpointing/--no-gradient-checkpointing")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    eval_style: Annotated[
        bool | None,
        typer.Option(
            "--eval-style/--no-eval-style",
            help="After training, measure the adapter's style on the val split (xiaoshuo eval style) and "
            "store it in its manifest (training.eval_style).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final manifest as JSON.")] = False,
) -> None:
    """LoRA/QLoRA 微调 / Fine-tune an adapter on prepared data (resumable, with an event log)."""
    from xiaoshuo.training import plan, resume_changes, train

    settings = cli_state(ctx).settings(
        **{
            "model.base_model": base_model,
            "training.num_train_epochs": epochs,
            "training.per_device_train_batch_size": batch_size,
            "training.gradient_accumulation_steps": grad_accum,
            "training.learning_rate": lr,
            "model.lora_r": lora_r,
            "training.max_seq_length": max_seq_length,
            "training.eval_steps": eval_steps,
            "training.save_steps": save_steps,
            "training.logging_steps": logging_steps,
            "model.load_in_4bit": qlora,
            "training.gradient_checkpointing": gradient_checkpointing,
            "training.seed": seed,
            "training.eval_style": eval_style,
        }
    )
    want_resume: str | bool | None = True if resume == "latest" else resume
    p = plan(settings, data=data, output=output, run=run, resume=want_resume, max_steps=max_steps)
    err = typer.echo
    if p.resume_from is not None:
        changes = resume_changes(p)
        err(f"继续训练 resuming {p.run} from {p.resume_from}", err=True)
        if changes["take_effect"]:
            err("  生效的改动 changes that take effect: " + ", ".join(changes["take_effect"]), err=True)
        if changes["ignored"]:
            err(
                "  不生效的改动 changes that do NOT take effect (optimizer/scheduler state restored): "
                + ", ".join(changes["ignored"]),
                err=True,
            )
    err(f"事件日志 events: {settings.paths.logs_dir / f'train-{p.run}.jsonl'}", err=True)
    result = train(p, progress=not as_json)
    if result["status"] == "done" and settings.training.eval_style:
        from xiaoshuo.errors import XiaoshuoError
        from xiaoshuo.eval.style import evaluate_trained_adapter, style_summary

        err("文风评估 style eval on the val split …", err=True)
        try:
            report = evaluate_trained_adapter(
                settings, result["final_model"], p.data.root, progress=lambda msg: err(msg, err=True)
            )
            result["style_eval"] = style_summary(report)  # what the manifest now holds
        except XiaoshuoError as exc:  # the adapter is trained and saved; only its measurement failed
            err(f"! 文风评估失败 style eval failed (the adapter is saved): {exc}", err=True)
            result["style_eval"] = {"error": str(exc)}
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    elif result["status"] == "stopped":
        step = result["global_step"]
        typer.echo(f"已停止 stopped at step {step}; 继续 resume: xiaoshuo train --resume {p.run_dir}")
    else:
        eval_loss = result["eval_loss"]
        typer.echo(
            f"完成 done: {result['final_model']} (step {result['global_step']}, train loss "
            f"{result['train_loss']:.4f}, eval loss {'-' if eval_loss is None else f'{eval_loss:.4f}'})"
        )
        style = result.get("style_eval")
        if style and "error" not in style:
            typer.echo(
                f"文风距离 style distance: base {style['base_style_distance']} → adapter "
                f"{style['adapter_style_distance']} (gain {style['style_gain']}); "
                f"每字困惑度 perplexity per 字: base {style['base_perplexity']} → "
                f"adapter {style['adapter_perplexity']}"
            )
