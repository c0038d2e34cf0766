"""``xiaoshuo webui``: start the Gradio WebUI (served by :mod:`xiaoshuo.webui.launch`)."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from xiaoshuo.cli.options import BackendOpt, LoraOpt, ModelOpt
from xiaoshuo.cli.state import cli_state

app = typer.Typer()


@app.command("webui")
def webui_cmd(
    ctx: typer.Context,
    lora: LoraOpt = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
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
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Generations served at once; others wait (8).")
    ] = 8,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo", help="Try the interface on a random tiny model built on the spot (no download)."
        ),
    ] = False,
) -> None:
    """启动网页界面 / Start the WebUI (创作 / 记忆 / 训练 / 设置)."""
    from xiaoshuo.engine import parse_lora_specs
    from xiaoshuo.webui.launch import check_exposure, launch, read_auth

    state = cli_state(ctx)
    settings = state.settings(**{"webui.host": host, "webui.port": port, "webui.share": share})
    lang = settings.webui.language
    pairs = read_auth(auth, auth_file, lang)
    check_exposure(settings.webui.host, settings.webui.share, pairs, insecure_no_auth, lang)
    adapters = parse_lora_specs(lora)
    typer.echo(f"xiaoshuo WebUI: http://{settings.webui.host}:{settings.webui.port}", err=True)
    with contextlib.ExitStack() as stack:
        demo_dir = None
        if demo:
            demo_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="xiaoshuo-demo-")))
            typer.echo(f"演示模式 demo mode: 随机小模型，文字无意义；临时目录 {demo_dir}", err=True)
        launch(
            settings,
            model=model,
            backend=backend,
            lora=adapters,
            auth=pairs,
            config_file=state.config_file,
            concurrency=concurrency,
            demo_dir=demo_dir,
        )
