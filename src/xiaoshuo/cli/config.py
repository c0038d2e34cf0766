"""``xiaoshuo config`` and ``xiaoshuo doctor``: the effective settings and the system check."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from xiaoshuo.cli.options import JsonOpt
from xiaoshuo.cli.state import cli_state

app = typer.Typer()


@app.command("config")
def config_cmd(
    ctx: typer.Context,
    as_json: JsonOpt = False,
    describe: Annotated[
        bool, typer.Option("--describe", "-d", help="Also show what each key means.")
    ] = False,
) -> None:
    """显示生效的配置及每项的来源 / Show the effective config and where each value came from."""
    settings = cli_state(ctx).settings()
    if as_json:
        payload = {
            "config_file": str(settings.config_file) if settings.config_file else None,
            "settings": settings.to_plain(),
            "sources": {key: source for key, _, source, _ in settings.items()},
            "notes": {key: settings.note_of(key) for key in ("model.base_model", "memory.embedding_model")},
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    from xiaoshuo.cli.render import render_config

    render_config(settings, describe=describe)


@app.command("doctor")
def doctor_cmd(
    ctx: typer.Context,
    as_json: JsonOpt = False,
    smoke: Annotated[
        bool,
        typer.Option("--smoke", help="Build a tiny random model and generate a few tokens (offline)."),
    ] = False,
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Remove leftovers of killed runs: import staging folders, unfinished appends (rolled "
            "back), lock records and temp files of dead processes.",
        ),
    ] = False,
) -> None:
    """检查系统状态 / Check Python, torch, GPU, vLLM, backends, models, disk and leftovers of killed runs."""
    from xiaoshuo.doctor import diagnose, fix_leftovers, run_smoke

    settings = cli_state(ctx).settings()
    report = diagnose(settings)
    if fix:
        report.leftovers = fix_leftovers(settings)
    if smoke:
        report.smoke = [vars(r) for r in run_smoke(settings)]
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        from xiaoshuo.cli.render import render_doctor

        render_doctor(report)
    if smoke and not all(r["ok"] for r in report.smoke):
        raise typer.Exit(1)
