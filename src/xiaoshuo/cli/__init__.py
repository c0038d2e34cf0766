"""The ``xiaoshuo`` command line: thin typer commands over the Python API.

Every command loads settings through :func:`xiaoshuo.config.load` and calls one
API function; it formats results and errors, nothing else.  Heavy libraries
(torch, vllm, chromadb) are imported inside commands, never at module level, so
``xiaoshuo --help`` stays fast.  Core errors (:class:`XiaoshuoError`) become one
clear line on stderr and a non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from xiaoshuo import __version__
from xiaoshuo.cli_state import CliState, _state
from xiaoshuo.config import parse_assignment
from xiaoshuo.errors import XiaoshuoError

EXIT_ERROR = 2

app = typer.Typer(
    name="xiaoshuo",
    help="xiaoshuo 中文小说写作AI系统 — vLLM + LoRA + ChromaDB. Local Chinese novel-writing assistant.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"xiaoshuo {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            metavar="FILE",
            help="config.toml to read (default: ./config.toml or $XIAOSHUO_CONFIG).",
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            metavar="KEY=VALUE",
            help="Override one key: --set training.learning_rate=1e-4 (repeatable).",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """xiaoshuo 中文小说写作AI系统."""
    overrides = dict(parse_assignment(item) for item in (set_ or []))
    ctx.obj = CliState(config_file=config, overrides=overrides, debug=debug)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command("config")
def config_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    describe: Annotated[
        bool, typer.Option("--describe", "-d", help="Also show what each key means.")
    ] = False,
) -> None:
    """显示生效的配置及每项的来源 / Show the effective config and where each value came from."""
    settings = _state(ctx).settings()
    if as_json:
        payload = {
            "config_file": str(settings.config_file) if settings.config_file else None,
            "settings": settings.to_plain(),
            "sources": {key: source for key, _, source, _ in settings.items()},
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"xiaoshuo config — file: {settings.config_file or '(none, defaults)'}")
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="ellipsis", no_wrap=True, max_width=40)
    table.add_column("source", overflow="fold")
    if describe:
        table.add_column("description", overflow="fold")
    plain = settings.to_plain()
    for key, _, source, description in settings.items():
        section, name = key.split(".", 1)
        cells = [key, json.dumps(plain[section][name], ensure_ascii=False), source]
        style = None if source == "default" else "bold cyan"
        table.add_row(*cells, *([description] if describe else []), style=style)
    Console().print(table)


@app.command("doctor")
def doctor_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    smoke: Annotated[
        bool,
        typer.Option("--smoke", help="Build a tiny random model and generate a few tokens (offline)."),
    ] = False,
) -> None:
    """检查系统状态 / Check Python, torch, GPU, vLLM, backends, models and disk."""
    from xiaoshuo.hardware import diagnose, run_smoke

    settings = _state(ctx).settings()
    report = diagnose(settings)
    if smoke:
        report.smoke = [vars(r) for r in run_smoke(settings)]
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        from xiaoshuo.cli_render import render_doctor

        render_doctor(report)
    if smoke and not all(r["ok"] for r in report.smoke):
        raise typer.Exit(1)


@app.command("prepare")
def prepare_cmd(
    ctx: typer.Context,
    input_dir: Annotated[
        Path | None, typer.Option("--input", "-i", help="Folder of novels (default: <data_dir>/raw).")
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Writes train/, val/, prepared/ under it (default: data_dir)."),
    ] = None,
    sample: Annotated[
        bool, typer.Option("--sample", help="Write the built-in sample corpus into the input folder first.")
    ] = False,
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", help="Max tokens per sample (2048).")
    ] = None,
    overlap: Annotated[
        int | None, typer.Option("--overlap", help="Tokens repeated between chunks (0).")
    ] = None,
    val_split: Annotated[
        float | None, typer.Option("--val-split", help="Share of documents for val (0.1).")
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            "--tokenizer", help="Tokenizer path or hub id (default model.base_model; builtin-tiny offline)."
        ),
    ] = None,
    sample_format: Annotated[
        str | None, typer.Option("--format", help="continuation | instruction | both.")
    ] = None,
    to_simplified: Annotated[
        bool | None, typer.Option("--to-simplified/--keep-traditional", help="Convert 繁体 to 简体 (OpenCC).")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the train/val split (42).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """准备训练数据 / Clean, split and chunk novels in data/raw into train/val JSONL."""
    from rich.console import Console

    from xiaoshuo.cli_render import prepare_progress, render_prepare
    from xiaoshuo.data import PrepareError, prepare, write_sample_corpus

    settings = _state(ctx).settings(
        **{
            "data.chunk_size": chunk_size,
            "data.chunk_overlap": overlap,
            "data.val_split": val_split,
            "data.tokenizer": tokenizer,
            "data.sample_format": sample_format,
            "data.to_simplified": to_simplified,
            "data.seed": seed,
        }
    )
    err = Console(stderr=True)
    raw = input_dir or settings.paths.raw_dir
    if sample:
        written = write_sample_corpus(raw)
        err.print(f"已写入示例语料 sample corpus: {len(written)} files → {raw}")
    try:
        with prepare_progress(err) as on_progress:
            manifest = prepare(settings, input_dir=raw, output_dir=output_dir, progress=on_progress)
    except PrepareError as exc:
        if exc.manifest is not None and not as_json:
            render_prepare(exc.manifest, err)
        raise
    if as_json:
        typer.echo(json.dumps(manifest, ensure_ascii=False, indent=2))
    else:
        render_prepare(manifest, Console())


@app.command("inference")
def inference_cmd(
    ctx: typer.Context,
    prompt: Annotated[
        str | None, typer.Option("--prompt", "-p", help="Generate once; without it: interactive.")
    ] = None,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Send the prompt as plain text to continue (default: a chat message)."),
    ] = False,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model path or hub id.")] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help="auto | vllm | openai | transformers.")
    ] = None,
    lora: Annotated[
        list[str] | None, typer.Option("--lora", help="Adapter as name=path or path (repeatable).")
    ] = None,
    adapter: Annotated[
        str | None, typer.Option("--adapter", help="Adapter to use (default: the first --lora; none = base).")
    ] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", "-t")] = None,
    top_p: Annotated[float | None, typer.Option("--top-p")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k")] = None,
    min_p: Annotated[float | None, typer.Option("--min-p")] = None,
    repetition_penalty: Annotated[float | None, typer.Option("--repetition-penalty")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens")] = None,
    stop: Annotated[list[str] | None, typer.Option("--stop", help="Stop string (repeatable).")] = None,
    n: Annotated[int | None, typer.Option("--n", help="Number of candidates.")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per candidate at the end.")
    ] = False,
) -> None:
    """推理测试 / Generate text: stream one answer, or chat interactively."""
    from xiaoshuo.engine import GenerationRequest, SamplingSettings, load_engine, parse_lora_specs

    settings = _state(ctx).settings()
    # Everything that can be wrong is checked before the (slow) engine starts.
    sampling = SamplingSettings.from_config(
        settings.generation,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        min_p=min_p,
        repetition_penalty=repetition_penalty,
        max_tokens=max_tokens,
        stop=tuple(stop) if stop else None,
        n=n,
        seed=seed,
    )
    adapters = parse_lora_specs(lora)
    use = adapter if adapter is not None else next(iter(adapters), None)
    if use is not None and use.lower() != "none" and use not in adapters:
        from xiaoshuo.engine import EngineError

        raise EngineError(
            "未知的 --adapter (unknown adapter)",
            expected="one of " + ", ".join(adapters) if adapters else "an adapter given with --lora",
            received=use,
        )
    if prompt is not None:
        GenerationRequest(prompt=prompt, sampling=sampling)  # validates the prompt
    from xiaoshuo.cli_render import run_inference

    with load_engine(settings, backend=backend, model=model, lora=adapters) as engine:
        run_inference(engine, prompt, sampling=sampling, raw=raw, lora=use, as_json=as_json)


@app.command("serve")
def serve_cmd(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model path or hub id.")] = None,
    lora: Annotated[list[str] | None, typer.Option("--lora", help="Adapter name=path (repeatable).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port.")] = 8000,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the command only.")] = False,
) -> None:
    """启动本地 vLLM OpenAI 兼容服务器 / Start a local vLLM OpenAI-compatible server."""
    import os
    import subprocess

    from xiaoshuo.engine import parse_lora_specs
    from xiaoshuo.engine.openai_backend import serve_command
    from xiaoshuo.hardware import torch_status

    settings = _state(ctx).settings()
    cmd = serve_command(settings, model=model, adapters=parse_lora_specs(lora), host=host, port=port)
    env = dict(os.environ)
    if not dry_run and not torch_status().get("cuda_available"):
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.engine.cpu_kv_cache_gib))
    typer.echo(" ".join(cmd))
    if dry_run:
        return
    raise typer.Exit(subprocess.run(cmd, env=env).returncode)


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
    as_json: Annotated[bool, typer.Option("--json", help="Print the final manifest as JSON.")] = False,
) -> None:
    """LoRA/QLoRA 微调 / Fine-tune an adapter on prepared data (resumable, with an event log)."""
    from xiaoshuo.training import plan, resume_changes, train

    settings = _state(ctx).settings(
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


adapters_app = typer.Typer(
    help="适配器 / Trained LoRA adapters (the registry under checkpoints/).", no_args_is_help=True
)
app.add_typer(adapters_app, name="adapters")


@adapters_app.command("list")
def adapters_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List adapters: name, base model, date, val loss."""
    from xiaoshuo.training import list_adapters

    rows = [a.row() for a in list_adapters(_state(ctx).settings().paths.checkpoints_dir)]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="适配器 Adapters")
    for col in ("name", "base_model", "created", "step", "eval_loss"):
        table.add_column(col, overflow="fold")
    for r in rows:
        loss = f"{r['eval_loss']:.4f}" if isinstance(r["eval_loss"], float) else "-"
        table.add_row(r["name"], str(r["base_model"]), str(r["created"]), str(r["global_step"]), loss)
    Console().print(table)


@adapters_app.command("show")
def adapters_show(ctx: typer.Context, name: str) -> None:
    """Show an adapter's manifest."""
    from xiaoshuo.training import get_adapter

    adapter = get_adapter(_state(ctx).settings().paths.checkpoints_dir, name)
    typer.echo(json.dumps({"path": str(adapter.path), **adapter.manifest}, ensure_ascii=False, indent=2))


@adapters_app.command("merge")
def adapters_merge(
    ctx: typer.Context,
    name: str,
    output: Annotated[Path, typer.Option("--output", "-o", help="New model folder.")],
) -> None:
    """Merge an adapter into its base model (a standalone model for deployment)."""
    from xiaoshuo.training import merge_adapter

    out = merge_adapter(_state(ctx).settings().paths.checkpoints_dir, name, output)
    typer.echo(f"已合并 merged → {out}")


@adapters_app.command("rm")
def adapters_rm(
    ctx: typer.Context, name: str, yes: Annotated[bool, typer.Option("--yes", help="Really delete.")] = False
) -> None:
    """Delete a run and its adapter."""
    from xiaoshuo.training import get_adapter, remove_adapter

    checkpoints = _state(ctx).settings().paths.checkpoints_dir
    adapter = get_adapter(checkpoints, name)
    if not yes:
        from xiaoshuo.errors import XiaoshuoError

        raise XiaoshuoError(
            "删除需要确认 (deletion needs confirmation)",
            received=str(adapter.path.parent),
            fix=f"xiaoshuo adapters rm {name} --yes",
        )
    typer.echo(f"已删除 removed {remove_adapter(checkpoints, name)}")


@app.command("webui")
def webui_cmd(
    ctx: typer.Context,
    lora: Annotated[
        list[str] | None, typer.Option("--lora", help="Adapter name=path or path (repeatable).")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model path or hub id.")] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help="auto | vllm | openai | transformers.")
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Address to bind (127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (7860).")] = None,
    share: Annotated[
        bool | None, typer.Option("--share", help="Public Gradio share link (needs auth).")
    ] = None,
    auth: Annotated[str | None, typer.Option("--auth", help="USER:PASS.")] = None,
    auth_file: Annotated[Path | None, typer.Option("--auth-file", help="File with USER:PASS lines.")] = None,
    insecure_no_auth: Annotated[
        bool, typer.Option("--insecure-no-auth", help="Allow --share / a non-loopback host without auth.")
    ] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Generations served at once (8).")] = 8,
) -> None:
    """启动网页界面 / Start the WebUI (创作 / 记忆 / 训练 / 设置)."""
    from xiaoshuo.engine import parse_lora_specs
    from xiaoshuo.webui.launch import check_exposure, launch, read_auth

    state = _state(ctx)
    settings = state.settings(**{"webui.host": host, "webui.port": port, "webui.share": share})
    pairs = read_auth(auth, auth_file)
    check_exposure(settings.webui.host, settings.webui.share, pairs, insecure_no_auth)
    adapters = parse_lora_specs(lora)
    typer.echo(f"xiaoshuo WebUI: http://{settings.webui.host}:{settings.webui.port}", err=True)
    launch(
        settings,
        model=model,
        backend=backend,
        lora=adapters,
        auth=pairs,
        config_file=state.config_file,
        concurrency=concurrency,
    )


from xiaoshuo.cli_memory import memory_app  # noqa: E402 - the sub-app is defined in its own module

app.add_typer(memory_app, name="memory")


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app, turn core errors into one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        result = app(args=args, prog_name="xiaoshuo", standalone_mode=False)
    except XiaoshuoError as exc:
        if debug:
            raise
        typer.secho(f"错误 error: {exc}", err=True, fg=typer.colors.RED)
        return EXIT_ERROR
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("已中止 aborted", err=True)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: typer's own message and exit code
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"错误 error: {exc.format_message()}", err=True)
        return exc.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
