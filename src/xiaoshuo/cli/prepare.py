"""``xiaoshuo prepare``: novels in data/raw → train/val JSONL (thin over :func:`xiaoshuo.data.prepare`)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer

from xiaoshuo.cli.options import BackendOpt, ModelOpt, OptionalNovelOpt
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
        str | None, typer.Option("--format", help="continuation | instruction | compose | both.")
    ] = None,
    # --novel: this project's accepted chapters, summaries and reviewed memory are the corpus (not --input)
    novel: OptionalNovelOpt = None,
    summarize: Annotated[
        bool,
        typer.Option(
            "--summarize",
            help="Compose samples: summarise chapters with the configured model (cached per "
            "chapter under <output>/prepared/summaries/, a rerun resumes); default: extractive summaries.",
        ),
    ] = False,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Chapters summarised at once (8).")] = 8,
    backend: BackendOpt = None,
    model: ModelOpt = None,
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
    from xiaoshuo.writing.compose_samples import ComposeSamples

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
    out = output_dir or settings.paths.data_dir
    composing = settings.data.sample_format in ("compose", "both")
    if summarize and not composing:
        err.print("! --summarize 只用于 compose 样本 (compose samples only): --format compose|both")
    with contextlib.ExitStack() as stack:
        project, memory = None, None
        if novel:
            project, memory = _project(ctx, novel)
            raw = stack.enter_context(_project_corpus(project, out))
        elif sample:
            written = write_sample_corpus(raw)
            err.print(f"已写入示例语料 sample corpus: {len(written)} files → {raw}")
        engine = None
        if summarize and composing:
            from xiaoshuo.cli.options import planning_engine

            _, engine, _, _ = stack.enter_context(  # the base model, no adapter; keeps this command's flags
                planning_engine(ctx, backend=backend, model=model, adapter=None)
            )
        try:
            with prepare_progress(err, summaries=engine is not None) as on_progress:
                builder = ComposeSamples(
                    settings, novel=project, novel_memory=memory, engine=engine, batch=batch,
                    on_summary=getattr(on_progress, "summary", None),
                ) if composing else None  # fmt: skip
                manifest = prepare(
                    settings, input_dir=raw, output_dir=out, progress=on_progress, compose=builder
                )
        except PrepareError as exc:
            if exc.manifest is not None and not as_json:
                render_prepare(exc.manifest, err)
            raise
    if as_json:
        typer.echo(json.dumps(manifest, ensure_ascii=False, indent=2))
    else:
        render_prepare(manifest, Console())


def _project(ctx: typer.Context, slug: str):
    """The novel ``--novel`` names and its reviewed memory entries (read, then the store is closed)."""
    from xiaoshuo.cli.options import novels
    from xiaoshuo.memory import MemoryStore

    project = novels(ctx).get(slug)
    with MemoryStore(cli_state(ctx).settings()) as store:
        entries = store.list(project.slug)
    return project, entries


@contextlib.contextmanager
def _project_corpus(project, out: Path):
    """The project's accepted chapters as one text file in a scratch input folder (removed afterwards):
    the continuation samples read it; the compose samples read the project itself."""
    import os
    import shutil

    from xiaoshuo.files import atomic_write

    folder = Path(out) / "prepared" / f".novel-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    parts = []
    for plan in project.outline().chapters():
        text = project.text(plan.number).strip()
        if text:
            parts.append(f"第{plan.number}章 {plan.title}\n{text}")
    atomic_write(folder / f"{project.card().title}.txt", "\n".join(parts) + "\n")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
