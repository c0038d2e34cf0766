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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from xiaoshuo import __version__
from xiaoshuo.config import Settings, load, parse_assignment
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


@dataclass
class CliState:
    """What the global options set; commands turn it into Settings."""

    config_file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    debug: bool = False

    def settings(self, **flag_overrides: Any) -> Settings:
        """Settings with ``--set`` values and then command flags (None = not given)."""
        overrides = dict(self.overrides)
        overrides.update({k: v for k, v in flag_overrides.items() if v is not None})
        return load(self.config_file, overrides=overrides, override_source="cli (flag or --set)")


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


def _state(ctx: typer.Context) -> CliState:
    return ctx.obj if isinstance(ctx.obj, CliState) else CliState()


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
