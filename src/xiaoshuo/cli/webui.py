"""``xiaoshuo webui``: start the Gradio WebUI (served by :mod:`xiaoshuo.webui.launch`).

The engine libraries' own warnings (vLLM, torch, Triton) are quiet unless ``--verbose`` (or ``--debug``).
``--demo`` works in a temporary folder ``xiaoshuo-demo-<pid>-…`` that is removed when the WebUI stops
(Ctrl-C or SIGTERM); folders of demos that were killed outright are removed by the next demo.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
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
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show the engine libraries' warnings (vLLM, torch, Triton).")
    ] = False,
) -> None:
    """启动网页界面 / Start the WebUI (创作 / 记忆 / 训练 / 设置)."""
    from xiaoshuo.engine import parse_lora_specs
    from xiaoshuo.engine.vllm_backend import verbose_libraries
    from xiaoshuo.webui.launch import check_exposure, launch, read_auth

    state = cli_state(ctx)
    verbose_libraries(verbose)  # the engine's load reads it (--debug is verbose too)
    if demo and not (verbose or state.debug):  # the demo model's "Writing model shards" bar
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    settings = state.settings(**{"webui.host": host, "webui.port": port, "webui.share": share})
    lang = settings.webui.language
    pairs = read_auth(auth, auth_file, lang)
    check_exposure(settings.webui.host, settings.webui.share, pairs, insecure_no_auth, lang)
    adapters = parse_lora_specs(lora)
    typer.echo(f"xiaoshuo WebUI: http://{settings.webui.host}:{settings.webui.port}", err=True)
    with contextlib.ExitStack() as stack:
        demo_dir = None
        if demo:
            demo_dir = stack.enter_context(_demo_folder())
            from xiaoshuo.gemma import TERMS, demo_ready

            gemma_demo = demo_ready() and (backend or settings.engine.backend) in ("auto", "llamacpp")
            what = (
                f"Gemma 3 270M（llama.cpp；内容无意义 nonsense；{TERMS}）"
                if gemma_demo
                else "随机小模型，文字无意义 random tiny model"
            )
            typer.echo(
                f"演示模式 demo mode: {what}；临时目录 {demo_dir}（退出时删除 removed on exit）", err=True
            )
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


_DEMO_PREFIX = "xiaoshuo-demo-"
_DEMO_NAME = re.compile(rf"^{_DEMO_PREFIX}(?P<pid>\d+)-")


@contextlib.contextmanager
def _demo_folder():
    """The demo's temporary folder, removed on exit: Ctrl-C, or SIGTERM (turned into the same clean stop);
    the folders of demos killed outright (SIGKILL, a crash) are removed by the next demo."""
    from xiaoshuo.writing.importing import pid_alive

    root = Path(tempfile.gettempdir())
    for old in root.glob(f"{_DEMO_PREFIX}*"):
        m = _DEMO_NAME.match(old.name)
        if m and old.is_dir() and not old.is_symlink() and not pid_alive(int(m.group("pid"))):
            shutil.rmtree(old, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{_DEMO_PREFIX}{os.getpid()}-"))

    def stop(signum, frame):  # Gradio's server loop stops on KeyboardInterrupt, then the folder goes
        raise KeyboardInterrupt

    before = signal.getsignal(signal.SIGTERM)
    with contextlib.suppress(ValueError):  # not the main thread (a test): no handler
        signal.signal(signal.SIGTERM, stop)
    try:
        yield folder
    finally:
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, before)
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            typer.echo(f"演示目录已删除 demo folder removed: {folder}", err=True)
