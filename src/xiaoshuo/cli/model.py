"""``xiaoshuo model list|pull|rm``: models on disk, downloads from Hugging Face / a mirror / ModelScope.

A thin layer over :mod:`xiaoshuo.models`.  ``pull --json-progress`` prints one JSON object per line
(``plan``, ``progress``, ``done`` or ``error``): the WebUI runs it as a subprocess, reads those lines
for its progress bar, and cancels by terminating it (a later pull resumes).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from xiaoshuo.cli.options import JsonOpt
from xiaoshuo.cli.state import cli_state
from xiaoshuo.config import mask_url

app = typer.Typer(
    name="model",
    help="模型 / Models: list local ones, pull from Hugging Face / a mirror / ModelScope, remove.",
    no_args_is_help=True,
)


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


@app.command("list")
def model_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """本地模型 / Local models (paths.models_dir and the Hugging Face cache) and what each setting uses."""
    from xiaoshuo.models import configured, list_models

    settings = cli_state(ctx).settings()
    rows = [m.row() for m in list_models(settings)]
    wanted = [
        {
            "setting": key,
            "model": name,
            "local": str(folder) if folder else None,
            "note": settings.note_of(key),
        }
        for key, name, folder in configured(settings)
    ]
    if as_json:
        typer.echo(json.dumps({"models": rows, "configured": wanted}, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"本地模型 Local models ({settings.paths.models_dir} + Hugging Face cache)")
    for col in ("name", "where", "size", "used by", "path"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["where"], _gib(r["size_bytes"]), ", ".join(r["used_by"]), r["path"])
    console.print(table)
    for w in wanted:
        missing = f"[yellow]未下载 not on disk[/] → xiaoshuo model pull {w['model']}"
        state = f"[green]本地 local[/] {w['local']}" if w["local"] else missing
        console.print(f"{w['setting']} = {w['model']}: {state}" + (f"  ({w['note']})" if w["note"] else ""))


@app.command("pull")
def model_pull(
    ctx: typer.Context,
    model_id: Annotated[
        str | None,
        typer.Argument(metavar="[ID]", help="Hub id (owner/name); default: configured models not on disk."),
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="hf | modelscope | auto (default: model.source).")
    ] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="Branch, tag or commit.")] = None,
    json_progress: Annotated[
        bool, typer.Option("--json-progress", help="One JSON object per line (for the WebUI).")
    ] = False,
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            help="Only the repo files matching this pattern, e.g. '*Q4_K_M.gguf' (a GGUF for the llamacpp "
            "backend; use it with --model <models_dir>/<id>/<file>).",
        ),
    ] = None,
) -> None:
    """下载模型 / Download a model into paths.models_dir (resumable; checks free disk first)."""
    from xiaoshuo.errors import XiaoshuoError
    from xiaoshuo.models import configured, pull

    settings = cli_state(ctx).settings(**{"model.source": source})
    if model_id:
        ids = [model_id]
    else:
        ids = [name for _, name, folder in configured(settings) if folder is None]
        if not ids:
            typer.echo("配置的模型都已在本地 (configured models are already on disk): xiaoshuo model list")
            return
    for mid in ids:
        if json_progress:
            try:
                plan = pull(
                    mid,
                    settings,
                    revision=revision,
                    on_plan=_emit_plan,
                    on_progress=_emit_progress,
                    file=file,
                )
            except XiaoshuoError as exc:
                _emit({"event": "error", "model": mid, "message": str(exc)})
                raise
            done = {"event": "done", "model": mid, "path": str(plan.target)}
            if file is not None:
                done["files"] = [str(plan.target / f) for f in sorted(plan.files)]
            _emit(done)
        else:
            _pull_with_bar(mid, settings, revision, file)


def _emit(obj: dict) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False))


def _emit_plan(plan) -> None:
    _emit(
        {
            "event": "plan",
            "model": plan.model_id,
            "source": plan.source,
            "endpoint": mask_url(plan.endpoint),  # a mirror URL may hold a password
            "files": len(plan.files),
            "total": plan.total_bytes,
            "target": str(plan.target),
            "why": plan.why,
        }
    )


def _emit_progress(done: int, total: int) -> None:
    _emit({"event": "progress", "done": done, "total": total})


def _pull_with_bar(model_id: str, settings, revision: str | None, file: str | None = None) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from xiaoshuo.models import pull

    console = Console(stderr=True)
    progress = Progress(
        "[bold]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    task = None

    def on_plan(plan) -> None:
        nonlocal task
        console.print(
            f"下载 {plan.model_id}：{len(plan.files)} 个文件，{_gib(plan.total_bytes)}，来源 {plan.why}\n"
            f"→ {plan.target}"
        )
        task = progress.add_task(plan.model_id, total=plan.total_bytes)
        progress.start()

    def on_progress(done: int, total: int) -> None:
        if task is not None:
            progress.update(task, completed=done, total=total)

    try:
        plan = pull(
            model_id, settings, revision=revision, on_plan=on_plan, on_progress=on_progress, file=file
        )
    finally:
        progress.stop()
    typer.echo(f"完成 done: {plan.model_id} → {plan.target}")
    for rel in sorted(plan.files) if file is not None else ():
        typer.echo(
            f"  {plan.target / rel}"
            + ("  (--backend llamacpp --model 这个文件)" if rel.endswith(".gguf") else "")
        )


@app.command("rm")
def model_rm(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Hub id or folder name under paths.models_dir.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """删除本地模型 / Remove a model from paths.models_dir and the Hugging Face cache."""
    from xiaoshuo.models import remove

    settings = cli_state(ctx).settings()
    if not yes:
        typer.confirm(f"删除 {name}？(remove {name})", abort=True)
    for path in remove(name, settings):
        typer.echo(f"已删除 removed: {path}")
