"""``xiaoshuo serve``: start a local vLLM OpenAI-compatible server (prints the command it runs)."""

from __future__ import annotations

from typing import Annotated

import typer

from xiaoshuo.cli.options import LoraOpt, ModelOpt
from xiaoshuo.cli.state import cli_state

app = typer.Typer()


@app.command("serve")
def serve_cmd(
    ctx: typer.Context,
    model: ModelOpt = None,
    lora: LoraOpt = None,
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

    settings = cli_state(ctx).settings()
    cmd = serve_command(settings, model=model, adapters=parse_lora_specs(lora), host=host, port=port)
    env = dict(os.environ)
    if not dry_run and not torch_status().get("cuda_available"):
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.engine.cpu_kv_cache_gib))
    typer.echo(" ".join(cmd))
    if dry_run:
        return
    raise typer.Exit(subprocess.run(cmd, env=env).returncode)
