"""``xiaoshuo prepare``: novels in data/raw → train/val JSONL (thin over :func:`xiaoshuo.data.prepare`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from xiaoshuo.cli.state import cli_state

app = typer.Typer()


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

    from xiaoshuo.cli.render import prepare_progress, render_prepare
    from xiaoshuo.data import PrepareError, prepare, write_sample_corpus

    settings = cli_state(ctx).settings(
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
