"""``xiaoshuo adapters …``: trained LoRA adapters and the merged cache, over :mod:`xiaoshuo.adapters`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from xiaoshuo.cli.options import JsonOpt
from xiaoshuo.cli.state import cli_state

app = typer.Typer(
    name="adapters",
    help="适配器 / Trained LoRA adapters (the registry under checkpoints/).",
    no_args_is_help=True,
)


@app.command("list")
def adapters_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List adapters: name, base model, date, val loss."""
    from xiaoshuo.adapters import list_adapters

    rows = [a.row() for a in list_adapters(cli_state(ctx).settings().paths.checkpoints_dir)]
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


@app.command("show")
def adapters_show(ctx: typer.Context, name: str) -> None:
    """Show an adapter's manifest."""
    from xiaoshuo.adapters import get_adapter

    adapter = get_adapter(cli_state(ctx).settings().paths.checkpoints_dir, name)
    typer.echo(json.dumps({"path": str(adapter.path), **adapter.manifest}, ensure_ascii=False, indent=2))


@app.command("merge")
def adapters_merge(
    ctx: typer.Context,
    name: str,
    output: Annotated[Path, typer.Option("--output", "-o", help="New model folder.")],
) -> None:
    """Merge an adapter into its base model (a standalone model for deployment)."""
    from xiaoshuo.adapters import merge_adapter

    out = merge_adapter(cli_state(ctx).settings().paths.checkpoints_dir, name, output)
    typer.echo(f"已合并 merged → {out}")


@app.command("export")
def adapters_export(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A trained adapter's name or a peft adapter folder.")],
    fmt: Annotated[str, typer.Option("--format", help="Export format (gguf).")] = "gguf",
    quant: Annotated[
        str | None, typer.Option("--quant", help="Q4_K_M (default), Q5_K_M, Q8_0 or F16 (no quantization).")
    ] = None,
    ollama: Annotated[
        bool, typer.Option("--ollama", help="Also write an Ollama Modelfile and print `ollama create`.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output folder (default data/exports/NAME-gguf).")
    ] = None,
    lora_only: Annotated[
        bool, typer.Option("--lora-only", help="The adapter alone as a GGUF LoRA (llama-server --lora).")
    ] = False,
    base: Annotated[
        str | None, typer.Option("--base", help="Base model (default: the adapter's manifest).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Export an adapter as GGUF for llama.cpp, Ollama, LM Studio and llama-server (merged + quantized)."""
    from rich.console import Console

    from xiaoshuo.errors import XiaoshuoError
    from xiaoshuo.gguf_export import DEFAULT_QUANT, QUANTS, export_gguf, result_json, summary

    if fmt.lower() != "gguf":
        raise XiaoshuoError(
            "不支持的导出格式 (unsupported export format)", expected="gguf", received=fmt, fix="--format gguf"
        )
    if quant is not None and lora_only:
        raise XiaoshuoError(
            "--lora-only 导出的是 f32 的 LoRA，不量化 (a --lora-only export is an f32 LoRA, not quantized)",
            expected="--quant or --lora-only, not both",
            received=f"--quant {quant} --lora-only",
            fix="去掉 --quant (drop --quant)",
        )
    if quant is not None and quant.upper() not in QUANTS:
        raise XiaoshuoError(
            "不支持的量化类型 (unsupported quantization)", expected=" / ".join(QUANTS), received=quant
        )
    console = Console(stderr=as_json)

    def progress(stage: str, message: str) -> None:
        console.print(f"[bold cyan]{stage:>8}[/] {message}", highlight=False)

    result = export_gguf(
        cli_state(ctx).settings(),
        name,
        quant=quant or DEFAULT_QUANT,
        output=output,
        ollama=ollama,
        lora_only=lora_only,
        overwrite=overwrite,
        base=base,
        progress=progress,
    )
    if as_json:
        typer.echo(json.dumps(result_json(result), ensure_ascii=False, indent=2))
        return
    for line in summary(result):
        console.print(line, highlight=False, markup=False)


@app.command("rm")
def adapters_rm(
    ctx: typer.Context, name: str, yes: Annotated[bool, typer.Option("--yes", help="Really delete.")] = False
) -> None:
    """Delete a run and its adapter."""
    from xiaoshuo.adapters import get_adapter, remove_adapter

    checkpoints = cli_state(ctx).settings().paths.checkpoints_dir
    adapter = get_adapter(checkpoints, name)
    if not yes:
        from xiaoshuo.errors import XiaoshuoError

        raise XiaoshuoError(
            "删除需要确认 (deletion needs confirmation)",
            received=str(adapter.path.parent),
            fix=f"xiaoshuo adapters rm {name} --yes",
        )
    typer.echo(f"已删除 removed {remove_adapter(checkpoints, name)}")


cache_app = typer.Typer(
    name="cache",
    help="合并缓存 / Merged base+adapter models cached under paths.models_dir/merged (engine.merge_adapter).",
    no_args_is_help=True,
)
app.add_typer(cache_app)


@cache_app.command("list")
def cache_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List merged models: key, adapter, base, last used, size, ok or stale (and why)."""
    from xiaoshuo.adapters import list_merged

    rows = list_merged(cli_state(ctx).settings().paths.models_dir)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="合并缓存 Merged models")
    for col in ("key", "adapter", "base", "last_used", "MiB", "state"):
        table.add_column(col, overflow="fold")
    for r in rows:
        mib = f"{r['bytes'] / 2**20:.1f}"
        table.add_row(r["key"], str(r["adapter"]), str(r["base"]), r["last_used"], mib, r["state"])
    Console().print(table)


@cache_app.command("prune")
def cache_prune(
    ctx: typer.Context,
    everything: Annotated[
        bool, typer.Option("--all", help="Remove every entry, not only stale ones.")
    ] = False,
) -> None:
    """Remove stale merged models (adapter or base changed or gone); --all removes every one."""
    from xiaoshuo.adapters import prune_merged

    removed = prune_merged(cli_state(ctx).settings().paths.models_dir, everything=everything)
    for path in removed:
        typer.echo(f"已删除 removed {path}")
    typer.echo(f"{len(removed)} removed")
